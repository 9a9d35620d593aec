//! Stage extract, after embed (which sets the document's type): for a type with a schema
//! (`jobs/schemas/`), the schema's fields out of the page model ([`crate::extract`]),
//! checked and scored, written as the `fields.json` artifact. Where several schemas may
//! apply (invoice and receipt), the one that finds more is kept. Other documents pass.

use super::Payload;
use crate::context::Context;
use crate::error::StageError;
use crate::extract::{self, Extraction};
use lectern_queue::storage::Artifact;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let doc = ctx.store.document(document_id).await?.ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let Some(doc_type) = doc.doc_type.clone() else { return Ok(()) };
    if !ctx.schemas.covers(&doc_type) {
        return Ok(());
    }
    let pages = ctx.load_pages(document_id).await?;
    let schemas = ctx.schemas.clone();
    let extraction: Option<Extraction> = crate::engines::cpu::spawn_cpu(move || {
        let text: String = pages.iter().map(|p| p.text()).collect::<Vec<_>>().join("\n");
        extract::extract_best(&schemas.candidates(&doc_type, &text), &pages)
    })
    .await?;
    let Some(extraction) = extraction else { return Ok(()) };
    let json = serde_json::to_vec_pretty(&extraction).map_err(|e| StageError::transient("write fields", e))?;
    let workdir = ctx.workdir(document_id);
    let (dir, key) = (workdir.artifacts_dir(), workdir.key("artifacts"));
    let artifacts =
        super::generate::write_artifacts(&dir, &key, vec![(extract::FILE_NAME, extract::MEDIA_TYPE, json)])?;
    for artifact in &artifacts {
        ctx.blobs.publish(&artifact.path).await?;
        ctx.store.put_artifact(document_id, artifact).await?;
    }
    Ok(())
}

/// A document's extracted fields, if its `artifacts` hold a `fields.json`.
pub async fn load(ctx: &Context, artifacts: &[Artifact]) -> Result<Option<Extraction>, StageError> {
    let Some(artifact) = artifacts.iter().find(|a| a.name == extract::FILE_NAME) else { return Ok(None) };
    let path = ctx.blobs.fetch(&artifact.path).await?;
    tokio::task::spawn_blocking(move || crate::model::workdir::read_json(&path)).await?.map(Some)
}
