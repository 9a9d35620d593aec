//! Jobs: insert, claim, lease, outcomes (fenced by worker and attempt), control from
//! outside, reads and stats. Written once for both databases; claims and the batched
//! statements come from the backend's driver module. A job's outcome also moves its
//! document (status, stage, fan-in page count, finish job) in the same transaction.

use std::collections::HashSet;

use sqlx::Row;

use super::db::{Db, Tx, on_pool, on_tx};
use super::{
    Completion, DocumentStatus, Failure, Heartbeat, Job, JobState, NewJob, QueueStats, Result, StageDurations, Store,
    durations_from_row, job_columns, job_from_row, now_ms, parse_finish_job, postgres, sqlite,
};

/// Only the worker holding this attempt's lease may change a running job: `$1` id,
/// `$2` worker, `$3` attempt.
macro_rules! fence {
    () => {
        " WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempt = $3"
    };
}

/// Document statuses a job outcome may still change.
macro_rules! unfinished {
    () => {
        "status IN ('queued', 'running')"
    };
}

impl Store {
    // insert

    /// Inserts jobs (in batches of one transaction each); returns their ids in order.
    pub async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<Vec<i64>> {
        let now = now_ms();
        let ids = match &self.db {
            Db::Sqlite { writer, .. } => sqlite::insert_jobs(writer, jobs, now).await?,
            Db::Postgres(pool) => postgres::insert_jobs(pool, jobs, now).await?,
        };
        self.wake(jobs.iter().map(|j| j.queue.as_str()));
        Ok(ids)
    }

    // claim and lease

    /// Claims up to `limit` runnable jobs on `queue` (expired leases first, then due jobs
    /// by priority, FIFO), leasing them until `lease_until` and counting an attempt; their
    /// documents become `running` at the job's stage.
    pub async fn claim(&self, queue: &str, worker: &str, limit: usize, now: i64, lease_until: i64) -> Result<Vec<Job>> {
        let sql = match &self.db {
            Db::Sqlite { .. } => sqlite::CLAIM,
            Db::Postgres(_) => postgres::CLAIM,
        };
        let mut jobs = on_pool!(
            &self.db,
            write | pool | {
                let rows = sqlx::query(sql)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .bind(queue)
                    .bind(limit as i64)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| job_from_row!(r)).collect::<Result<Vec<_>>>()?
            }
        );
        match &self.db {
            Db::Sqlite { writer, .. } => sqlite::mark_claimed(writer, &jobs, now).await?,
            Db::Postgres(pool) => postgres::mark_claimed(pool, &jobs, now).await?,
        }
        jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Extends the lease of a running job, and says whether someone asked to cancel it.
    pub async fn heartbeat(&self, job: &Job, worker: &str, lease_until: i64) -> Result<Heartbeat> {
        let sql = concat!("UPDATE jobs SET lease_until = $4", fence!(), " RETURNING cancel_requested");
        let cancel: Option<bool> = on_pool!(
            &self.db,
            write | pool | {
                sqlx::query_scalar(sql)
                    .bind(job.id)
                    .bind(worker)
                    .bind(job.attempt)
                    .bind(lease_until)
                    .fetch_optional(pool)
                    .await?
            }
        );
        Ok(match cancel {
            None => Heartbeat::Lost,
            Some(true) => Heartbeat::CancelRequested,
            Some(false) => Heartbeat::Held,
        })
    }

    // outcomes (fenced: only the worker holding this attempt's lease may record them)

    /// Records successes and their follow-up jobs in one transaction; per completion,
    /// false if its lease had been lost (nothing of it is recorded).
    pub async fn complete(&self, completions: &[Completion]) -> Result<Vec<bool>> {
        let now = now_ms();
        // Jobs with nothing to follow them are marked done in one statement.
        let (simple, complex): (Vec<&Completion>, Vec<&Completion>) =
            completions.iter().partition(|c| c.next.is_empty() && c.fan_in.is_none() && c.job.document_id.is_none());
        let mut done = HashSet::new();
        if !simple.is_empty() {
            done.extend(match &self.db {
                Db::Sqlite { writer, .. } => sqlite::complete_simple(writer, &simple, now).await?,
                Db::Postgres(pool) => postgres::complete_simple(pool, &simple, now).await?,
            });
        }
        if !complex.is_empty() {
            let mut tx = self.db.begin().await?;
            let mut queues = Vec::new();
            for c in &complex {
                if complete_one(&mut tx, c, now).await? {
                    done.insert(c.job.id);
                    queues.extend(c.next.iter().map(|n| n.queue.as_str()));
                    queues.extend(c.fan_in.as_ref().map(|f| f.next.queue.as_str()));
                }
            }
            announce(&mut tx, &queues).await?;
            tx.commit().await?;
            self.wake(queues);
        }
        Ok(completions.iter().map(|c| done.contains(&c.job.id)).collect())
    }

    /// Records a failed attempt with its reason: back to `available` at the retry time while
    /// attempts remain, else `dead`; `failed` at once on bad input. A job that ends for good
    /// fails its document.
    pub async fn fail(&self, job: &Job, worker: &str, reason: &str, failure: Failure) -> Result<bool> {
        let now = now_ms();
        let (state, retry_at) = match failure {
            Failure::Retry { at } if job.attempt < job.max_attempts => (JobState::Available, Some(at)),
            Failure::Retry { .. } => (JobState::Dead, None),
            Failure::Permanent => (JobState::Failed, None),
        };
        let mut tx = self.db.begin().await?;
        let sql = concat!(
            "UPDATE jobs SET state = $4, run_at = COALESCE($5, run_at), error = $6, lease_until = NULL,
                    finished_at = CASE WHEN $7 THEN NULL ELSE $8 END",
            fence!()
        );
        let updated = on_tx!(&mut tx, |t| {
            sqlx::query(sql)
                .bind(job.id)
                .bind(worker)
                .bind(job.attempt)
                .bind(state.as_str())
                .bind(retry_at)
                .bind(reason)
                .bind(retry_at.is_some())
                .bind(now)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        if updated != 1 {
            return Ok(false);
        }
        if let (Some(doc), None) = (&job.document_id, retry_at) {
            let error = format!("{}: {reason}", job.stage);
            let sql = concat!(
                "UPDATE documents SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND ",
                unfinished!()
            );
            let failed = on_tx!(&mut tx, |t| {
                sqlx::query(sql).bind(&error).bind(now).bind(doc).execute(&mut **t).await?.rows_affected()
            });
            if failed == 1 {
                enqueue_finish_job(&mut tx, doc, now).await?;
            }
        }
        if retry_at.is_some() {
            announce(&mut tx, &[job.queue.as_str()]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a job back without charging an attempt (graceful shutdown).
    pub async fn release(&self, job: &Job, worker: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let sql = concat!(
            "UPDATE jobs SET state = 'available', attempt = attempt - 1, locked_by = NULL, lease_until = NULL",
            fence!()
        );
        let released = on_tx!(&mut tx, |t| {
            sqlx::query(sql).bind(job.id).bind(worker).bind(job.attempt).execute(&mut **t).await?.rows_affected()
        }) == 1;
        if released {
            announce(&mut tx, &[job.queue.as_str()]).await?;
        }
        tx.commit().await?;
        if released {
            self.wake([job.queue.as_str()]);
        }
        Ok(released)
    }

    /// Marks a running job cancelled once its worker has stopped it.
    pub async fn confirm_cancel(&self, job: &Job, worker: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let sql = concat!("UPDATE jobs SET state = 'cancelled', finished_at = $4, lease_until = NULL", fence!());
        let done = on_tx!(&mut tx, |t| {
            sqlx::query(sql)
                .bind(job.id)
                .bind(worker)
                .bind(job.attempt)
                .bind(now)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        if let Some(doc) = &job.document_id {
            mark_document_cancelled(&mut tx, doc, now).await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    // control from outside

    /// Cancels a queued job at once, or asks its worker to stop a running one.
    /// Returns the job's state after the call.
    pub async fn cancel_job(&self, id: i64) -> Result<Option<JobState>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let doc: Option<Option<String>> = on_tx!(&mut tx, |t| {
            sqlx::query_scalar(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state = 'available'
                 RETURNING document_id",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut **t)
            .await?
        });
        match doc {
            Some(Some(doc)) => mark_document_cancelled(&mut tx, &doc, now).await?,
            Some(None) => {}
            None => on_tx!(&mut tx, |t| {
                sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND state = 'running'")
                    .bind(id)
                    .execute(&mut **t)
                    .await?;
            }),
        }
        let state: Option<String> = on_tx!(&mut tx, |t| {
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(id).fetch_optional(&mut **t).await?
        });
        tx.commit().await?;
        state.map(|s| JobState::parse(&s)).transpose()
    }

    /// Cancels every unfinished job of a document; returns how many were touched.
    pub async fn cancel_document(&self, id: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let touched = on_tx!(&mut tx, |t| {
            let queued = sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE document_id = $2 AND state = 'available'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **t)
            .await?;
            let running =
                sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE document_id = $1 AND state = 'running'")
                    .bind(id)
                    .execute(&mut **t)
                    .await?;
            queued.rows_affected() + running.rows_affected()
        });
        mark_document_cancelled(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(touched)
    }

    /// Revives a failed, dead or cancelled job with fresh attempts; false if not possible.
    pub async fn retry_job(&self, id: i64) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let row: Option<(String, Option<String>)> = on_tx!(&mut tx, |t| {
            sqlx::query_as(
                "UPDATE jobs SET state = 'available', attempt = 0, run_at = $1, finished_at = NULL, locked_by = NULL,
                        lease_until = NULL, cancel_requested = FALSE
                 WHERE id = $2 AND state IN ('failed', 'dead', 'cancelled') RETURNING queue, document_id",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut **t)
            .await?
        });
        let Some((queue, doc)) = row else { return Ok(false) };
        if let Some(doc) = doc {
            on_tx!(&mut tx, |t| {
                sqlx::query("UPDATE documents SET status = 'running', error = NULL, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&doc)
                    .execute(&mut **t)
                    .await?;
            });
        }
        announce(&mut tx, &[queue.as_str()]).await?;
        tx.commit().await?;
        self.wake([queue.as_str()]);
        Ok(true)
    }

    /// Deletes finished jobs (done, cancelled) that finished before `before`; documents
    /// keep their status, and a study set's job stays as long as the set (it is its status).
    pub async fn cleanup(&self, before: i64) -> Result<u64> {
        Ok(on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(
                    "DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1
                     AND NOT EXISTS (SELECT 1 FROM study_sets s WHERE s.job_id = jobs.id)",
                )
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
            }
        ))
    }

    // read

    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(|r| job_from_row!(r)).transpose()
            }
        )
    }

    pub async fn jobs_for_document(&self, document_id: &str) -> Result<Vec<Job>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows =
                    sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE document_id = $1 ORDER BY id"))
                        .bind(document_id)
                        .fetch_all(pool)
                        .await?;
                rows.iter().map(|r| job_from_row!(r)).collect()
            }
        )
    }

    /// Jobs per queue and state, and the age of each queue's oldest due job.
    pub async fn queue_stats(&self, now: i64) -> Result<Vec<QueueStats>> {
        let (counts, oldest) = on_pool!(
            &self.db,
            read | pool | {
                let counts: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state")
                        .fetch_all(pool)
                        .await?;
                let oldest: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT queue, MIN(run_at) FROM jobs WHERE state = 'available' AND run_at <= $1 GROUP BY queue",
                )
                .bind(now)
                .fetch_all(pool)
                .await?;
                (counts, oldest)
            }
        );
        Ok(super::collect_stats(counts, oldest, now))
    }

    /// How long finished jobs took, per stage (jobs still within retention).
    pub async fn stage_durations(&self) -> Result<Vec<StageDurations>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query(super::STAGE_DURATIONS_SQL).fetch_all(pool).await?;
                rows.iter().map(|r| durations_from_row!(r)).collect()
            }
        )
    }

    /// Wakes this process's idle workers on `queues`.
    pub(crate) fn wake<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        queues.into_iter().collect::<HashSet<_>>().into_iter().for_each(|q| self.wakers.wake(q));
    }
}

/// Inserts one job inside `tx`; returns its id.
pub(crate) async fn insert_job(tx: &mut Tx, job: &NewJob, now: i64) -> Result<i64> {
    Ok(on_tx!(tx, |t| {
        sqlx::query_scalar(
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
        .fetch_one(&mut **t)
        .await?
    }))
}

/// Tells workers in other processes that `queues` have new jobs, at commit (PostgreSQL's
/// `NOTIFY`; SQLite's workers in other processes poll).
pub(crate) async fn announce(tx: &mut Tx, queues: &[&str]) -> Result<()> {
    match tx {
        Tx::Sqlite(_) => Ok(()),
        Tx::Postgres(t) => postgres::notify(t, queues).await,
    }
}

/// Records one completion inside `tx`; false if the lease was lost.
async fn complete_one(tx: &mut Tx, c: &Completion, now: i64) -> Result<bool> {
    let sql = concat!("UPDATE jobs SET state = 'done', finished_at = $4, lease_until = NULL, error = NULL", fence!());
    let done = on_tx!(tx, |t| {
        sqlx::query(sql)
            .bind(c.job.id)
            .bind(&c.worker)
            .bind(c.job.attempt)
            .bind(now)
            .execute(&mut **t)
            .await?
            .rows_affected()
    });
    if done != 1 {
        return Ok(false);
    }
    let Some(doc) = &c.job.document_id else {
        for next in &c.next {
            insert_job(tx, next, now).await?;
        }
        return Ok(true);
    };
    // PostgreSQL locks the document row, so the fan-in of concurrent completions counts
    // every page; SQLite's writes are serial already.
    let status: Option<String> = match &mut *tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar("SELECT status FROM documents WHERE id = $1").bind(doc).fetch_optional(&mut **t).await?
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar("SELECT status FROM documents WHERE id = $1 FOR UPDATE")
                .bind(doc)
                .fetch_optional(&mut **t)
                .await?
        }
    };
    if status.as_deref() == Some(DocumentStatus::Cancelled.as_str()) {
        return Ok(true);
    }
    let mut next: Vec<&NewJob> = c.next.iter().collect();
    let mut waiting = false;
    if let Some(fan_in) = &c.fan_in {
        let (done, total): (i64, Option<i64>) = on_tx!(tx, |t| {
            sqlx::query_as(
                "UPDATE documents SET pages_done = pages_done + $1, updated_at = $2 WHERE id = $3
                 RETURNING pages_done, pages",
            )
            .bind(fan_in.pages)
            .bind(now)
            .bind(doc)
            .fetch_one(&mut **t)
            .await?
        });
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
        Some(n) => (DocumentStatus::Running, n.stage.as_str()),
        None if waiting => (DocumentStatus::Running, c.job.stage.as_str()),
        None => (DocumentStatus::Done, c.job.stage.as_str()),
    };
    let sql = concat!(
        "UPDATE documents SET status = $1, stage = $2, error = NULL, updated_at = $3 WHERE id = $4 AND ",
        unfinished!()
    );
    let updated = on_tx!(tx, |t| {
        sqlx::query(sql).bind(status.as_str()).bind(stage).bind(now).bind(doc).execute(&mut **t).await?.rows_affected()
    });
    if status == DocumentStatus::Done && updated == 1 {
        enqueue_finish_job(tx, doc, now).await?;
    }
    Ok(true)
}

/// Enqueues (and announces) the finish job of a document that has just become done or
/// failed: its webhook delivery.
async fn enqueue_finish_job(tx: &mut Tx, doc: &str, now: i64) -> Result<()> {
    let json: Option<String> = on_tx!(&mut *tx, |t| {
        sqlx::query_scalar("SELECT finish_job FROM documents WHERE id = $1")
            .bind(doc)
            .fetch_optional(&mut **t)
            .await?
            .flatten()
    });
    if let Some(json) = json {
        let job = parse_finish_job(&json)?;
        insert_job(tx, &job, now).await?;
        announce(tx, &[job.queue.as_str()]).await?;
    }
    Ok(())
}

async fn mark_document_cancelled(tx: &mut Tx, doc: &str, now: i64) -> Result<()> {
    let sql = concat!(
        "UPDATE documents SET status = 'cancelled', error = 'cancelled', updated_at = $1 WHERE id = $2 AND ",
        unfinished!()
    );
    on_tx!(tx, |t| {
        sqlx::query(sql).bind(now).bind(doc).execute(&mut **t).await?;
    });
    Ok(())
}
