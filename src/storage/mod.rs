//! The job store: documents, jobs, figures and artifacts, behind one interface.
//!
//! [`JobStore`] is the driver interface; each database is a backend in its own module
//! ([`sqlite`] is the embedded default). Engine, pipeline, HTTP and CLI only ever talk to
//! `dyn JobStore`.

pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (expected sqlite:// or a file path)")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be claimed once `run_at` has passed (new, or retrying after backoff).
    Available,
    /// Claimed by a worker holding a lease.
    Running,
    Done,
    /// Failed for good: bad input, or out of attempts.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "available" => JobState::Available,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            other => return Err(StoreError::Corrupt(format!("job state {other:?}"))),
        })
    }
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub stage: String,
    pub document_id: Option<String>,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub max_attempts: i32,
    /// Unix ms; `None` means now.
    pub run_at: Option<i64>,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub stage: String,
    pub document_id: Option<String>,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub priority: i32,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub lease_until: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A document to insert.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub sha256: String,
    pub filename: String,
    pub size_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: String,
    pub sha256: String,
    pub filename: String,
    pub media_type: Option<String>,
    pub size_bytes: i64,
    /// queued | running | done | failed
    pub status: String,
    pub stage: Option<String>,
    pub pages: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Document {
    pub fn is_finished(&self) -> bool {
        self.status == "done" || self.status == "failed"
    }
}

/// A figure cropped from a page; bbox in page points, top-left origin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    pub page: i64,
    pub idx: i64,
    pub label: String,
    pub score: f64,
    pub bbox: [f64; 4],
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub path: String,
    pub media_type: String,
    pub size_bytes: i64,
}

/// How a failed attempt ends.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Retry at this Unix ms time if attempts remain, else fail for good.
    Retry { at: i64 },
    /// Fail for good now (bad input).
    Permanent,
}

/// The storage driver interface. Every backend passes the same conformance tests
/// (`tests/store_conformance.rs`).
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Name of the backend, e.g. "sqlite".
    fn backend(&self) -> &'static str;

    /// Inserts a document and its first job in one transaction; returns the job id.
    async fn insert_document(&self, doc: &NewDocument, first_job: &NewJob) -> Result<i64>;
    async fn insert_job(&self, job: &NewJob) -> Result<i64>;

    /// Claims the next runnable job on `queue` (available and due, or running with an
    /// expired lease), taking a lease until `lease_until` and counting an attempt.
    async fn claim(&self, queue: &str, worker: &str, now: i64, lease_until: i64) -> Result<Option<Job>>;
    /// Extends the lease; false when the job is no longer held by this worker and attempt.
    async fn heartbeat(&self, job: &Job, worker: &str, lease_until: i64) -> Result<bool>;
    /// Marks the job done and inserts `next` in the same transaction. Fenced: returns
    /// false (and changes nothing) if the job is no longer held by this worker and attempt.
    async fn complete(&self, job: &Job, worker: &str, next: Option<&NewJob>) -> Result<bool>;
    /// Records a failed attempt with its reason. Fenced like [`JobStore::complete`].
    async fn fail(&self, job: &Job, worker: &str, reason: &str, failure: Failure) -> Result<bool>;

    async fn job(&self, id: i64) -> Result<Option<Job>>;
    async fn jobs_for_document(&self, document_id: &str) -> Result<Vec<Job>>;
    async fn document(&self, id: &str) -> Result<Option<Document>>;
    async fn set_document_info(&self, id: &str, media_type: &str, pages: i64) -> Result<()>;

    /// Replaces the figures of one page (idempotent re-runs).
    async fn replace_figures(&self, document_id: &str, page: i64, figures: &[Figure]) -> Result<()>;
    async fn figures(&self, document_id: &str) -> Result<Vec<Figure>>;
    /// Inserts or replaces an artifact by name.
    async fn put_artifact(&self, document_id: &str, artifact: &Artifact) -> Result<()>;
    async fn artifacts(&self, document_id: &str) -> Result<Vec<Artifact>>;

    /// Resolves when a job may have been inserted on `queue` by this process.
    async fn wait_for_jobs(&self, queue: &str);
}

/// Opens the store named by `database_url`, or the embedded SQLite file under `data_dir`.
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<std::sync::Arc<dyn JobStore>> {
    match database_url {
        None => Ok(std::sync::Arc::new(sqlite::SqliteStore::open_file(&data_dir.join("lectern.db")).await?)),
        Some(url) if url.starts_with("sqlite:") => Ok(std::sync::Arc::new(sqlite::SqliteStore::open_url(url).await?)),
        Some(url) => Err(StoreError::UnsupportedUrl(url.to_string())),
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
