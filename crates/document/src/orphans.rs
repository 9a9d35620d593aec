//! Orphan files: uploads no document was made from (or whose documents are all deleted),
//! and the files of documents and study sets whose rows are gone (a worker that died
//! between writing and recording, a delete cut short). Only files older than a minimum
//! age go, so an upload that is being recorded, or a stage that is being written, stays.

use std::collections::BTreeMap;

use crate::blob::BlobMeta;
use crate::context::Context;
use crate::error::StageError;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Swept {
    pub objects: usize,
    pub bytes: u64,
}

/// Removes orphan files older than `min_age` from the blob store (and this host's cache).
pub async fn sweep(ctx: &Context, min_age: std::time::Duration) -> Result<Swept, StageError> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let mut swept = Swept::default();
    let old = |metas: &[BlobMeta]| metas.iter().all(|m| m.modified < cutoff);
    for upload in ctx.blobs.list_meta("uploads").await? {
        let sha = upload.key.rsplit('/').next().unwrap_or_default();
        if upload.modified < cutoff && !ctx.store.upload_in_use(sha).await? {
            ctx.blobs.delete(&upload.key).await?;
            swept.objects += 1;
            swept.bytes += upload.size;
        }
    }
    for (id, metas) in by_owner(ctx.blobs.list_meta("documents").await?) {
        if old(&metas) && ctx.store.document(&id).await?.is_none() {
            ctx.blobs.delete_prefix(&crate::config::document_key(&id)).await?;
            swept.objects += metas.len();
            swept.bytes += metas.iter().map(|m| m.size).sum::<u64>();
        }
    }
    for (id, metas) in by_owner(ctx.blobs.list_meta("study").await?) {
        if old(&metas) && ctx.store.study_set(&id).await?.is_none() {
            ctx.blobs.delete_prefix(&crate::config::study_key(&id)).await?;
            swept.objects += metas.len();
            swept.bytes += metas.iter().map(|m| m.size).sum::<u64>();
        }
    }
    Ok(swept)
}

/// Objects grouped by their owner's id, the second part of `documents/<id>/…`.
fn by_owner(metas: Vec<BlobMeta>) -> BTreeMap<String, Vec<BlobMeta>> {
    let mut owners: BTreeMap<String, Vec<BlobMeta>> = BTreeMap::new();
    for meta in metas {
        if let Some(id) = meta.key.split('/').nth(1) {
            owners.entry(id.to_string()).or_default().push(meta);
        }
    }
    owners
}
