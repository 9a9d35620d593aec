//! Stage 6, embed: chunk vectors (the [`crate::engines::embedder`]) into LanceDB
//! ([`crate::index`]), plus the document's type ([`crate::classify`]).

use std::sync::Arc;

use super::Payload;
use crate::context::Context;
use crate::error::StageError;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let chunks = super::chunk::load(ctx, document_id).await?;
    let document = ctx
        .store
        .document(document_id)
        .await?
        .ok_or_else(|| StageError::Transient(format!("document {document_id} is gone")))?;
    let embedder = ctx.embedder().await?;
    let vectors = embedder.embed(chunks.iter().map(|c| c.embedding_text()).collect()).await?;
    let labels = ctx.labels().await?;
    let class = crate::classify::classify(&labels, &chunks, &vectors, ctx.pipeline.classify.threshold);
    ctx.store.set_classification(document_id, &class.label, class.score as f64).await?;
    let index = ctx.index().await?;
    let meta = crate::index::DocumentMeta {
        collection: &document.collection,
        document_id,
        doc_type: &class.label,
        model: &embedder.model_name,
    };
    index.replace_document(&meta, &chunks, &vectors).await.map_err(|e| StageError::transient("write to LanceDB", e))?;
    Arc::clone(&index).maintain_in_background(&document.collection);
    Ok(())
}
