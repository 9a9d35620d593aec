//! The document pipeline: one module per stage, each run as a job on its own queue.
//!
//! Stages hand data to each other through the document's work directory
//! (`<data>/documents/<id>/`, see [`workdir`]): every stage reads what the previous one
//! wrote and overwrites its own outputs, so re-running a stage is idempotent.

pub mod chunk;
pub mod embed;
pub mod generate;
pub mod ingest;
pub mod layout;
pub mod ocr;
pub mod render;
pub mod workdir;

use crate::context::Context;
use crate::storage::StoreError;

/// Pipeline stages, in the order `jobs/pipeline.toml` normally lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Render,
    Layout,
    Ocr,
    Chunk,
    Embed,
    Generate,
}

impl Stage {
    pub const ALL: [Stage; 7] =
        [Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr, Stage::Chunk, Stage::Embed, Stage::Generate];

    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|stage| stage.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Render => "render",
            Stage::Layout => "layout",
            Stage::Ocr => "ocr",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Generate => "generate",
        }
    }
}

/// Why a stage failed. The message is what users see on the job and the document.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The input itself is unusable (corrupt, encrypted, empty, wrong type): retrying
    /// cannot help, so the job fails at once.
    #[error("{0}")]
    BadInput(String),
    /// Anything else (I/O, database, a model failing to load): retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl StageError {
    pub fn transient(context: &str, err: impl std::fmt::Display) -> Self {
        StageError::Transient(format!("{context}: {err}"))
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        StageError::Transient(e.to_string())
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> Self {
        StageError::Transient(format!("I/O error: {e}"))
    }
}

impl From<tokio::task::JoinError> for StageError {
    fn from(e: tokio::task::JoinError) -> Self {
        StageError::Transient(format!("stage task panicked or was cancelled: {e}"))
    }
}

/// Runs one stage for one document.
pub async fn run_stage(ctx: &Context, stage: Stage, document_id: &str) -> Result<(), StageError> {
    match stage {
        Stage::Ingest => ingest::run(ctx, document_id).await,
        Stage::Render => render::run(ctx, document_id).await,
        Stage::Layout => layout::run(ctx, document_id).await,
        Stage::Ocr => ocr::run(ctx, document_id).await,
        Stage::Chunk => chunk::run(ctx, document_id).await,
        Stage::Embed => embed::run(ctx, document_id).await,
        Stage::Generate => generate::run(ctx, document_id).await,
    }
}
