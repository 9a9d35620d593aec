//! What operators and learners ask of stored documents, shared by HTTP and CLI: a
//! document's status, deleting a document, and its progress events.

use serde::Serialize;

use lectern_document::blob::BlobError;
use lectern_document::context::Context;
use lectern_document::engines::tesseract::LOW_CONFIDENCE;
use lectern_document::error::StageError;
use lectern_document::extract::Extraction;
use lectern_document::model::workdir::TextSource;
use lectern_queue::storage::{self, Artifact, Document, Figure, Job, StoreError};

#[derive(Debug, Serialize)]
pub struct DocumentStatus {
    #[serde(flatten)]
    pub document: Document,
    pub jobs: Vec<Job>,
    pub figures: Vec<Figure>,
    pub artifacts: Vec<Artifact>,
    /// Fields extracted by the document type's schema (`fields.json`); null without one.
    pub fields: Option<Extraction>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read the document's fields: {0}")]
    Fields(#[from] StageError),
}

pub async fn document_status(ctx: &Context, id: &str) -> Result<Option<DocumentStatus>, StatusError> {
    let Some(document) = ctx.store.document(id).await? else { return Ok(None) };
    let artifacts = ctx.store.artifacts(id).await?;
    Ok(Some(DocumentStatus {
        jobs: ctx.store.jobs_for_document(id).await?,
        figures: ctx.store.figures(id).await?,
        fields: lectern_document::stages::extract::load(ctx, &artifacts).await?,
        artifacts,
        document,
    }))
}

/// A document's extracted fields: `None` for an unknown document, `Some(None)` for one
/// without (no schema for its type, or not extracted yet).
pub async fn document_fields(ctx: &Context, id: &str) -> Result<Option<(Document, Option<Extraction>)>, StatusError> {
    let Some(document) = ctx.store.document(id).await? else { return Ok(None) };
    let fields = lectern_document::stages::extract::load(ctx, &ctx.store.artifacts(id).await?).await?;
    Ok(Some((document, fields)))
}

/// What happened to one page: which path gave it its text, and how sure OCR was.
#[derive(Debug, Serialize)]
pub struct PageSummary {
    pub number: u32,
    /// `text_layer` (the PDF's own text, never OCR'd) or `ocr`.
    pub source: TextSource,
    pub words: usize,
    /// Layout regions found on the page.
    pub regions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocr_language: Option<String>,
    /// Mean word confidence (0–100) of the page's OCR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocr_confidence: Option<f32>,
    /// OCR'd with a mean word confidence below [`LOW_CONFIDENCE`]: its text is worth a look.
    pub low_confidence: bool,
    /// Degrees the scan's lines were tilted (positive: descending to the right), when OCR
    /// turned it upright first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew: Option<f32>,
    /// Degrees (90, 180, 270) a scan on its side or upside down was turned clockwise to set
    /// it upright; the page's boxes are the upright page's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// On a page whose text layer is invisible (an earlier OCR's): the share of an OCR
    /// sample's words the layer agrees with; a poor layer is replaced by OCR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_agreement: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("read pages: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The pages rendered so far, in order (`None` for an unknown document). Reads every
/// page file of the work directory, on a blocking thread.
pub async fn document_pages(ctx: &Context, id: &str) -> Result<Option<Vec<PageSummary>>, PagesError> {
    if ctx.store.document(id).await?.is_none() {
        return Ok(None);
    }
    let pages = ctx.load_pages(id).await?;
    Ok(Some(
        pages
            .into_iter()
            .map(|p| PageSummary {
                number: p.number,
                source: p.source,
                words: p.words.len(),
                regions: p.regions.len(),
                low_confidence: p.ocr_confidence.is_some_and(|c| c < LOW_CONFIDENCE),
                ocr_language: p.ocr_language,
                ocr_confidence: p.ocr_confidence,
                skew: p.skew,
                turn: p.turn,
                layer_agreement: p.layer_agreement,
            })
            .collect(),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stage(#[from] lectern_document::error::StageError),
    #[error("remove from the index: {0}")]
    Index(#[from] lectern_document::index::IndexError),
    #[error("remove the document's files: {0}")]
    Blob(#[from] BlobError),
}

/// Stops the document's jobs, removes its chunks from the index, then its rows and work
/// directory. The upload itself stays: it is stored by content and may be shared.
pub async fn delete_document(ctx: &Context, id: &str) -> Result<bool, DeleteError> {
    let Some(document) = ctx.store.document(id).await? else { return Ok(false) };
    ctx.store.cancel_document(id).await?;
    ctx.index().await?.delete_document(&document.collection, id).await?;
    let deleted = ctx.store.delete_document(id).await?;
    ctx.blobs.delete_prefix(&lectern_document::config::document_key(id)).await?;
    Ok(deleted)
}

/// One change seen on a document or one of its jobs, for the live progress stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProgressEvent {
    Job {
        id: i64,
        stage: String,
        state: lectern_queue::storage::JobState,
        pages: Option<serde_json::Value>,
        error: Option<String>,
    },
    Document {
        status: storage::DocumentStatus,
        stage: Option<String>,
        pages_done: i64,
        pages: Option<i64>,
        error: Option<String>,
    },
}

/// How often the progress stream looks at the store.
pub const PROGRESS_POLL: std::time::Duration = std::time::Duration::from_millis(300);

/// Changes since the last look: job transitions in job order, then the document's. `seen`
/// keeps what was last reported; returns whether the document has finished.
pub async fn progress_since(
    ctx: &Context,
    id: &str,
    seen: &mut std::collections::HashMap<String, ProgressEvent>,
) -> Result<(Vec<ProgressEvent>, bool), StoreError> {
    let mut events = Vec::new();
    let mut jobs = ctx.store.jobs_for_document(id).await?;
    jobs.sort_by_key(|j| j.id);
    for j in jobs {
        let event = ProgressEvent::Job {
            id: j.id,
            stage: j.stage.clone(),
            state: j.state,
            pages: j.payload.get("pages").cloned(),
            error: j.error.clone(),
        };
        if seen.get(&format!("job-{}", j.id)) != Some(&event) {
            seen.insert(format!("job-{}", j.id), event.clone());
            events.push(event);
        }
    }
    let Some(doc) = ctx.store.document(id).await? else { return Ok((events, true)) };
    let event = ProgressEvent::Document {
        status: doc.status,
        stage: doc.stage.clone(),
        pages_done: doc.pages_done,
        pages: doc.pages,
        error: doc.error.clone(),
    };
    if seen.get("document") != Some(&event) {
        seen.insert("document".into(), event.clone());
        events.push(event);
    }
    Ok((events, doc.is_finished()))
}
