//! What only SQLite does: one file in WAL mode with a single writer connection per process
//! and a checkpointer, migrations from `migrations/sqlite` at open, claims as one
//! `UPDATE … RETURNING` statement (so workers in any number of processes never take the
//! same job) and batches through `json_each`. New jobs wake this process's idle workers at
//! once; other processes notice within their poll interval.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::db::Db;
use super::queue::insert_job;
use super::{Completion, Job, NewJob, Result, Store, StoreError, job_columns};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How often WAL pages are copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub async fn open_file(path: &Path) -> Result<Store> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    }
    open_with(SqliteConnectOptions::new().filename(path)).await
}

pub async fn open_url(url: &str) -> Result<Store> {
    open_with(SqliteConnectOptions::from_str(url)?).await
}

async fn open_with(options: SqliteConnectOptions) -> Result<Store> {
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
    let reader = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    let checkpointer = tokio::spawn(checkpoint(reader.clone()));
    Ok(Store { db: Db::Sqlite { reader, writer }, wakers: Default::default(), tasks: vec![checkpointer] })
}

async fn checkpoint(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(error = %e, "SQLite checkpoint failed");
        }
    }
}

/// Inserts jobs, one transaction per 5,000.
pub(crate) async fn insert_jobs(writer: &SqlitePool, jobs: &[NewJob], now: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(jobs.len());
    for batch in jobs.chunks(5000) {
        let mut tx = super::db::Tx::Sqlite(writer.begin().await?);
        for job in batch {
            ids.push(insert_job(&mut tx, job, now).await?);
        }
        tx.commit().await?;
    }
    Ok(ids)
}

/// Claims in one statement: expired leases first, then due jobs by priority, FIFO
/// (`?1` worker, `?2` lease end, `?3` now, `?4` queue, `?5` limit).
pub(crate) const CLAIM: &str = concat!(
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

/// Claimed jobs' documents become `running` at the job's stage, one statement each.
pub(crate) async fn mark_claimed(writer: &SqlitePool, jobs: &[Job], now: i64) -> Result<()> {
    for job in jobs {
        if let Some(doc) = &job.document_id {
            sqlx::query(
                "UPDATE documents SET status = 'running', stage = ?, updated_at = ?
                 WHERE id = ? AND status IN ('queued', 'running')",
            )
            .bind(&job.stage)
            .bind(now)
            .bind(doc)
            .execute(writer)
            .await?;
        }
    }
    Ok(())
}

/// Marks jobs done in one statement (fenced by worker and attempt); returns the ids done.
pub(crate) async fn complete_simple(writer: &SqlitePool, completions: &[&Completion], now: i64) -> Result<Vec<i64>> {
    let fences: Vec<(i64, &str, i32)> =
        completions.iter().map(|c| (c.job.id, c.worker.as_str(), c.job.attempt)).collect();
    Ok(sqlx::query_scalar(
        "UPDATE jobs SET state = 'done', finished_at = ?1, lease_until = NULL, error = NULL
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS worker, value ->> 2 AS attempt FROM json_each(?2)) AS t
         WHERE jobs.id = t.id AND jobs.state = 'running' AND jobs.locked_by = t.worker AND jobs.attempt = t.attempt
         RETURNING jobs.id",
    )
    .bind(now)
    .bind(serde_json::to_string(&fences).expect("fences serialise"))
    .fetch_all(writer)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lectern.db");
        let store = open_file(&path).await.unwrap();
        let Db::Sqlite { writer, .. } = &store.db else { unreachable!() };
        sqlx::query("CREATE TABLE scratch (x BLOB)").execute(writer).await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..100 {
            sqlx::query("INSERT INTO scratch VALUES (zeroblob(10000))").execute(writer).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("lectern.db-wal")).unwrap().len();
        assert!(wal > 900_000, "the commits sit in the WAL ({wal} bytes)");
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after > before + 900_000, "checkpointed into the file: {before} → {after} bytes");
    }
}
