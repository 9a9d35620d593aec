//! The upload use case, shared by `POST /v1/documents` and `lectern submit`/`process`:
//! options checked, bytes streamed into the content-addressed upload store, the type
//! sniffed from the first bytes (a ZIP looked into for DOCX/PPTX), the same bytes in the
//! same collection answered with the existing document unless `reprocess`, else a new
//! document with its first job.

use std::path::Path;

use lectern_document::blob::BlobError;
use lectern_document::context::Context;
use lectern_document::formats::sniff;
use lectern_document::stages::ingest::{self, UploadOptions, UploadWriter};
use lectern_queue::storage::{Document, StoreError};
use tokio::io::AsyncReadExt;

/// Bytes of the head kept for sniffing the type.
const HEAD: usize = 2048;

/// What an upload led to.
#[derive(Debug)]
pub enum Uploaded {
    /// A new document and its first job.
    New { document_id: String, job_id: i64, sha256: String },
    /// The same bytes were already in the collection (and not failed or cancelled).
    Duplicate { document: Box<Document>, sha256: String },
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The options ask for something this server cannot do.
    #[error("{0}")]
    Invalid(String),
    /// Not PDF, PNG, JPEG, TIFF, DOCX or PPTX.
    #[error("{0}")]
    UnsupportedType(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Storing the bytes failed (the object store down, say).
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An upload being received.
pub struct Upload<'a> {
    ctx: &'a Context,
    writer: UploadWriter,
    head: Vec<u8>,
    filename: String,
    options: UploadOptions,
    reprocess: bool,
}

impl<'a> Upload<'a> {
    /// Checks `options` and opens the upload store.
    pub async fn begin(
        ctx: &'a Context,
        filename: &str,
        options: UploadOptions,
        reprocess: bool,
    ) -> Result<Self, UploadError> {
        options.check(&ctx.settings).await.map_err(UploadError::Invalid)?;
        let writer = UploadWriter::create(&ctx.settings).await?;
        Ok(Self { ctx, writer, head: Vec::new(), filename: filename.to_string(), options, reprocess })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        if self.head.len() < HEAD {
            self.head.extend_from_slice(&bytes[..bytes.len().min(HEAD - self.head.len())]);
        }
        Ok(self.writer.write(bytes).await?)
    }

    /// Drops what was received (a broken or rejected upload).
    pub async fn abort(self) {
        self.writer.abort().await
    }

    /// Checks the type, then answers with the existing document or records a new one.
    /// Empty uploads pass: they fail on their ingest job with the reason, like corrupt files.
    pub async fn finish(mut self) -> Result<Uploaded, UploadError> {
        let head = std::mem::take(&mut self.head);
        if !head.is_empty() && sniff::sniff(&head).is_none() {
            let office = if sniff::is_zip(&head) { self.writer.office_kind().await } else { None };
            if office.is_none() {
                self.writer.abort().await;
                return Err(UploadError::UnsupportedType(sniff::unsupported(&head)));
            }
        }
        let stored = self.writer.finish().await?;
        let store = self.ctx.store.as_ref();
        if !self.reprocess
            && let Some(document) = store.find_duplicate(&stored.sha256, &self.options.collection).await?
        {
            return Ok(Uploaded::Duplicate { document: Box::new(document), sha256: stored.sha256 });
        }
        let (document_id, job_id) =
            ingest::submit(store, &self.ctx.pipeline, &stored, &self.filename, &self.options).await?;
        Ok(Uploaded::New { document_id, job_id, sha256: stored.sha256 })
    }
}

/// Uploads a local file.
pub async fn upload_file(
    ctx: &Context,
    path: &Path,
    options: UploadOptions,
    reprocess: bool,
) -> Result<Uploaded, UploadError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut source = tokio::fs::File::open(path).await?;
    let mut upload = Upload::begin(ctx, &name, options, reprocess).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match source.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                upload.abort().await;
                return Err(e.into());
            }
        };
        if n == 0 {
            return upload.finish().await;
        }
        if let Err(e) = upload.write(&buf[..n]).await {
            upload.abort().await;
            return Err(e);
        }
    }
}
