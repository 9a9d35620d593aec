//! Search over what was indexed: embed the query with the same model, nearest chunks.

use crate::context::Context;
use crate::index::Hit;
use crate::pipeline::StageError;

pub async fn search(ctx: &Context, query: &str, top_k: usize) -> Result<Vec<Hit>, StageError> {
    let embedder = ctx.embedder().await?;
    let text = vec![query.to_string()];
    let mut vectors = tokio::task::spawn_blocking(move || embedder.embed(&text)).await??;
    let vector = vectors.pop().ok_or_else(|| StageError::Transient("no query vector".into()))?;
    let index = ctx.index().await?;
    index.search(&vector, top_k).await.map_err(|e| StageError::transient("search LanceDB", e))
}
