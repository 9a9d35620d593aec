//! Stage 1, ingest: uploads are stored content-addressed (sha256) under the data
//! directory; the `documents` row and the first job are committed together. The ingest
//! job then checks the stored bytes (type sniffed from content, not the name; empty,
//! corrupt and encrypted files rejected with a clear reason) and counts pages.

use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Payload;
use crate::blob::{BlobError, Blobs};
use crate::config::{PipelineConfig, Settings};
use crate::context::Context;
use crate::error::StageError;
use crate::formats::sniff::{self, MediaType};
use lectern_queue::storage::{NewDocument, Store, StoreError};
use sha2::{Digest, Sha256};

/// The blob-store key of the upload with this hash.
pub fn upload_key(sha256: &str) -> String {
    format!("uploads/{}/{sha256}", &sha256[..2])
}

/// Where the upload with this hash is on this host (or will be, once fetched).
pub fn upload_path(settings: &Settings, sha256: &str) -> PathBuf {
    settings.data_dir.join(upload_key(sha256))
}

/// Keeps a file name printable and path-free: directories, control characters, bidi
/// controls (a right-to-left override makes "xfdp.exe" show as "exe.pdfx") and leading dots
/// are dropped; any other Unicode is kept, up to 200 characters.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let bidi =
        |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let clean: String = base.chars().filter(|c| !c.is_control() && !bidi(*c)).collect::<String>();
    let clean = clean.trim().trim_start_matches('.').chars().take(200).collect::<String>();
    if clean.is_empty() { "upload".to_string() } else { clean }
}

/// A stored upload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sha256: String,
    pub size_bytes: i64,
}

/// Streams an upload into the content-addressed store, hashing on the way; the bytes
/// land under their sha256 only when complete. With a remote store the file is this
/// host's copy, sent on in parts of bounded size once complete.
pub struct UploadWriter {
    tmp: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    blobs: Blobs,
    sync: bool,
}

/// Bytes gathered before one write to disk: every write is a hop to a blocking thread,
/// and request bodies arrive in pieces of a few KiB.
const WRITE_BUFFER: usize = 256 << 10;

impl UploadWriter {
    pub async fn create(settings: &Settings) -> std::io::Result<Self> {
        let uploads = settings.uploads_dir();
        tokio::fs::create_dir_all(&uploads).await?;
        let tmp = uploads.join(format!(".incoming-{}", uuid::Uuid::new_v4()));
        let file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::create(&tmp).await?);
        let blobs = Blobs::new(&settings.data_dir, settings.remote.clone());
        Ok(Self { tmp, file, hasher: Sha256::new(), size: 0, blobs, sync: settings.sync_uploads })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).await
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// For an upload that is a ZIP: DOCX or PPTX, by looking inside what was written.
    pub async fn office_kind(&mut self) -> Option<MediaType> {
        self.file.flush().await.ok()?;
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || crate::formats::office::kind(&tmp)).await.ok()?.ok()?
    }

    /// Moves the upload into place (and into the remote store); on failure (say, a full
    /// disk, or the store down) nothing of it stays here.
    pub async fn finish(mut self) -> Result<Stored, BlobError> {
        let tmp = self.tmp.clone();
        let stored = self.commit().await;
        if stored.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        stored
    }

    async fn commit(&mut self) -> Result<Stored, BlobError> {
        self.file.flush().await?;
        if self.sync {
            self.file.get_ref().sync_all().await?;
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let key = upload_key(&sha256);
        let dest = self.blobs.path(&key);
        tokio::fs::create_dir_all(dest.parent().expect("upload path has a parent")).await?;
        tokio::fs::rename(&self.tmp, &dest).await?;
        if let Err(e) = self.blobs.publish(&key).await {
            // Not in the store, so not uploaded: this host keeps no copy either.
            let _ = tokio::fs::remove_file(&dest).await;
            return Err(e);
        }
        Ok(Stored { sha256, size_bytes: self.size as i64 })
    }

    /// Drops a partial upload.
    pub async fn abort(self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

/// Copies a local file into the upload store.
pub async fn store_file(settings: &Settings, path: &Path) -> Result<Stored, BlobError> {
    let mut source = tokio::fs::File::open(path).await?;
    let mut writer = UploadWriter::create(settings).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match source.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                writer.abort().await;
                return Err(e.into());
            }
        };
        if let Err(e) = writer.write(&buf[..n]).await {
            writer.abort().await;
            return Err(e.into());
        }
    }
    writer.finish().await
}

/// Registers a stored upload as a document and enqueues its first job, in one transaction.
/// What an upload may ask for besides its bytes.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// LanceDB collection its chunks go to.
    pub collection: String,
    /// Priority of all its stage jobs (higher first); default: each queue's own.
    pub priority: Option<i32>,
    /// Artifacts to generate (`cheatsheet`, `quiz`, `flashcards`); default: all.
    pub artifacts: Option<Vec<String>>,
    /// Receives a signed POST when the document is done or failed.
    pub callback_url: Option<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self { collection: DEFAULT_COLLECTION.to_string(), priority: None, artifacts: None, callback_url: None }
    }
}

impl UploadOptions {
    /// [`Self::validate`], then a callback URL's host resolved and checked against internal
    /// addresses ([`crate::webhook::resolve_allowed`]).
    pub async fn check(&self, settings: &Settings) -> Result<(), String> {
        self.validate(settings)?;
        if let Some(url) = &self.callback_url {
            crate::webhook::resolve_allowed(url, &settings.webhook_allow).await?;
        }
        Ok(())
    }

    /// Checks the options against what this server can do; the message is for the client.
    pub fn validate(&self, settings: &Settings) -> Result<(), String> {
        crate::index::table_name(&self.collection).map_err(|e| e.to_string())?;
        if let Some(names) = &self.artifacts
            && let Some(bad) = names.iter().find(|n| !crate::config::ARTIFACTS.contains(&n.as_str()))
        {
            return Err(format!("unknown artifact {bad:?}; choose from {}", crate::config::ARTIFACTS.join(", ")));
        }
        if let Some(url) = &self.callback_url {
            crate::webhook::validate_url(url)?;
            if settings.webhook_secret.is_none() {
                return Err(
                    "this server has no webhook secret (LECTERN_WEBHOOK_SECRET), so it cannot sign callbacks".into()
                );
            }
        }
        Ok(())
    }
}

/// Records a stored upload as a new document with its first job; returns both ids.
pub async fn submit(
    store: &Store,
    pipeline: &PipelineConfig,
    stored: &Stored,
    filename: &str,
    options: &UploadOptions,
) -> Result<(String, i64), StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let doc = NewDocument {
        id: id.clone(),
        sha256: stored.sha256.clone(),
        filename: sanitize_filename(filename),
        size_bytes: stored.size_bytes,
        collection: options.collection.clone(),
        artifacts: options.artifacts.clone(),
        callback_url: options.callback_url.clone(),
        finish_job: options.callback_url.as_ref().map(|url| crate::webhook::finish_job(pipeline, &id, url)),
    };
    let payload = super::Payload { priority: options.priority, ..super::Payload::document(&id) };
    let job_id = store.insert_document(&doc, &super::job_for(pipeline, "ingest", &payload)).await?;
    Ok((id, job_id))
}

/// The collection documents go to when none is named.
pub const DEFAULT_COLLECTION: &str = "default";

/// Stores a local file and submits it to the default collection.
pub async fn submit_file(ctx: &Context, path: &Path) -> anyhow::Result<(String, i64)> {
    submit_file_to(ctx, path, DEFAULT_COLLECTION).await
}

/// Stores a local file and submits it to `collection`.
pub async fn submit_file_to(ctx: &Context, path: &Path, collection: &str) -> anyhow::Result<(String, i64)> {
    submit_file_with(ctx, path, &UploadOptions { collection: collection.to_string(), ..Default::default() }).await
}

/// Stores a local file and submits it with `options`.
pub async fn submit_file_with(ctx: &Context, path: &Path, options: &UploadOptions) -> anyhow::Result<(String, i64)> {
    options.check(&ctx.settings).await.map_err(|e| anyhow::anyhow!(e))?;
    let stored = store_file(&ctx.settings, path).await?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(submit(ctx.store.as_ref(), &ctx.pipeline, &stored, &name, options).await?)
}

/// The ingest job: validate the stored bytes and record type and page count.
pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let doc = ctx
        .store
        .document(document_id)
        .await?
        .ok_or_else(|| StageError::BadInput(format!("document {document_id} does not exist")))?;
    if doc.size_bytes == 0 {
        return Err(StageError::BadInput("the upload is empty (0 bytes)".into()));
    }
    let path = ctx.blobs.fetch_immutable(&upload_key(&doc.sha256)).await?;
    verify(&path, &doc.sha256).await?;
    let mut head = vec![0u8; 2048];
    let n = tokio::fs::File::open(&path).await?.read(&mut head).await?;
    head.truncate(n);
    let media = match sniff::sniff(&head) {
        Some(media) => Some(media),
        None if sniff::is_zip(&head) => {
            let path = path.clone();
            crate::engines::cpu::spawn_cpu(move || crate::formats::office::kind(&path)).await??
        }
        None => None,
    }
    .ok_or_else(|| StageError::BadInput(sniff::unsupported(&head)))?;
    let limits = ctx.pipeline.limits.clone();
    let pages = match media {
        MediaType::Pdf => ctx.pdfium_process().await?.page_count(path).await?,
        MediaType::Docx | MediaType::Pptx => {
            let count =
                move || crate::formats::office::page_count(&mut crate::formats::office::Package::open(&path)?, media);
            crate::engines::cpu::spawn_cpu(count).await??
        }
        _ => crate::engines::cpu::spawn_cpu(move || crate::formats::raster::check(&path, media, &limits)).await??,
    };
    if pages == 0 {
        return Err(StageError::BadInput("the document has no pages".into()));
    }
    if pages > ctx.pipeline.limits.max_pages {
        return Err(crate::formats::over_page_limit(media.noun(), pages, &ctx.pipeline.limits));
    }
    ctx.store.set_document_info(document_id, media.mime(), pages as i64).await?;
    Ok(())
}

/// Checks the stored bytes still hash to their name: without `sync_uploads` an upload the
/// OS had not yet written back when the machine lost power comes back torn.
async fn verify(path: &Path, sha256: &str) -> Result<(), StageError> {
    let path = path.to_path_buf();
    let actual = crate::engines::cpu::spawn_cpu(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await??;
    if actual != sha256 {
        return Err(StageError::BadInput(
            "the stored upload no longer matches its sha256 (torn by a crash before it reached disk?); upload it again"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_file_names_are_made_safe() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\x\\..\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_filename(".hidden"), "hidden");
        assert_eq!(sanitize_filename("a\u{0}b\nc.pdf"), "abc.pdf");
        assert_eq!(sanitize_filename("résumé 東京.pdf"), "résumé 東京.pdf");
        assert_eq!(sanitize_filename("../"), "upload");
        assert_eq!(sanitize_filename("invoice\u{202e}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize_filename(&"x".repeat(300)).len(), 200);
    }
}
