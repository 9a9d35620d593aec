//! Export use case, shared by `GET /v1/documents/{id}/content` and `lectern export`: check
//! that the document can be exported, then write its content on a blocking thread.

use std::io::Write;

use lectern_document::context::Context;
use lectern_document::error::StageError;
use lectern_document::export::{self, Format, Source};
use lectern_document::model::workdir::WorkDir;
use lectern_queue::storage::{Document, DocumentStatus, Figure, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("document {0} not found")]
    NotFound(String),
    #[error("document {id} is {status} (stage {stage}); export once it is done")]
    NotReady { id: String, status: &'static str, stage: String },
    #[error("document {id} has no pages to export ({status}{reason})")]
    NoPages { id: String, status: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("export: {0}")]
    Stage(#[from] StageError),
    #[error("export: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A document ready to be written out.
pub struct Export {
    document: Document,
    figures: Vec<Figure>,
    workdir: WorkDir,
}

/// Finds the document and checks it has finished with pages to show: one that is still
/// queued or running is refused, as is one that failed before it had any page.
pub async fn prepare(ctx: &Context, id: &str) -> Result<Export, ExportError> {
    let document = ctx.store.document(id).await?.ok_or_else(|| ExportError::NotFound(id.to_string()))?;
    if matches!(document.status, DocumentStatus::Queued | DocumentStatus::Running) {
        return Err(ExportError::NotReady {
            id: id.to_string(),
            status: document.status.as_str(),
            stage: document.stage.clone().unwrap_or_else(|| "none".into()),
        });
    }
    let workdir = ctx.workdir(id);
    let has_pages = !ctx.fetch_all_pages(&workdir).await?.is_empty();
    if !has_pages {
        return Err(ExportError::NoPages {
            id: id.to_string(),
            status: document.status.as_str(),
            reason: document.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
        });
    }
    let figures = ctx.store.figures(id).await?;
    Ok(Export { document, figures, workdir })
}

impl Export {
    pub fn filename(&self) -> &str {
        &self.document.filename
    }

    /// Writes the content to `out` on a blocking thread and hands `out` back; figure links
    /// start with `figure_base`.
    pub async fn write<W: Write + Send + 'static>(
        self,
        format: Format,
        figure_base: String,
        mut out: W,
    ) -> Result<W, ExportError> {
        tokio::task::spawn_blocking(move || {
            let source = Source {
                document_id: &self.document.id,
                filename: &self.document.filename,
                language: self.document.language.as_deref(),
                figures: &self.figures,
                figure_base: &figure_base,
            };
            export::write(&self.workdir, &source, format, &mut out).map(|()| out)
        })
        .await?
        .map_err(ExportError::from)
    }
}
