//! A document's status as operators see it (HTTP and CLI share this view).

use serde::Serialize;

use crate::context::Context;
use crate::storage::{Artifact, Document, Figure, Job, StoreError};

#[derive(Debug, Serialize)]
pub struct DocumentStatus {
    #[serde(flatten)]
    pub document: Document,
    pub jobs: Vec<Job>,
    pub figures: Vec<Figure>,
    pub artifacts: Vec<Artifact>,
}

pub async fn document_status(ctx: &Context, id: &str) -> Result<Option<DocumentStatus>, StoreError> {
    let Some(document) = ctx.store.document(id).await? else { return Ok(None) };
    Ok(Some(DocumentStatus {
        jobs: ctx.store.jobs_for_document(id).await?,
        figures: ctx.store.figures(id).await?,
        artifacts: ctx.store.artifacts(id).await?,
        document,
    }))
}
