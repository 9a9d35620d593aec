//! The job store: jobs, and the catalog of documents with their figures, artifacts,
//! flashcards, plus API tokens — one [`Store`] over either database.
//!
//! What both databases run alike is written once: [`queue`] (insert, claim, lease,
//! outcomes, control, reads, stats of jobs) and [`catalog`] (documents, figures,
//! artifacts, flashcards, tokens), over [`db`]'s two-backend pool. What only one database
//! does lives in its driver module: [`sqlite`] (the embedded default: one file, WAL, a
//! single writer connection, its checkpointer; claims as one `UPDATE … RETURNING`) and
//! [`postgres`] (`FOR UPDATE SKIP LOCKED` claims, `UNNEST` batches, `NOTIFY` and the
//! listener). Every backend passes one conformance suite (`tests/queue/store.rs`).

pub mod catalog;
mod db;
pub mod postgres;
pub mod queue;
pub mod sqlite;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use db::Db;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The database cannot be reached now (down, restarting, refusing connections, pool
    /// exhausted): the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                // PostgreSQL classes 08 (connection) and 57P (shutting down or starting up).
                e.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
            }
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }

    /// The database's disk is full (SQLite's SQLITE_FULL, PostgreSQL's 53100).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c == "13" || c == "53100") || e.message().contains("disk is full")
            }
            StoreError::Database(sqlx::Error::Io(e)) => e.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
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
    /// Failed for good on bad input (never retried automatically).
    Failed,
    /// Out of attempts; the last error is kept. `lectern jobs retry` revives it.
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] =
        [JobState::Available, JobState::Running, JobState::Done, JobState::Failed, JobState::Dead, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| StoreError::Corrupt(format!("job state {s:?}")))
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Available | JobState::Running)
    }
}

/// Lifecycle of a document, driven by its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Waiting for its first job to be claimed.
    Queued,
    Running,
    Done,
    /// A job failed for good (bad input, or out of attempts); `error` says why.
    Failed,
    Cancelled,
}

impl DocumentStatus {
    pub const ALL: [DocumentStatus; 5] = [
        DocumentStatus::Queued,
        DocumentStatus::Running,
        DocumentStatus::Done,
        DocumentStatus::Failed,
        DocumentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Queued => "queued",
            DocumentStatus::Running => "running",
            DocumentStatus::Done => "done",
            DocumentStatus::Failed => "failed",
            DocumentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("document status {s:?}")))
    }

    pub fn is_finished(self) -> bool {
        matches!(self, DocumentStatus::Done | DocumentStatus::Failed | DocumentStatus::Cancelled)
    }
}

impl std::fmt::Display for DocumentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// Which documents a listing returns, oldest first, and where the page starts.
#[derive(Debug, Clone)]
pub struct DocumentQuery {
    /// Only these collections; `None` is every collection.
    pub collections: Option<Vec<String>>,
    pub status: Option<DocumentStatus>,
    pub doc_type: Option<String>,
    /// Start after this document's (`created_at`, `id`): keyset paging, so uploads during
    /// the listing never shift a page.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// Documents of one collection with one type (`None`: not classified yet).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CollectionCount {
    pub collection: String,
    pub doc_type: Option<String>,
    pub documents: i64,
}

/// A document to insert.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub sha256: String,
    pub filename: String,
    pub size_bytes: i64,
    /// LanceDB collection its chunks go to.
    pub collection: String,
    /// Artifacts to generate; `None` is all of them.
    pub artifacts: Option<Vec<String>>,
    /// Where the signed webhook goes when the document finishes.
    pub callback_url: Option<String>,
    /// Enqueued by the store, in the same transaction, when the document becomes done or
    /// failed (the webhook delivery).
    pub finish_job: Option<NewJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: String,
    pub sha256: String,
    pub filename: String,
    pub media_type: Option<String>,
    pub size_bytes: i64,
    pub status: DocumentStatus,
    pub stage: Option<String>,
    pub pages: Option<i64>,
    /// Pages through the per-page stages (render, layout, OCR).
    pub pages_done: i64,
    pub error: Option<String>,
    pub collection: String,
    /// Type found by classification (`other` below the threshold), with its similarity.
    pub doc_type: Option<String>,
    pub doc_type_score: Option<f64>,
    /// Main language (ISO 639-3, e.g. `eng`, `fra`), detected from the text layer or OCR.
    pub language: Option<String>,
    /// Artifacts asked for at upload; `None` is all of them.
    pub artifacts: Option<Vec<String>>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Document {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
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

/// A bearer API token as stored: its hash, never the token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub hash: String,
    /// Collections it may use; `*` is all.
    pub collections: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiToken {
    pub fn allows(&self, collection: &str) -> bool {
        self.collections.iter().any(|c| c == "*" || c == collection)
    }
}

/// A flashcard's SM-2 scheduling state (the algorithm is `lectern_document::schedule::sm2`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sm2 {
    pub ease: f64,
    pub interval_days: u32,
    pub repetitions: u32,
    pub due: chrono::DateTime<chrono::Utc>,
}

/// A flashcard's FSRS state after its first FSRS review (`lectern_document::schedule::fsrs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fsrs {
    pub stability: f64,
    pub difficulty: f64,
    pub interval_days: u32,
    pub reviewed_at: chrono::DateTime<chrono::Utc>,
    pub due: chrono::DateTime<chrono::Utc>,
}

/// A flashcard and its review state under each scheduler.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Flashcard {
    pub id: String,
    pub document_id: String,
    pub front: String,
    pub back: String,
    pub page: i64,
    pub sm2: Sm2,
    /// None until the card is first reviewed under FSRS.
    pub fsrs: Option<Fsrs>,
}

/// Which scheduler reviews a collection's flashcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Sm2,
    Fsrs,
}

impl Scheduler {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sm2" => Some(Self::Sm2),
            "fsrs" => Some(Self::Fsrs),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sm2 => "sm2",
            Self::Fsrs => "fsrs",
        }
    }
}

/// A collection's settings; collections without stored settings get [`Default`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectionSettings {
    pub scheduler: Scheduler,
    /// The recall probability FSRS schedules for (0.7–0.99).
    pub desired_retention: f64,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        Self { scheduler: Scheduler::Sm2, desired_retention: 0.9 }
    }
}

/// Study material requested over a collection: the request, its job and its progress.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StudySet {
    pub id: String,
    pub collection: String,
    pub request: serde_json::Value,
    pub job_id: i64,
    pub steps_done: i64,
    pub steps_total: i64,
    pub created_at: i64,
}

/// How a failed attempt ends.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Retry at this Unix ms time if attempts remain, else the job is dead.
    Retry { at: i64 },
    /// Fail for good now (bad input).
    Permanent,
}

/// After a fan-out, the last job of each branch reports its pages; when the document's
/// `pages_done` reaches `pages`, `next` is enqueued — exactly once.
#[derive(Debug, Clone)]
pub struct FanIn {
    pub pages: i64,
    pub next: NewJob,
}

/// A successful job and what follows it, recorded in one transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    pub job: Job,
    pub worker: String,
    pub next: Vec<NewJob>,
    pub fan_in: Option<FanIn>,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was extended.
    Held,
    /// The job is no longer ours (lease expired and taken over, or finished).
    Lost,
    /// Someone asked to cancel this job: stop at this checkpoint.
    CancelRequested,
}

/// Jobs per state on one queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub available: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub dead: i64,
    pub cancelled: i64,
    /// Age in ms of the oldest available job that is due.
    pub oldest_available_ms: Option<i64>,
}

/// The job store over one database (see the module docs for what lives where).
pub struct Store {
    db: Db,
    wakers: Arc<Wakers>,
    /// Background tasks of the backend (SQLite's checkpointer, PostgreSQL's listener),
    /// stopped when the store is dropped.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Store {
    /// Name of the backend: "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Resolves when a job may have been inserted on `queue` (in this process, or — with
    /// PostgreSQL — in any process).
    pub async fn wait_for_jobs(&self, queue: &str) {
        self.wakers.get(queue).notified().await;
    }
}

/// The columns [`job_from_row!`] reads.
macro_rules! job_columns {
    () => {
        "id, queue, stage, document_id, payload, state, priority, attempt, max_attempts, run_at, locked_by, \
         lease_until, cancel_requested, error, created_at, started_at, finished_at"
    };
}
pub(crate) use job_columns;

/// Maps a row with the job columns to a [`Job`] (same column names on every backend).
macro_rules! job_from_row {
    ($row:expr) => {{
        let row = $row;
        let payload: String = row.try_get("payload")?;
        let state: String = row.try_get("state")?;
        Ok::<_, $crate::storage::StoreError>($crate::storage::Job {
            id: row.try_get("id")?,
            queue: row.try_get("queue")?,
            stage: row.try_get("stage")?,
            document_id: row.try_get("document_id")?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| $crate::storage::StoreError::Corrupt(format!("job payload: {e}")))?,
            state: $crate::storage::JobState::parse(&state)?,
            priority: row.try_get("priority")?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at: row.try_get("run_at")?,
            locked_by: row.try_get("locked_by")?,
            lease_until: row.try_get("lease_until")?,
            cancel_requested: row.try_get("cancel_requested")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }};
}
pub(crate) use job_from_row;

macro_rules! document_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, $crate::storage::StoreError>($crate::storage::Document {
            id: row.try_get("id")?,
            sha256: row.try_get("sha256")?,
            filename: row.try_get("filename")?,
            media_type: row.try_get("media_type")?,
            size_bytes: row.try_get("size_bytes")?,
            status: $crate::storage::DocumentStatus::parse(&row.try_get::<String, _>("status")?)?,
            stage: row.try_get("stage")?,
            pages: row.try_get("pages")?,
            pages_done: row.try_get("pages_done")?,
            error: row.try_get("error")?,
            collection: row.try_get("collection")?,
            doc_type: row.try_get("doc_type")?,
            doc_type_score: row.try_get("doc_type_score")?,
            language: row.try_get("language")?,
            artifacts: match row.try_get::<Option<String>, _>("artifacts")? {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|e| $crate::storage::StoreError::Corrupt(format!("document artifacts: {e}")))?,
                ),
                None => None,
            },
            callback_url: row.try_get("callback_url")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }};
}
pub(crate) use document_from_row;

macro_rules! figure_from_row {
    ($row:expr) => {{
        let r = $row;
        Ok::<_, $crate::storage::StoreError>($crate::storage::Figure {
            page: r.try_get("page")?,
            idx: r.try_get("idx")?,
            label: r.try_get("label")?,
            score: r.try_get("score")?,
            bbox: [r.try_get("x0")?, r.try_get("y0")?, r.try_get("x1")?, r.try_get("y1")?],
            path: r.try_get("path")?,
        })
    }};
}
pub(crate) use figure_from_row;

macro_rules! artifact_from_row {
    ($row:expr) => {{
        let r = $row;
        Ok::<_, $crate::storage::StoreError>($crate::storage::Artifact {
            name: r.try_get("name")?,
            path: r.try_get("path")?,
            media_type: r.try_get("media_type")?,
            size_bytes: r.try_get("size_bytes")?,
        })
    }};
}
pub(crate) use artifact_from_row;

macro_rules! flashcard_from_row {
    ($row:expr) => {{
        let r = $row;
        let due: i64 = r.try_get("due")?;
        Ok::<_, $crate::storage::StoreError>($crate::storage::Flashcard {
            id: r.try_get("id")?,
            document_id: r.try_get("document_id")?,
            front: r.try_get("front")?,
            back: r.try_get("back")?,
            page: r.try_get("page")?,
            sm2: $crate::storage::Sm2 {
                ease: r.try_get("ease")?,
                interval_days: r.try_get::<i64, _>("interval_days")? as u32,
                repetitions: r.try_get::<i64, _>("repetitions")? as u32,
                due: $crate::storage::time_from_ms(due)?,
            },
            fsrs: match (
                r.try_get::<Option<f64>, _>("fsrs_stability")?,
                r.try_get::<Option<f64>, _>("fsrs_difficulty")?,
                r.try_get::<Option<i64>, _>("fsrs_interval_days")?,
                r.try_get::<Option<i64>, _>("fsrs_reviewed_at")?,
                r.try_get::<Option<i64>, _>("fsrs_due")?,
            ) {
                (Some(stability), Some(difficulty), Some(interval), Some(reviewed), Some(due)) => {
                    Some($crate::storage::Fsrs {
                        stability,
                        difficulty,
                        interval_days: interval as u32,
                        reviewed_at: $crate::storage::time_from_ms(reviewed)?,
                        due: $crate::storage::time_from_ms(due)?,
                    })
                }
                _ => None,
            },
        })
    }};
}
pub(crate) use flashcard_from_row;

/// A stored Unix-ms time as a date.
pub(crate) fn time_from_ms(ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}

macro_rules! study_set_from_row {
    ($row:expr) => {{
        let r = $row;
        let request: String = r.try_get("request")?;
        Ok::<_, $crate::storage::StoreError>($crate::storage::StudySet {
            id: r.try_get("id")?,
            collection: r.try_get("collection")?,
            request: serde_json::from_str(&request)
                .map_err(|e| $crate::storage::StoreError::Corrupt(format!("study request: {e}")))?,
            job_id: r.try_get("job_id")?,
            steps_done: r.try_get("steps_done")?,
            steps_total: r.try_get("steps_total")?,
            created_at: r.try_get("created_at")?,
        })
    }};
}
pub(crate) use study_set_from_row;

macro_rules! token_from_row {
    ($row:expr) => {{
        let r = $row;
        let collections: String = r.try_get("collections")?;
        Ok::<_, $crate::storage::StoreError>($crate::storage::ApiToken {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            hash: r.try_get("hash")?,
            collections: serde_json::from_str(&collections)
                .map_err(|e| $crate::storage::StoreError::Corrupt(format!("token collections: {e}")))?,
            created_at: r.try_get("created_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }};
}
pub(crate) use token_from_row;

/// Per-queue wake-ups for idle workers in this process.
#[derive(Default)]
pub(crate) struct Wakers {
    map: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Wakers {
    pub fn get(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        self.map.lock().expect("wakers lock").entry(queue.to_string()).or_default().clone()
    }
    pub fn wake(&self, queue: &str) {
        self.get(queue).notify_waiters();
    }
}

/// Opens the store named by `database_url`, or the embedded SQLite file under `data_dir`.
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<Arc<Store>> {
    let store = match database_url {
        None => sqlite::open_file(&data_dir.join("lectern.db")).await?,
        Some(url) if url.starts_with("sqlite:") => sqlite::open_url(url).await?,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            postgres::connect(url).await?
        }
        Some(url) => return Err(StoreError::UnsupportedUrl(url.to_string())),
    };
    Ok(Arc::new(store))
}

/// A document's finish job as stored (JSON), and back.
pub(crate) fn finish_job_json(doc: &NewDocument) -> Option<String> {
    doc.finish_job.as_ref().map(|j| serde_json::to_string(j).expect("job serialises"))
}

pub(crate) fn parse_finish_job(json: &str) -> Result<NewJob> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("finish job: {e}")))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Upper bounds (ms) of the stage-duration histogram buckets.
pub const DURATION_BUCKETS_MS: [i64; 10] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];

/// Durations of a stage's finished jobs, bucketed cumulatively by [`DURATION_BUCKETS_MS`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageDurations {
    pub stage: String,
    pub count: i64,
    pub sum_ms: i64,
    pub buckets: Vec<i64>,
}

/// Same SQL for both backends (`CAST` keeps PostgreSQL's sums integers).
pub(crate) const STAGE_DURATIONS_SQL: &str = "SELECT stage, CAST(COUNT(*) AS BIGINT) AS n, \
    CAST(COALESCE(SUM(finished_at - started_at), 0) AS BIGINT) AS sum_ms, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 100 THEN 1 ELSE 0 END) AS BIGINT) AS b0, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 250 THEN 1 ELSE 0 END) AS BIGINT) AS b1, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 500 THEN 1 ELSE 0 END) AS BIGINT) AS b2, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 1000 THEN 1 ELSE 0 END) AS BIGINT) AS b3, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 2500 THEN 1 ELSE 0 END) AS BIGINT) AS b4, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 5000 THEN 1 ELSE 0 END) AS BIGINT) AS b5, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 10000 THEN 1 ELSE 0 END) AS BIGINT) AS b6, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 30000 THEN 1 ELSE 0 END) AS BIGINT) AS b7, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 60000 THEN 1 ELSE 0 END) AS BIGINT) AS b8, \
    CAST(SUM(CASE WHEN finished_at - started_at <= 300000 THEN 1 ELSE 0 END) AS BIGINT) AS b9 \
    FROM jobs WHERE state = 'done' AND started_at IS NOT NULL AND finished_at IS NOT NULL \
    GROUP BY stage ORDER BY stage";

macro_rules! durations_from_row {
    ($row:expr) => {{
        let r = $row;
        let mut buckets = Vec::with_capacity($crate::storage::DURATION_BUCKETS_MS.len());
        for name in ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"] {
            buckets.push(r.try_get::<i64, _>(name)?);
        }
        Ok::<_, $crate::storage::StoreError>($crate::storage::StageDurations {
            stage: r.try_get("stage")?,
            count: r.try_get("n")?,
            sum_ms: r.try_get("sum_ms")?,
            buckets,
        })
    }};
}
pub(crate) use durations_from_row;

/// Builds per-queue stats from `(queue, state, count)` rows and `(queue, oldest run_at)`.
pub(crate) fn collect_stats(
    counts: Vec<(String, String, i64)>,
    oldest: Vec<(String, i64)>,
    now: i64,
) -> Vec<QueueStats> {
    let mut by_queue: std::collections::BTreeMap<String, QueueStats> = Default::default();
    for (queue, state, n) in counts {
        let s = by_queue.entry(queue.clone()).or_insert_with(|| QueueStats { queue, ..Default::default() });
        match state.as_str() {
            "available" => s.available = n,
            "running" => s.running = n,
            "done" => s.done = n,
            "failed" => s.failed = n,
            "dead" => s.dead = n,
            "cancelled" => s.cancelled = n,
            _ => {}
        }
    }
    for (queue, run_at) in oldest {
        if let Some(s) = by_queue.get_mut(&queue) {
            s.oldest_available_ms = Some(now - run_at);
        }
    }
    by_queue.into_values().collect()
}
