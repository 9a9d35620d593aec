//! Worker pools: per queue, `concurrency` tasks that claim a job, run its stage while a
//! heartbeat keeps the lease, and record the outcome. A stage's success enqueues the next
//! stage in the same transaction; bad input fails at once; other errors retry with
//! exponential backoff and jitter until the queue's `max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rand::Rng;

use crate::context::Context;
use crate::pipeline::{self, Stage, StageError};
use crate::shutdown::Shutdown;
use crate::storage::{Failure, Job, now_ms};

/// How long a claim holds a job without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(30);
/// Idle workers re-check the queue this often (jobs inserted by other processes).
pub const POLL: Duration = Duration::from_millis(500);

/// One queue and how many jobs of it this process runs at once.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub queue: String,
    pub concurrency: usize,
}

/// A unique name for this worker process: host, pid and a random suffix, so a restarted
/// worker never mistakes its predecessor's jobs for its own.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{:06x}", std::process::id(), rand::rng().random_range(0..0xFF_FFFF))
}

/// Runs worker pools for `specs` until `shutdown` fires and running jobs have finished.
pub async fn run(ctx: Arc<Context>, specs: Vec<QueueSpec>, shutdown: Shutdown) {
    let worker = Arc::new(worker_name());
    tracing::info!(worker = %worker, ?specs, "workers starting");
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs {
        for _ in 0..spec.concurrency.max(1) {
            tasks.spawn(work_loop(ctx.clone(), spec.queue.clone(), worker.clone(), shutdown.clone()));
        }
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!(worker = %worker, "workers stopped");
}

async fn work_loop(ctx: Arc<Context>, queue: String, worker: Arc<String>, mut shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let now = now_ms();
        match ctx.store.claim(&queue, &worker, now, now + LEASE.as_millis() as i64).await {
            Ok(Some(job)) => run_job(&ctx, &worker, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = ctx.store.wait_for_jobs(&queue) => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.wait() => {}
                }
            }
            Err(e) => {
                tracing::error!(queue = %queue, error = %e, "claim failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_job(ctx: &Context, worker: &str, job: Job) {
    let started = std::time::Instant::now();
    let outcome = execute(ctx, worker, &job).await;
    let store = &ctx.store;
    let recorded = match &outcome {
        Ok(()) => {
            let next = ctx
                .pipeline
                .next_stage(&job.stage)
                .zip(job.document_id.as_deref())
                .map(|(stage, doc)| pipeline::ingest::stage_job(&ctx.pipeline, stage, doc));
            store.complete(&job, worker, next.as_ref()).await
        }
        Err(StageError::BadInput(reason)) => store.fail(&job, worker, reason, Failure::Permanent).await,
        Err(StageError::Transient(reason)) => {
            let at = now_ms() + backoff(ctx, &job).as_millis() as i64;
            store.fail(&job, worker, reason, Failure::Retry { at }).await
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match (recorded, outcome) {
        (Ok(true), Ok(())) => {
            tracing::info!(job = job.id, stage = %job.stage, doc = ?job.document_id, elapsed_ms, "job done")
        }
        (Ok(true), Err(e)) => {
            tracing::warn!(job = job.id, stage = %job.stage, doc = ?job.document_id, attempt = job.attempt, error = %e, "job failed")
        }
        (Ok(false), _) => tracing::warn!(job = job.id, "lease was lost; another worker owns this job now"),
        (Err(e), _) => tracing::error!(job = job.id, error = %e, "could not record job outcome; the lease will expire"),
    }
}

/// Runs the stage with a heartbeat and the queue's timeout; panics become failures.
async fn execute(ctx: &Context, worker: &str, job: &Job) -> Result<(), StageError> {
    let stage =
        Stage::parse(&job.stage).ok_or_else(|| StageError::BadInput(format!("unknown stage {:?}", job.stage)))?;
    let document_id = job.document_id.clone().ok_or_else(|| StageError::BadInput("job has no document".into()))?;
    let timeout = ctx.pipeline.queue(&job.queue).map(|q| Duration::from_secs(q.timeout_secs)).unwrap_or(LEASE * 20);
    let work = std::panic::AssertUnwindSafe(pipeline::run_stage(ctx, stage, &document_id)).catch_unwind();
    let heartbeat = async {
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match ctx.store.heartbeat(job, worker, now_ms() + LEASE.as_millis() as i64).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(job = job.id, error = %e, "heartbeat failed"),
            }
        }
    };
    tokio::select! {
        result = tokio::time::timeout(timeout, work) => match result {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StageError::Transient(format!("{} stage panicked", stage.name()))),
            Err(_) => Err(StageError::Transient(format!("{} stage timed out after {}s", stage.name(), timeout.as_secs()))),
        },
        _ = heartbeat => Err(StageError::Transient("lease lost to another worker".into())),
    }
}

/// `backoff_ms * 2^(attempt-1)`, capped at one hour, plus up to 20 % jitter.
fn backoff(ctx: &Context, job: &Job) -> Duration {
    let base = ctx.pipeline.queue(&job.queue).map(|q| q.backoff_ms).unwrap_or(1000);
    let exp = base.saturating_mul(1u64 << (job.attempt.clamp(1, 20) - 1)).min(3_600_000);
    Duration::from_millis(exp + rand::rng().random_range(0..=exp / 5))
}
