//! SQLite backend: one file, WAL mode, migrations from `migrations/sqlite` at open.
//!
//! Claims are one `UPDATE … RETURNING` statement, so workers in any number of processes
//! never take the same job. New jobs wake this process's idle workers at once; other
//! processes notice within their poll interval.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::{
    ApiToken, Artifact, Completion, Document, Failure, Figure, Flashcard, Heartbeat, Job, JobState, JobStore,
    NewDocument, NewJob, QueueStats, Result, StageDurations, StoreError, Wakers, artifact_from_row, document_from_row,
    durations_from_row, figure_from_row, finish_job_json, flashcard_from_row, job_from_row, now_ms, parse_finish_job,
    sort_claimed, token_from_row,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

macro_rules! job_columns {
    () => {
        "id, queue, stage, document_id, payload, state, priority, attempt, max_attempts, run_at, locked_by, \
         lease_until, cancel_requested, error, created_at, started_at, finished_at"
    };
}

/// Only the worker holding this attempt's lease may change a running job.
macro_rules! fence {
    () => {
        " WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?"
    };
}

pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection, so this process's writers queue in order instead of
    /// colliding on SQLite's write lock and sleeping in its busy handler.
    writer: SqlitePool,
    wakers: Wakers,
    /// The checkpointer task stops once this store is dropped.
    _alive: std::sync::Arc<()>,
}

/// How often WAL pages are copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

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
            .busy_timeout(Duration::from_secs(30));
        // Checkpoints fsync, and an fsync can wait long behind other buffered writes (1 MB
        // uploads at 200/s): the writer never checkpoints itself, so commits do not stall.
        let writer_options = options.clone().pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(writer_options).await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(checkpoint(pool.clone(), std::sync::Arc::downgrade(&alive)));
        Ok(Self { pool, writer, wakers: Wakers::default(), _alive: alive })
    }
}

/// Copies committed WAL pages into the database file every [`CHECKPOINT_EVERY`] from a
/// reader connection (PASSIVE: writers and readers go on meanwhile), until the store is gone.
async fn checkpoint(pool: SqlitePool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(error = %e, "SQLite checkpoint failed");
        }
    }
}

async fn insert_job(tx: &mut Transaction<'_, Sqlite>, job: &NewJob, now: i64) -> Result<i64> {
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
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// Records one completion inside `tx`; false if the lease was lost.
async fn complete_one(tx: &mut Transaction<'_, Sqlite>, c: &Completion, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL, error = NULL
         WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?",
    )
    .bind(now)
    .bind(c.job.id)
    .bind(&c.worker)
    .bind(c.job.attempt)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let Some(doc) = &c.job.document_id else {
        for next in &c.next {
            insert_job(tx, next, now).await?;
        }
        return Ok(true);
    };
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM documents WHERE id = ?").bind(doc).fetch_optional(&mut **tx).await?;
    if status.as_deref() == Some("cancelled") {
        return Ok(true);
    }
    let mut next: Vec<&NewJob> = c.next.iter().collect();
    let mut waiting = false;
    if let Some(fan_in) = &c.fan_in {
        let (done, total): (i64, Option<i64>) = sqlx::query_as(
            "UPDATE documents SET pages_done = pages_done + ?, updated_at = ? WHERE id = ? RETURNING pages_done, pages",
        )
        .bind(fan_in.pages)
        .bind(now)
        .bind(doc)
        .fetch_one(&mut **tx)
        .await?;
        if total.is_some_and(|t| done >= t) {
            next.push(&fan_in.next);
        } else {
            waiting = true;
        }
    }
    for job in &next {
        insert_job(tx, job, now).await?;
    }
    let (status, stage) = match next.first() {
        Some(n) => ("running", n.stage.as_str()),
        None if waiting => ("running", c.job.stage.as_str()),
        None => ("done", c.job.stage.as_str()),
    };
    let updated = sqlx::query(
        "UPDATE documents SET status = ?, stage = ?, error = NULL, updated_at = ?
         WHERE id = ? AND status IN ('queued', 'running')",
    )
    .bind(status)
    .bind(stage)
    .bind(now)
    .bind(doc)
    .execute(&mut **tx)
    .await?;
    if status == "done" && updated.rows_affected() == 1 {
        enqueue_finish_job(tx, doc, now).await?;
    }
    Ok(true)
}

/// Enqueues the finish job of a document that has just become done or failed (idle
/// workers find it on their next poll).
async fn enqueue_finish_job(tx: &mut Transaction<'_, Sqlite>, doc: &str, now: i64) -> Result<()> {
    let json: Option<String> = sqlx::query_scalar("SELECT finish_job FROM documents WHERE id = ?")
        .bind(doc)
        .fetch_optional(&mut **tx)
        .await?
        .flatten();
    if let Some(json) = json {
        insert_job(tx, &parse_finish_job(&json)?, now).await?;
    }
    Ok(())
}

/// What goes before the document row itself when a document is deleted.
const DELETE_DOCUMENT: [&str; 4] = [
    "DELETE FROM jobs WHERE document_id = ?",
    "DELETE FROM figures WHERE document_id = ?",
    "DELETE FROM artifacts WHERE document_id = ?",
    "DELETE FROM flashcards WHERE document_id = ?",
];

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_document(&self, doc: &NewDocument, first_job: &NewJob) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO documents (id, sha256, filename, size_bytes, collection, status, stage, created_at, updated_at,
                                    artifacts, callback_url, finish_job)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
        )
        .bind(&doc.id)
        .bind(&doc.sha256)
        .bind(&doc.filename)
        .bind(doc.size_bytes)
        .bind(&doc.collection)
        .bind(&first_job.stage)
        .bind(now)
        .bind(now)
        .bind(doc.artifacts.as_ref().map(|a| serde_json::to_string(a).expect("names serialise")))
        .bind(&doc.callback_url)
        .bind(finish_job_json(doc))
        .execute(&mut *tx)
        .await?;
        let id = insert_job(&mut tx, first_job, now).await?;
        tx.commit().await?;
        self.wakers.wake(&first_job.queue);
        Ok(id)
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<Vec<i64>> {
        let now = now_ms();
        let mut ids = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(5000) {
            let mut tx = self.writer.begin().await?;
            for job in batch {
                ids.push(insert_job(&mut tx, job, now).await?);
            }
            tx.commit().await?;
        }
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.dedup();
        queues.into_iter().for_each(|q| self.wakers.wake(q));
        Ok(ids)
    }

    async fn claim(&self, queue: &str, worker: &str, limit: usize, now: i64, lease_until: i64) -> Result<Vec<Job>> {
        let sql = concat!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, locked_by = ?1, lease_until = ?2, started_at = ?3
             WHERE id IN (
                 SELECT id FROM (SELECT id FROM jobs WHERE queue = ?4 AND state = 'running' AND lease_until < ?3
                                 ORDER BY lease_until LIMIT ?5)
                 UNION ALL
                 SELECT id FROM (SELECT id FROM jobs WHERE queue = ?4 AND state = 'available' AND run_at <= ?3
                                 ORDER BY priority DESC, run_at, id LIMIT ?5)
                 LIMIT ?5)
             RETURNING ",
            job_columns!()
        );
        let rows = sqlx::query(sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(queue)
            .bind(limit as i64)
            .fetch_all(&self.writer)
            .await?;
        let mut jobs = rows.iter().map(|r| job_from_row!(r)).collect::<Result<Vec<_>>>()?;
        sort_claimed(&mut jobs);
        for job in &jobs {
            if let Some(doc) = &job.document_id {
                sqlx::query(
                    "UPDATE documents SET status = 'running', stage = ?, updated_at = ?
                     WHERE id = ? AND status IN ('queued', 'running')",
                )
                .bind(&job.stage)
                .bind(now)
                .bind(doc)
                .execute(&self.writer)
                .await?;
            }
        }
        Ok(jobs)
    }

    async fn heartbeat(&self, job: &Job, worker: &str, lease_until: i64) -> Result<Heartbeat> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND locked_by = ? AND attempt = ?
             RETURNING cancel_requested",
        )
        .bind(lease_until)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match cancel {
            None => Heartbeat::Lost,
            Some(true) => Heartbeat::CancelRequested,
            Some(false) => Heartbeat::Held,
        })
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<bool>> {
        let now = now_ms();
        // Jobs with nothing to follow them are marked done in one statement.
        let (simple, complex): (Vec<&Completion>, Vec<&Completion>) =
            completions.iter().partition(|c| c.next.is_empty() && c.fan_in.is_none() && c.job.document_id.is_none());
        let mut done = std::collections::HashSet::new();
        if !simple.is_empty() {
            let fences: Vec<(i64, &str, i32)> =
                simple.iter().map(|c| (c.job.id, c.worker.as_str(), c.job.attempt)).collect();
            let ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE jobs SET state = 'done', finished_at = ?1, lease_until = NULL, error = NULL
                 FROM (SELECT value ->> 0 AS id, value ->> 1 AS worker, value ->> 2 AS attempt FROM json_each(?2)) AS t
                 WHERE jobs.id = t.id AND jobs.state = 'running' AND jobs.locked_by = t.worker
                   AND jobs.attempt = t.attempt
                 RETURNING jobs.id",
            )
            .bind(now)
            .bind(serde_json::to_string(&fences).expect("fences serialise"))
            .fetch_all(&self.writer)
            .await?;
            done.extend(ids);
        }
        if !complex.is_empty() {
            let mut tx = self.writer.begin().await?;
            for c in &complex {
                if complete_one(&mut tx, c, now).await? {
                    done.insert(c.job.id);
                }
            }
            tx.commit().await?;
            for c in &complex {
                c.next
                    .iter()
                    .map(|n| &n.queue)
                    .chain(c.fan_in.as_ref().map(|f| &f.next.queue))
                    .for_each(|q| self.wakers.wake(q));
            }
        }
        Ok(completions.iter().map(|c| done.contains(&c.job.id)).collect())
    }

    async fn fail(&self, job: &Job, worker: &str, reason: &str, failure: Failure) -> Result<bool> {
        let now = now_ms();
        let (state, retry_at) = match failure {
            Failure::Retry { at } if job.attempt < job.max_attempts => (JobState::Available, Some(at)),
            Failure::Retry { .. } => (JobState::Dead, None),
            Failure::Permanent => (JobState::Failed, None),
        };
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(concat!(
            "UPDATE jobs SET state = ?, run_at = COALESCE(?, run_at), error = ?, lease_until = NULL,
                    finished_at = CASE WHEN ? THEN NULL ELSE ? END",
            fence!()
        ))
        .bind(state.as_str())
        .bind(retry_at)
        .bind(reason)
        .bind(retry_at.is_some())
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        if let (Some(doc), None) = (&job.document_id, retry_at) {
            let failed = sqlx::query(
                "UPDATE documents SET status = 'failed', error = ?, updated_at = ?
                 WHERE id = ? AND status IN ('queued', 'running')",
            )
            .bind(format!("{}: {reason}", job.stage))
            .bind(now)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            if failed.rows_affected() == 1 {
                enqueue_finish_job(&mut tx, doc, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self, job: &Job, worker: &str) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE jobs SET state = 'available', attempt = attempt - 1, locked_by = NULL, lease_until = NULL",
            fence!()
        ))
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            self.wakers.wake(&job.queue);
        }
        Ok(done.rows_affected() == 1)
    }

    async fn confirm_cancel(&self, job: &Job, worker: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done =
            sqlx::query(concat!("UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL", fence!()))
                .bind(now)
                .bind(job.id)
                .bind(worker)
                .bind(job.attempt)
                .execute(&mut *tx)
                .await?;
        if let Some(doc) = &job.document_id {
            mark_document_cancelled(&mut tx, doc, now).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn cancel_job(&self, id: i64) -> Result<Option<JobState>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let doc: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'available' RETURNING document_id",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match doc {
            Some(Some(doc)) => mark_document_cancelled(&mut tx, &doc, now).await?,
            Some(None) => {}
            None => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        state.map(|s| JobState::parse(&s)).transpose()
    }

    async fn cancel_document(&self, id: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let queued = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE document_id = ? AND state = 'available'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let running = sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE document_id = ? AND state = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        mark_document_cancelled(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(queued.rows_affected() + running.rows_affected())
    }

    async fn retry_job(&self, id: i64) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE jobs SET state = 'available', attempt = 0, run_at = ?, finished_at = NULL, locked_by = NULL,
                    lease_until = NULL, cancel_requested = 0
             WHERE id = ? AND state IN ('failed', 'dead', 'cancelled') RETURNING queue, document_id",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((queue, doc)) = row else { return Ok(false) };
        if let Some(doc) = doc {
            sqlx::query("UPDATE documents SET status = 'running', error = NULL, updated_at = ? WHERE id = ?")
                .bind(now)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.wakers.wake(&queue);
        Ok(true)
    }

    async fn cleanup(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < ?")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| job_from_row!(r)).transpose()
    }

    async fn jobs_for_document(&self, document_id: &str) -> Result<Vec<Job>> {
        let rows = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE document_id = ? ORDER BY id"))
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| job_from_row!(r)).collect()
    }

    async fn document(&self, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| document_from_row!(r)).transpose()
    }

    async fn queue_stats(&self, now: i64) -> Result<Vec<QueueStats>> {
        let counts: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state")
                .fetch_all(&self.pool)
                .await?;
        let oldest: Vec<(String, i64)> = sqlx::query_as(
            "SELECT queue, MIN(run_at) FROM jobs WHERE state = 'available' AND run_at <= ? GROUP BY queue",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(super::collect_stats(counts, oldest, now))
    }

    async fn stage_durations(&self) -> Result<Vec<StageDurations>> {
        let rows = sqlx::query(super::STAGE_DURATIONS_SQL).fetch_all(&self.pool).await?;
        rows.iter().map(|r| durations_from_row!(r)).collect()
    }

    async fn pages_done(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT CAST(COALESCE(SUM(pages_done), 0) AS BIGINT) FROM documents")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn set_document_info(&self, id: &str, media_type: &str, pages: i64) -> Result<()> {
        sqlx::query("UPDATE documents SET media_type = ?, pages = ?, updated_at = ? WHERE id = ?")
            .bind(media_type)
            .bind(pages)
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_language(&self, id: &str, language: &str) -> Result<()> {
        sqlx::query("UPDATE documents SET language = ?, updated_at = ? WHERE id = ?")
            .bind(language)
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_classification(&self, id: &str, doc_type: &str, score: f64) -> Result<()> {
        sqlx::query("UPDATE documents SET doc_type = ?, doc_type_score = ?, updated_at = ? WHERE id = ?")
            .bind(doc_type)
            .bind(score)
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn recent_documents(&self, limit: i64) -> Result<Vec<Document>> {
        let rows = sqlx::query("SELECT * FROM documents ORDER BY created_at DESC, id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| document_from_row!(r)).collect()
    }

    async fn find_duplicate(&self, sha256: &str, collection: &str) -> Result<Option<Document>> {
        let row = sqlx::query(
            "SELECT * FROM documents WHERE sha256 = ? AND collection = ? AND status NOT IN ('failed', 'cancelled') ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(sha256)
        .bind(collection)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| document_from_row!(r)).transpose()
    }

    async fn insert_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (id, name, hash, collections, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(serde_json::to_string(&token.collections).expect("strings serialise"))
            .bind(token.created_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = ? AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| token_from_row!(r)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| token_from_row!(r)).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_document(&self, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        for sql in DELETE_DOCUMENT {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM documents WHERE id = ?").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn replace_figures(&self, document_id: &str, page: i64, figures: &[Figure]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
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
        rows.iter().map(|r| figure_from_row!(r)).collect()
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn artifacts(&self, document_id: &str) -> Result<Vec<Artifact>> {
        let rows = sqlx::query("SELECT * FROM artifacts WHERE document_id = ? ORDER BY name")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| artifact_from_row!(r)).collect()
    }

    async fn replace_flashcards(&self, document_id: &str, cards: &[Flashcard]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM flashcards WHERE document_id = ?").bind(document_id).execute(&mut *tx).await?;
        for c in cards {
            sqlx::query(
                "INSERT INTO flashcards (id, document_id, front, back, page, ease, interval_days, repetitions, due)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.id)
            .bind(document_id)
            .bind(&c.front)
            .bind(&c.back)
            .bind(c.page)
            .bind(c.sm2.ease)
            .bind(c.sm2.interval_days as i64)
            .bind(c.sm2.repetitions as i64)
            .bind(c.sm2.due.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn flashcard(&self, id: &str) -> Result<Option<Flashcard>> {
        let row = sqlx::query("SELECT * FROM flashcards WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| flashcard_from_row!(r)).transpose()
    }

    async fn set_flashcard_schedule(&self, id: &str, sm2: &crate::sm2::Sm2) -> Result<bool> {
        let done =
            sqlx::query("UPDATE flashcards SET ease = ?, interval_days = ?, repetitions = ?, due = ? WHERE id = ?")
                .bind(sm2.ease)
                .bind(sm2.interval_days as i64)
                .bind(sm2.repetitions as i64)
                .bind(sm2.due.timestamp_millis())
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn wait_for_jobs(&self, queue: &str) {
        self.wakers.get(queue).notified().await;
    }
}

async fn mark_document_cancelled(tx: &mut Transaction<'_, Sqlite>, doc: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE documents SET status = 'cancelled', error = 'cancelled', updated_at = ?
         WHERE id = ? AND status IN ('queued', 'running')",
    )
    .bind(now)
    .bind(doc)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lectern.db");
        let store = SqliteStore::open_file(&path).await.unwrap();
        sqlx::query("CREATE TABLE scratch (x BLOB)").execute(&store.writer).await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..100 {
            sqlx::query("INSERT INTO scratch VALUES (zeroblob(10000))").execute(&store.writer).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("lectern.db-wal")).unwrap().len();
        assert!(wal > 900_000, "the commits sit in the WAL ({wal} bytes)");
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after > before + 900_000, "checkpointed into the file: {before} → {after} bytes");
    }
}
