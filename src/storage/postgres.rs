//! PostgreSQL backend, for workers on many machines sharing one job store.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`; every insert of jobs sends `NOTIFY lectern_jobs`
//! (delivered at commit) and a listener task wakes idle workers in every process at once.
//! The listener reconnects by itself when the server restarts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{
    ApiToken, Artifact, Completion, Document, Failure, Figure, Flashcard, Heartbeat, Job, JobState, JobStore,
    NewDocument, NewJob, QueueStats, Result, StageDurations, Wakers, artifact_from_row, document_from_row,
    durations_from_row, figure_from_row, finish_job_json, flashcard_from_row, job_from_row, now_ms, parse_finish_job,
    sort_claimed, token_from_row,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
const CHANNEL: &str = "lectern_jobs";

macro_rules! job_columns {
    () => {
        "id, queue, stage, document_id, payload, state, priority, attempt, max_attempts, run_at, locked_by, \
         lease_until, cancel_requested, error, created_at, started_at, finished_at"
    };
}

pub struct PgStore {
    pool: PgPool,
    wakers: Arc<Wakers>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect(url).await?;
        MIGRATOR.run(&pool).await?;
        let wakers = Arc::new(Wakers::default());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let listener = tokio::spawn(listen(listener, wakers.clone()));
        Ok(Self { pool, wakers, listener })
    }
}

async fn listen(mut listener: PgListener, wakers: Arc<Wakers>) {
    loop {
        // `recv` reconnects after a lost connection (and re-LISTENs).
        match listener.recv().await {
            Ok(n) => wakers.wake(n.payload()),
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL listener lost its connection; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn insert_job(tx: &mut Transaction<'_, Postgres>, job: &NewJob, now: i64) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (queue, stage, document_id, payload, state, priority, max_attempts, run_at, created_at)
         VALUES ($1, $2, $3, $4, 'available', $5, $6, $7, $8) RETURNING id",
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

async fn notify<'a>(tx: &mut Transaction<'_, Postgres>, queues: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut queues: Vec<&str> = queues.into_iter().collect();
    queues.sort_unstable();
    queues.dedup();
    for q in queues {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(q).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn complete_one(tx: &mut Transaction<'_, Postgres>, c: &Completion, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'done', finished_at = $1, lease_until = NULL, error = NULL
         WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempt = $4",
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
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM documents WHERE id = $1 FOR UPDATE")
        .bind(doc)
        .fetch_optional(&mut **tx)
        .await?;
    if status.as_deref() == Some("cancelled") {
        return Ok(true);
    }
    let mut next: Vec<&NewJob> = c.next.iter().collect();
    let mut waiting = false;
    if let Some(fan_in) = &c.fan_in {
        let (done, total): (i64, Option<i64>) = sqlx::query_as(
            "UPDATE documents SET pages_done = pages_done + $1, updated_at = $2 WHERE id = $3
             RETURNING pages_done, pages",
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
        "UPDATE documents SET status = $1, stage = $2, error = NULL, updated_at = $3
         WHERE id = $4 AND status IN ('queued', 'running')",
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

/// Enqueues (and announces) the finish job of a document that has just become done or failed.
async fn enqueue_finish_job(tx: &mut Transaction<'_, Postgres>, doc: &str, now: i64) -> Result<()> {
    let json: Option<String> = sqlx::query_scalar("SELECT finish_job FROM documents WHERE id = $1")
        .bind(doc)
        .fetch_optional(&mut **tx)
        .await?
        .flatten();
    if let Some(json) = json {
        let job = parse_finish_job(&json)?;
        insert_job(tx, &job, now).await?;
        notify(tx, [job.queue.as_str()]).await?;
    }
    Ok(())
}

async fn mark_document_cancelled(tx: &mut Transaction<'_, Postgres>, doc: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE documents SET status = 'cancelled', error = 'cancelled', updated_at = $1
         WHERE id = $2 AND status IN ('queued', 'running')",
    )
    .bind(now)
    .bind(doc)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What goes before the document row itself when a document is deleted.
const DELETE_DOCUMENT: [&str; 4] = [
    "DELETE FROM jobs WHERE document_id = $1",
    "DELETE FROM figures WHERE document_id = $1",
    "DELETE FROM artifacts WHERE document_id = $1",
    "DELETE FROM flashcards WHERE document_id = $1",
];

#[async_trait]
impl JobStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn insert_document(&self, doc: &NewDocument, first_job: &NewJob) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO documents (id, sha256, filename, size_bytes, collection, status, stage, created_at, updated_at,
                                    artifacts, callback_url, finish_job)
             VALUES ($1, $2, $3, $4, $7, 'queued', $5, $6, $6, $8, $9, $10)",
        )
        .bind(&doc.id)
        .bind(&doc.sha256)
        .bind(&doc.filename)
        .bind(doc.size_bytes)
        .bind(&first_job.stage)
        .bind(now)
        .bind(&doc.collection)
        .bind(doc.artifacts.as_ref().map(|a| serde_json::to_string(a).expect("names serialise")))
        .bind(&doc.callback_url)
        .bind(finish_job_json(doc))
        .execute(&mut *tx)
        .await?;
        let id = insert_job(&mut tx, first_job, now).await?;
        notify(&mut tx, [first_job.queue.as_str()]).await?;
        tx.commit().await?;
        self.wakers.wake(&first_job.queue);
        Ok(id)
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<Vec<i64>> {
        let now = now_ms();
        let mut ids = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(5000) {
            let mut tx = self.pool.begin().await?;
            // One multi-row INSERT per batch: arrays unnested server-side.
            let rows: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO jobs (queue, stage, document_id, payload, state, priority, max_attempts, run_at, created_at)
                 SELECT q, s, d, p, 'available', pr, m, r, $8
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bigint[])
                      AS t(q, s, d, p, pr, m, r)
                 RETURNING id",
            )
            .bind(batch.iter().map(|j| j.queue.clone()).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.stage.clone()).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.document_id.clone()).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.payload.to_string()).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.priority).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
            .bind(batch.iter().map(|j| j.run_at.unwrap_or(now)).collect::<Vec<_>>())
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            ids.extend(rows);
            notify(&mut tx, batch.iter().map(|j| j.queue.as_str())).await?;
            tx.commit().await?;
        }
        Ok(ids)
    }

    async fn claim(&self, queue: &str, worker: &str, limit: usize, now: i64, lease_until: i64) -> Result<Vec<Job>> {
        let sql = concat!(
            "WITH expired AS (
                 SELECT id FROM jobs WHERE queue = $4 AND state = 'running' AND lease_until < $3
                 ORDER BY lease_until LIMIT $5 FOR UPDATE SKIP LOCKED),
             due AS (
                 SELECT id FROM jobs WHERE queue = $4 AND state = 'available' AND run_at <= $3
                 ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED),
             candidates AS (SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $5)
             UPDATE jobs SET state = 'running', attempt = attempt + 1, locked_by = $1, lease_until = $2, started_at = $3
             WHERE id IN (SELECT id FROM candidates)
             RETURNING ",
            job_columns!()
        );
        let rows = sqlx::query(sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(queue)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(|r| job_from_row!(r)).collect::<Result<Vec<_>>>()?;
        sort_claimed(&mut jobs);
        let docs: Vec<(String, String)> =
            jobs.iter().filter_map(|j| j.document_id.clone().map(|d| (d, j.stage.clone()))).collect();
        if !docs.is_empty() {
            sqlx::query(
                "UPDATE documents SET status = 'running', stage = t.stage, updated_at = $3
                 FROM UNNEST($1::text[], $2::text[]) AS t(id, stage)
                 WHERE documents.id = t.id AND documents.status IN ('queued', 'running')",
            )
            .bind(docs.iter().map(|d| d.0.clone()).collect::<Vec<_>>())
            .bind(docs.iter().map(|d| d.1.clone()).collect::<Vec<_>>())
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(jobs)
    }

    async fn heartbeat(&self, job: &Job, worker: &str, lease_until: i64) -> Result<Heartbeat> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempt = $4
             RETURNING cancel_requested",
        )
        .bind(lease_until)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .fetch_optional(&self.pool)
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
            let ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE jobs SET state = 'done', finished_at = $1, lease_until = NULL, error = NULL
                 FROM UNNEST($2::bigint[], $3::text[], $4::int[]) AS t(id, worker, attempt)
                 WHERE jobs.id = t.id AND jobs.state = 'running' AND jobs.locked_by = t.worker
                   AND jobs.attempt = t.attempt
                 RETURNING jobs.id",
            )
            .bind(now)
            .bind(simple.iter().map(|c| c.job.id).collect::<Vec<_>>())
            .bind(simple.iter().map(|c| c.worker.clone()).collect::<Vec<_>>())
            .bind(simple.iter().map(|c| c.job.attempt).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
            done.extend(ids);
        }
        if !complex.is_empty() {
            let mut tx = self.pool.begin().await?;
            let mut queues = Vec::new();
            for c in &complex {
                if complete_one(&mut tx, c, now).await? {
                    done.insert(c.job.id);
                    queues.extend(c.next.iter().map(|n| n.queue.as_str()));
                    queues.extend(c.fan_in.as_ref().map(|f| f.next.queue.as_str()));
                }
            }
            notify(&mut tx, queues).await?;
            tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = COALESCE($2, run_at), error = $3, lease_until = NULL,
                    finished_at = CASE WHEN $4 THEN NULL ELSE $5 END
             WHERE id = $6 AND state = 'running' AND locked_by = $7 AND attempt = $8",
        )
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
                "UPDATE documents SET status = 'failed', error = $1, updated_at = $2
                 WHERE id = $3 AND status IN ('queued', 'running')",
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
        if retry_at.is_some() {
            notify(&mut tx, [job.queue.as_str()]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self, job: &Job, worker: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'available', attempt = attempt - 1, locked_by = NULL, lease_until = NULL
             WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempt = $3",
        )
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, [job.queue.as_str()]).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn confirm_cancel(&self, job: &Job, worker: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, lease_until = NULL
             WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempt = $4",
        )
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
        let mut tx = self.pool.begin().await?;
        let doc: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state = 'available'
             RETURNING document_id",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match doc {
            Some(Some(doc)) => mark_document_cancelled(&mut tx, &doc, now).await?,
            Some(None) => {}
            None => {
                sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND state = 'running'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        state.map(|s| JobState::parse(&s)).transpose()
    }

    async fn cancel_document(&self, id: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE document_id = $2 AND state = 'available'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let running =
            sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE document_id = $1 AND state = 'running'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        mark_document_cancelled(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(queued.rows_affected() + running.rows_affected())
    }

    async fn retry_job(&self, id: i64) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE jobs SET state = 'available', attempt = 0, run_at = $1, finished_at = NULL, locked_by = NULL,
                    lease_until = NULL, cancel_requested = FALSE
             WHERE id = $2 AND state IN ('failed', 'dead', 'cancelled') RETURNING queue, document_id",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((queue, doc)) = row else { return Ok(false) };
        if let Some(doc) = doc {
            sqlx::query("UPDATE documents SET status = 'running', error = NULL, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
        }
        notify(&mut tx, [queue.as_str()]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cleanup(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| job_from_row!(r)).transpose()
    }

    async fn jobs_for_document(&self, document_id: &str) -> Result<Vec<Job>> {
        let rows = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE document_id = $1 ORDER BY id"))
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| job_from_row!(r)).collect()
    }

    async fn document(&self, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| document_from_row!(r)).transpose()
    }

    async fn queue_stats(&self, now: i64) -> Result<Vec<QueueStats>> {
        let counts: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state")
                .fetch_all(&self.pool)
                .await?;
        let oldest: Vec<(String, i64)> = sqlx::query_as(
            "SELECT queue, MIN(run_at) FROM jobs WHERE state = 'available' AND run_at <= $1 GROUP BY queue",
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
        sqlx::query("UPDATE documents SET media_type = $1, pages = $2, updated_at = $3 WHERE id = $4")
            .bind(media_type)
            .bind(pages)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_language(&self, id: &str, language: &str) -> Result<()> {
        sqlx::query("UPDATE documents SET language = $1, updated_at = $2 WHERE id = $3")
            .bind(language)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_classification(&self, id: &str, doc_type: &str, score: f64) -> Result<()> {
        sqlx::query("UPDATE documents SET doc_type = $1, doc_type_score = $2, updated_at = $3 WHERE id = $4")
            .bind(doc_type)
            .bind(score)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn recent_documents(&self, limit: i64) -> Result<Vec<Document>> {
        let rows = sqlx::query("SELECT * FROM documents ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| document_from_row!(r)).collect()
    }

    async fn find_duplicate(&self, sha256: &str, collection: &str) -> Result<Option<Document>> {
        let row = sqlx::query(
            "SELECT * FROM documents WHERE sha256 = $1 AND collection = $2 AND status NOT IN ('failed', 'cancelled') ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(sha256)
        .bind(collection)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| document_from_row!(r)).transpose()
    }

    async fn insert_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (id, name, hash, collections, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(serde_json::to_string(&token.collections).expect("strings serialise"))
            .bind(token.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
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
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_document(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in DELETE_DOCUMENT {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM documents WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn replace_figures(&self, document_id: &str, page: i64, figures: &[Figure]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM figures WHERE document_id = $1 AND page = $2")
            .bind(document_id)
            .bind(page)
            .execute(&mut *tx)
            .await?;
        for f in figures {
            sqlx::query(
                "INSERT INTO figures (document_id, page, idx, label, score, x0, y0, x1, y1, path)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        let rows = sqlx::query("SELECT * FROM figures WHERE document_id = $1 ORDER BY page, idx")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| figure_from_row!(r)).collect()
    }

    async fn put_artifact(&self, document_id: &str, a: &Artifact) -> Result<()> {
        sqlx::query(
            "INSERT INTO artifacts (document_id, name, path, media_type, size_bytes) VALUES ($1, $2, $3, $4, $5)
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
        let rows = sqlx::query("SELECT * FROM artifacts WHERE document_id = $1 ORDER BY name")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| artifact_from_row!(r)).collect()
    }

    async fn replace_flashcards(&self, document_id: &str, cards: &[Flashcard]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM flashcards WHERE document_id = $1").bind(document_id).execute(&mut *tx).await?;
        for c in cards {
            sqlx::query(
                "INSERT INTO flashcards (id, document_id, front, back, page, ease, interval_days, repetitions, due)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        let row = sqlx::query("SELECT * FROM flashcards WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| flashcard_from_row!(r)).transpose()
    }

    async fn set_flashcard_schedule(&self, id: &str, sm2: &crate::sm2::Sm2) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE flashcards SET ease = $1, interval_days = $2, repetitions = $3, due = $4 WHERE id = $5",
        )
        .bind(sm2.ease)
        .bind(sm2.interval_days as i64)
        .bind(sm2.repetitions as i64)
        .bind(sm2.due.timestamp_millis())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn wait_for_jobs(&self, queue: &str) {
        self.wakers.get(queue).notified().await;
    }
}
