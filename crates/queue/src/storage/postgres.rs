//! What only PostgreSQL does, for workers on many machines sharing one job store: claims
//! with `FOR UPDATE SKIP LOCKED`, batches through `UNNEST`, and `NOTIFY lectern_jobs` on
//! every insert (delivered at commit) with a listener task that wakes idle workers in every
//! process at once. The listener reconnects by itself when the server restarts.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::db::Db;
use super::{Completion, Job, NewJob, Result, Store, Wakers, job_columns};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");
const CHANNEL: &str = "lectern_jobs";
/// How long a caller waits for a connection: while the server is down, requests fail
/// (HTTP answers 503) after this long instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn connect(url: &str) -> Result<Store> {
    let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(ACQUIRE_TIMEOUT).connect(url).await?;
    MIGRATOR.run(&pool).await?;
    let wakers = Arc::new(Wakers::default());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let listener = tokio::spawn(listen(listener, wakers.clone()));
    Ok(Store { db: Db::Postgres(pool), wakers, tasks: vec![listener] })
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

/// `NOTIFY` each of `queues` once, delivered when `tx` commits.
pub(crate) async fn notify(tx: &mut Transaction<'static, Postgres>, queues: &[&str]) -> Result<()> {
    let mut queues = queues.to_vec();
    queues.sort_unstable();
    queues.dedup();
    for q in queues {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(q).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts jobs with one multi-row statement per 5,000 (arrays unnested server-side).
pub(crate) async fn insert_jobs(pool: &PgPool, jobs: &[NewJob], now: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(jobs.len());
    for batch in jobs.chunks(5000) {
        let mut tx = pool.begin().await?;
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
        notify(&mut tx, &batch.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>()).await?;
        tx.commit().await?;
    }
    Ok(ids)
}

/// Claims with `SKIP LOCKED`: expired leases first, then due jobs by priority, FIFO
/// (`$1` worker, `$2` lease end, `$3` now, `$4` queue, `$5` limit).
pub(crate) const CLAIM: &str = concat!(
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

/// Claimed jobs' documents become `running` at the job's stage, in one statement.
pub(crate) async fn mark_claimed(pool: &PgPool, jobs: &[Job], now: i64) -> Result<()> {
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
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Marks jobs done in one statement (fenced by worker and attempt); returns the ids done.
pub(crate) async fn complete_simple(pool: &PgPool, completions: &[&Completion], now: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE jobs SET state = 'done', finished_at = $1, lease_until = NULL, error = NULL
         FROM UNNEST($2::bigint[], $3::text[], $4::int[]) AS t(id, worker, attempt)
         WHERE jobs.id = t.id AND jobs.state = 'running' AND jobs.locked_by = t.worker AND jobs.attempt = t.attempt
         RETURNING jobs.id",
    )
    .bind(now)
    .bind(completions.iter().map(|c| c.job.id).collect::<Vec<_>>())
    .bind(completions.iter().map(|c| c.worker.clone()).collect::<Vec<_>>())
    .bind(completions.iter().map(|c| c.job.attempt).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?)
}
