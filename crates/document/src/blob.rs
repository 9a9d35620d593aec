//! The blob store: every durable byte (uploads, page files and images, figure crops,
//! chunks, artifacts, study sets) under a key such as `documents/<id>/pages/p0001.json`.
//!
//! Two backends behind one type. **Local** (the embedded default): the key is a path
//! under the data directory and nothing moves; [`Blobs::fetch`] and [`Blobs::publish`]
//! cost nothing. **S3** (`--store s3://bucket/prefix`, any S3-compatible server): the
//! object store holds every byte and the data directory is only this host's cache, which
//! it may lose at any time. A stage fetches what it reads into the cache, works on local
//! files as it always has, then publishes what it wrote; a reader on another host fetches
//! it from there. Objects are written whole (a single PUT, or a multipart upload that
//! becomes visible only when completed), so nothing half-written is ever seen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

/// Files larger than this go up as a multipart upload, in parts of this size.
const PART: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The object store did not answer, or answered with an error: worth retrying.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    #[error("{0} is not in the store")]
    NotFound(String),
    #[error("blob I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid store URL {0:?}: expected s3://bucket[/prefix]")]
    Url(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
            other => BlobError::Unavailable(other.to_string()),
        }
    }
}

/// An S3-compatible bucket (and key prefix) that holds every blob, and the options LanceDB
/// needs to keep its tables there too.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `s3://bucket/prefix`, as given.
    pub url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// Endpoint, region, credentials and style, as `object_store` option names.
    pub options: Vec<(String, String)>,
}

impl Remote {
    /// Opens `s3://bucket[/prefix]` with endpoint, region and credentials from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`) and path-style requests unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Nothing is contacted yet.
    pub fn open(url: &str) -> Result<Self, BlobError> {
        let mut options = Vec::new();
        for (var, key) in [
            ("AWS_ENDPOINT_URL", "aws_endpoint"),
            ("AWS_REGION", "aws_region"),
            ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
            ("AWS_SESSION_TOKEN", "aws_session_token"),
            ("AWS_ALLOW_HTTP", "allow_http"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "aws_virtual_hosted_style_request"),
        ] {
            if let Ok(value) = std::env::var(var) {
                options.push((key.to_string(), value));
            }
        }
        Self::with_options(url, options)
    }

    /// Opens `s3://bucket[/prefix]` with these `object_store` options (`aws_endpoint`,
    /// `aws_region`, …); region `us-east-1`, path-style requests and, for an `http://`
    /// endpoint, plain HTTP unless they say otherwise.
    pub fn with_options(url: &str, mut options: Vec<(String, String)>) -> Result<Self, BlobError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| BlobError::Url(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Url(url.into()));
        }
        let has = |options: &[(String, String)], key: &str| options.iter().any(|(k, _)| k == key);
        if !has(&options, "aws_region") {
            options.push(("aws_region".into(), "us-east-1".into()));
        }
        if !has(&options, "aws_virtual_hosted_style_request") {
            options.push(("aws_virtual_hosted_style_request".into(), "false".into()));
        }
        if options.iter().any(|(k, v)| k == "aws_endpoint" && v.starts_with("http://")) && !has(&options, "allow_http")
        {
            options.push(("allow_http".into(), "true".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in &options {
            let key = key.parse().map_err(|e: object_store::Error| BlobError::Unavailable(e.to_string()))?;
            builder = builder.with_config(key, value);
        }
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let store = builder.with_retry(retry).build().map_err(|e| BlobError::Unavailable(e.to_string()))?;
        Ok(Self { url: url.trim_end_matches('/').into(), store: Arc::new(store), prefix: Key::from(prefix), options })
    }

    fn key(&self, key: &str) -> Key {
        let key = Key::from(key);
        Key::from_iter(self.prefix.parts().chain(key.parts()))
    }

    /// This store's URL for a name under its prefix (LanceDB's tables: `…/lancedb`).
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }
}

/// An object as listed.
#[derive(Debug, Clone)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// Requests to the remote store and bytes moved, since the process started (for
/// benchmarks and capacity plans).
#[derive(Debug, Default)]
pub struct Traffic {
    pub gets: AtomicU64,
    pub puts: AtomicU64,
    pub lists: AtomicU64,
    pub deletes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

/// The blob store of a process: the data directory, and the remote store if there is one.
#[derive(Debug, Clone)]
pub struct Blobs {
    cache: PathBuf,
    remote: Option<Remote>,
    traffic: Arc<Traffic>,
}

impl Blobs {
    pub fn new(data_dir: &Path, remote: Option<Remote>) -> Self {
        Self { cache: data_dir.to_path_buf(), remote, traffic: Arc::default() }
    }

    /// What this process has asked of the remote store so far.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    fn count(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Where a key's file is (or goes) on this host. Rows written before keys were
    /// relative hold absolute paths, which `join` keeps as they are.
    pub fn path(&self, key: &str) -> PathBuf {
        self.cache.join(key)
    }

    /// The key of a file under the data directory.
    pub fn key_of(&self, path: &Path) -> String {
        path.strip_prefix(&self.cache).unwrap_or(path).to_string_lossy().into_owned()
    }

    /// Makes the key's bytes present on this host and returns their path. Remote: always
    /// fetched (later stages rewrite page files), unless `immutable` and already cached.
    pub async fn fetch(&self, key: &str) -> Result<PathBuf, BlobError> {
        self.fetch_opts(key, false).await
    }

    /// As [`Self::fetch`], for keys whose bytes never change (uploads by hash, page images).
    pub async fn fetch_immutable(&self, key: &str) -> Result<PathBuf, BlobError> {
        self.fetch_opts(key, true).await
    }

    async fn fetch_opts(&self, key: &str, immutable: bool) -> Result<PathBuf, BlobError> {
        let path = self.path(key);
        let Some(remote) = &self.remote else { return Ok(path) };
        if immutable && touch(&path).await {
            return Ok(path);
        }
        self.count(&self.traffic.gets, 1);
        let got = remote.store.get(&remote.key(key)).await?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = tmp_path(&path);
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut stream = got.into_stream();
            while let Some(bytes) = stream.try_next().await? {
                self.count(&self.traffic.bytes_read, bytes.len() as u64);
                tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
            }
            tokio::fs::rename(&tmp, &path).await?;
            Ok::<_, BlobError>(())
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written.map(|()| path)
    }

    /// Fetches every key under `prefix`; returns the keys.
    pub async fn fetch_all(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let keys = self.list(prefix).await?;
        if self.remote.is_some() {
            for key in &keys {
                self.fetch(key).await?;
            }
        }
        Ok(keys)
    }

    /// The keys under `prefix` (a "directory"), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        Ok(self.list_meta(prefix).await?.into_iter().map(|m| m.key).collect())
    }

    /// The objects under `prefix`, sorted by key, with size and time of last change.
    pub async fn list_meta(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let mut metas = match &self.remote {
            Some(remote) => {
                let strip = remote.prefix.parts().count();
                self.count(&self.traffic.lists, 1);
                let found: Vec<_> = remote.store.list(Some(&remote.key(prefix))).try_collect().await?;
                found
                    .into_iter()
                    .map(|m| BlobMeta {
                        key: m
                            .location
                            .parts()
                            .skip(strip)
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/"),
                        size: m.size,
                        modified: m.last_modified,
                    })
                    .collect()
            }
            None => {
                let root = self.cache.clone();
                let dir = self.path(prefix);
                tokio::task::spawn_blocking(move || list_files(&root, &dir))
                    .await
                    .map_err(|e| BlobError::Io(std::io::Error::other(e)))??
            }
        };
        metas.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(metas)
    }

    /// Sends the file at the key's path to the remote store (nothing to do locally).
    /// Large files go in parts, so memory stays bounded.
    pub async fn publish(&self, key: &str) -> Result<(), BlobError> {
        let Some(remote) = &self.remote else { return Ok(()) };
        let mut file = tokio::fs::File::open(self.path(key)).await?;
        let size = file.metadata().await?.len() as usize;
        let location = remote.key(key);
        self.count(&self.traffic.puts, size.div_ceil(PART).max(1) as u64);
        self.count(&self.traffic.bytes_written, size as u64);
        if size <= PART {
            let mut bytes = Vec::with_capacity(size);
            file.read_to_end(&mut bytes).await?;
            remote.store.put(&location, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let mut upload = WriteMultipart::new_with_chunk_size(remote.store.put_multipart(&location).await?, PART);
        let mut buffer = vec![0u8; 1 << 20];
        let sent = async {
            loop {
                let n = file.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                upload.wait_for_capacity(2).await?;
                upload.write(&buffer[..n]);
            }
            Ok::<_, BlobError>(())
        }
        .await;
        match sent {
            Ok(()) => {
                upload.finish().await?;
                Ok(())
            }
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Publishes several keys.
    pub async fn publish_all(&self, keys: &[String]) -> Result<(), BlobError> {
        for key in keys {
            self.publish(key).await?;
        }
        Ok(())
    }

    /// Removes everything under `prefix`, in the remote store and in this host's cache.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), BlobError> {
        if let Some(remote) = &self.remote {
            let metas: Vec<_> = remote.store.list(Some(&remote.key(prefix))).try_collect().await?;
            self.count(&self.traffic.lists, 1);
            self.count(&self.traffic.deletes, metas.len() as u64);
            let locations = futures::stream::iter(metas.into_iter().map(|m| Ok(m.location))).boxed();
            remote.store.delete_stream(locations).try_collect::<Vec<_>>().await?;
        }
        match tokio::fs::remove_dir_all(self.path(prefix)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Keeps this host's cache of a remote store under `max_bytes`: removes the files of
    /// the least recently used documents, study sets and uploads first, and never those
    /// used within `min_idle`, so a running stage keeps what it fetched. A stage that
    /// still loses a file fails transiently and fetches it again. Local store: nothing to
    /// do, the data directory holds the only copy.
    pub async fn trim_cache(&self, max_bytes: u64, min_idle: std::time::Duration) -> Result<Trimmed, BlobError> {
        if self.remote.is_none() {
            return Ok(Trimmed::default());
        }
        let root = self.cache.clone();
        tokio::task::spawn_blocking(move || trim(&root, max_bytes, min_idle))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    /// Removes one key, remote and cached.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        if let Some(remote) = &self.remote {
            self.count(&self.traffic.deletes, 1);
            match remote.store.delete(&remote.key(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// What a cache trim removed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Trimmed {
    pub files: usize,
    pub bytes: u64,
}

/// Marks a cached file as just used (its time of last change is the cache's clock);
/// false if it is not cached.
async fn touch(path: &Path) -> bool {
    let path = path.to_path_buf();
    let touched = tokio::task::spawn_blocking(move || {
        std::fs::File::options().write(true).open(&path)?.set_modified(std::time::SystemTime::now())
    })
    .await;
    matches!(touched, Ok(Ok(())))
}

/// The cache's units of use: a document's or study set's files together, an upload alone.
fn cache_units(root: &Path) -> Result<Vec<(String, Vec<BlobMeta>)>, BlobError> {
    let mut units: std::collections::BTreeMap<String, Vec<BlobMeta>> = Default::default();
    for dir in ["uploads", "documents", "study"] {
        for meta in list_files(root, &root.join(dir))? {
            let unit = match dir {
                "uploads" => meta.key.clone(),
                _ => meta.key.splitn(3, '/').take(2).collect::<Vec<_>>().join("/"),
            };
            units.entry(unit).or_default().push(meta);
        }
    }
    Ok(units.into_iter().collect())
}

fn trim(root: &Path, max_bytes: u64, min_idle: std::time::Duration) -> Result<Trimmed, BlobError> {
    let mut units = cache_units(root)?;
    let used = |metas: &[BlobMeta]| metas.iter().map(|m| m.modified).max();
    units.sort_by_key(|(_, metas)| used(metas));
    let mut total: u64 = units.iter().flat_map(|(_, metas)| metas).map(|m| m.size).sum();
    let idle_since = chrono::Utc::now() - chrono::Duration::from_std(min_idle).unwrap_or(chrono::Duration::MAX);
    let mut trimmed = Trimmed::default();
    for (unit, metas) in units {
        if total <= max_bytes || used(&metas).is_some_and(|t| t > idle_since) {
            break;
        }
        let path = root.join(&unit);
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let bytes: u64 = metas.iter().map(|m| m.size).sum();
        total -= bytes;
        trimmed.files += metas.len();
        trimmed.bytes += bytes;
    }
    Ok(trimmed)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", uuid::Uuid::new_v4()));
    path.with_file_name(name)
}

/// Files under `dir`, as keys relative to `root`; temporary files left out.
fn list_files(root: &Path, dir: &Path) -> Result<Vec<BlobMeta>, BlobError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if !name.contains(".tmp") && !name.starts_with(".incoming-") {
                out.push(BlobMeta {
                    key: entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_string_lossy().into_owned(),
                    size: meta.len(),
                    modified: meta.modified()?.into(),
                });
            }
        }
    }
    Ok(out)
}

impl From<BlobError> for crate::error::StageError {
    fn from(e: BlobError) -> Self {
        crate::error::StageError::Transient(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn file(root: &Path, key: &str, bytes: usize, age: Duration) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_trim_removes_the_least_recently_used_first_and_keeps_what_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        file(dir.path(), "documents/old/pages/p0001.json", 10, 3 * hour);
        file(dir.path(), "documents/old/chunks.json", 10, 2 * hour);
        file(dir.path(), "documents/newer/chunks.json", 10, hour);
        file(dir.path(), "uploads/ab/abcd", 10, hour / 2);
        file(dir.path(), "documents/busy/chunks.json", 100, Duration::ZERO);
        // The two old files go as one; then the cache fits.
        let trimmed = trim(dir.path(), 125, hour / 4).unwrap();
        assert_eq!(trimmed, Trimmed { files: 2, bytes: 20 });
        assert!(!dir.path().join("documents/old").exists());
        assert!(dir.path().join("documents/newer/chunks.json").exists());
        // Nothing used within the idle time goes, however full the cache.
        assert_eq!(trim(dir.path(), 0, hour / 4).unwrap(), Trimmed { files: 2, bytes: 20 });
        assert!(dir.path().join("documents/busy/chunks.json").exists());
    }

    #[tokio::test]
    async fn the_local_store_is_never_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "documents/d/chunks.json", 10, Duration::from_secs(3600));
        let blobs = Blobs::new(dir.path(), None);
        assert_eq!(blobs.trim_cache(0, Duration::ZERO).await.unwrap(), Trimmed::default());
        assert!(dir.path().join("documents/d/chunks.json").exists());
    }
}
