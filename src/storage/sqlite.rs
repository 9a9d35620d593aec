//! SQLite backend: one file, WAL mode, migrations from `migrations/sqlite` at open.
//!
//! Claims are a single `UPDATE … RETURNING` statement, so concurrent workers in any number
//! of processes never take the same job. New jobs wake this process's idle workers through
//! an in-process [`Notify`]; other processes notice within their poll interval.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;

use super::{
    Artifact, Document, Failure, Figure, Job, JobState, JobStore, NewDocument, NewJob, Result, StoreError, now_ms,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl SqliteStore {
    pub async fn open_file(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    pub async fn open_url(url: &str) -> Result<Self> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, wakers: Mutex::new(HashMap::new()) })
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().expect("wakers lock");
        wakers.entry(queue.to_string()).or_default().clone()
    }

    fn wake(&self, queue: &str) {
        self.waker(queue).notify_waiters();
    }
}

macro_rules! job_columns {
    () => {
        "id, queue, stage, document_id, payload, state, priority, attempt, max_attempts, \
         run_at, locked_by, lease_until, error, created_at, started_at, finished_at"
    };
}

fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let payload: String = row.try_get("payload")?;
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        stage: row.try_get("stage")?,
        document_id: row.try_get("document_id")?,
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(format!("job payload: {e}")))?,
        state: JobState::parse(&state)?,
        priority: row.try_get("priority")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at: row.try_get("run_at")?,
        locked_by: row.try_get("locked_by")?,
        lease_until: row.try_get("lease_until")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn document_from_row(row: &SqliteRow) -> Result<Document> {
    Ok(Document {
        id: row.try_get("id")?,
        sha256: row.try_get("sha256")?,
        filename: row.try_get("filename")?,
        media_type: row.try_get("media_type")?,
        size_bytes: row.try_get("size_bytes")?,
        status: row.try_get("status")?,
        stage: row.try_get("stage")?,
        pages: row.try_get("pages")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn insert_job_in<'e, E>(executor: E, job: &NewJob, now: i64) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (queue, stage, document_id, payload, state, priority, max_attempts, run_at, created_at)
         VALUES (?, ?, ?, ?, 'available', ?, ?, ?, ?) RETURNING id",
    )
    .bind(&job.queue)
    .bind(&job.stage)
    .bind(&job.document_id)
    .bind(job.payload.to_string())
    .bind(job.priority)
    .bind(job.max_attempts)
    .bind(job.run_at.unwrap_or(now))
    .bind(now)
    .fetch_one(executor)
    .await?;
    Ok(id)
}

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_document(&self, doc: &NewDocument, first_job: &NewJob) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO documents (id, sha256, filename, size_bytes, status, stage, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
        )
        .bind(&doc.id)
        .bind(&doc.sha256)
        .bind(&doc.filename)
        .bind(doc.size_bytes)
        .bind(&first_job.stage)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let id = insert_job_in(&mut *tx, first_job, now).await?;
        tx.commit().await?;
        self.wake(&first_job.queue);
        Ok(id)
    }

    async fn insert_job(&self, job: &NewJob) -> Result<i64> {
        let id = insert_job_in(&self.pool, job, now_ms()).await?;
        self.wake(&job.queue);
        Ok(id)
    }

    async fn claim(&self, queue: &str, worker: &str, now: i64, lease_until: i64) -> Result<Option<Job>> {
        // Expired leases first (their jobs are oldest), then due jobs by priority, FIFO.
        let sql = concat!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, locked_by = ?1, lease_until = ?2,
                    started_at = ?3
             WHERE id = COALESCE(
                 (SELECT id FROM jobs WHERE queue = ?4 AND state = 'running' AND lease_until < ?3
                  ORDER BY lease_until LIMIT 1),
                 (SELECT id FROM jobs WHERE queue = ?4 AND state = 'available' AND run_at <= ?3
                  ORDER BY priority DESC, run_at, id LIMIT 1))
             RETURNING ",
            job_columns!()
        );
        let row =
            sqlx::query(sql).bind(worker).bind(lease_until).bind(now).bind(queue).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row)?;
        if let Some(doc) = &job.document_id {
            sqlx::query("UPDATE documents SET status = 'running', stage = ?, updated_at = ? WHERE id = ?")
                .bind(&job.stage)
                .bind(now)
                .bind(doc)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(job))
    }

    async fn heartbeat(&self, job: &Job, worker: &str, lease_until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?",
        )
        .bind(lease_until)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, job: &Job, worker: &str, next: Option<&NewJob>) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL, error = NULL
             WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?",
        )
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(next) = next {
            insert_job_in(&mut *tx, next, now).await?;
        }
        if let Some(doc) = &job.document_id {
            let (status, stage) = match next {
                Some(next) => ("running", next.stage.as_str()),
                None => ("done", job.stage.as_str()),
            };
            sqlx::query("UPDATE documents SET status = ?, stage = ?, error = NULL, updated_at = ? WHERE id = ?")
                .bind(status)
                .bind(stage)
                .bind(now)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if let Some(next) = next {
            self.wake(&next.queue);
        }
        Ok(true)
    }

    async fn fail(&self, job: &Job, worker: &str, reason: &str, failure: Failure) -> Result<bool> {
        let now = now_ms();
        let retry_at = match failure {
            Failure::Retry { at } if job.attempt < job.max_attempts => Some(at),
            _ => None,
        };
        let mut tx = self.pool.begin().await?;
        let updated = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE jobs SET state = 'available', run_at = ?, error = ?, locked_by = NULL, lease_until = NULL
                     WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?",
            )
            .bind(at)
            .bind(reason),
            None => sqlx::query(
                "UPDATE jobs SET state = 'failed', finished_at = ?, error = ?, lease_until = NULL
                     WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?",
            )
            .bind(now)
            .bind(reason),
        }
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(doc) = &job.document_id {
            let status = if retry_at.is_some() { "running" } else { "failed" };
            sqlx::query("UPDATE documents SET status = ?, error = ?, updated_at = ? WHERE id = ?")
                .bind(status)
                .bind(format!("{}: {reason}", job.stage))
                .bind(now)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn jobs_for_document(&self, document_id: &str) -> Result<Vec<Job>> {
        let rows = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE document_id = ? ORDER BY id"))
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn document(&self, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn set_document_info(&self, id: &str, media_type: &str, pages: i64) -> Result<()> {
        sqlx::query("UPDATE documents SET media_type = ?, pages = ?, updated_at = ? WHERE id = ?")
            .bind(media_type)
            .bind(pages)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn replace_figures(&self, document_id: &str, page: i64, figures: &[Figure]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM figures WHERE document_id = ? AND page = ?")
            .bind(document_id)
            .bind(page)
            .execute(&mut *tx)
            .await?;
        for f in figures {
            sqlx::query(
                "INSERT INTO figures (document_id, page, idx, label, score, x0, y0, x1, y1, path)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(document_id)
            .bind(page)
            .bind(f.idx)
            .bind(&f.label)
            .bind(f.score)
            .bind(f.bbox[0])
            .bind(f.bbox[1])
            .bind(f.bbox[2])
            .bind(f.bbox[3])
            .bind(&f.path)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn figures(&self, document_id: &str) -> Result<Vec<Figure>> {
        let rows = sqlx::query("SELECT * FROM figures WHERE document_id = ? ORDER BY page, idx")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Figure {
                    page: r.try_get("page")?,
                    idx: r.try_get("idx")?,
                    label: r.try_get("label")?,
                    score: r.try_get("score")?,
                    bbox: [r.try_get("x0")?, r.try_get("y0")?, r.try_get("x1")?, r.try_get("y1")?],
                    path: r.try_get("path")?,
                })
            })
            .collect()
    }

    async fn put_artifact(&self, document_id: &str, a: &Artifact) -> Result<()> {
        sqlx::query(
            "INSERT INTO artifacts (document_id, name, path, media_type, size_bytes) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (document_id, name) DO UPDATE SET path = excluded.path,
                 media_type = excluded.media_type, size_bytes = excluded.size_bytes",
        )
        .bind(document_id)
        .bind(&a.name)
        .bind(&a.path)
        .bind(&a.media_type)
        .bind(a.size_bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn artifacts(&self, document_id: &str) -> Result<Vec<Artifact>> {
        let rows = sqlx::query("SELECT * FROM artifacts WHERE document_id = ? ORDER BY name")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Artifact {
                    name: r.try_get("name")?,
                    path: r.try_get("path")?,
                    media_type: r.try_get("media_type")?,
                    size_bytes: r.try_get("size_bytes")?,
                })
            })
            .collect()
    }

    async fn wait_for_jobs(&self, queue: &str) {
        self.waker(queue).notified().await;
    }
}
