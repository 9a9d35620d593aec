//! Worker pools: per queue, a fetcher claims jobs in batches (up to the free concurrency
//! slots) and runs each on its own task while a heartbeat keeps the lease and watches for
//! cancellation. Successes go to one batching completer that records many completions per
//! transaction; each completion enqueues the job's follow-ups atomically. Bad input fails
//! at once; other errors retry with exponential backoff and jitter until the queue's
//! `max_attempts`, then the job is dead. On shutdown, workers stop claiming, give running
//! jobs a grace period, then release them without charging an attempt.
//!
//! The engine knows nothing about documents: what a job on a queue does is the
//! [`Handler`] registered for that queue in [`Handlers`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot};

use serde::Deserialize;

use crate::shutdown::Shutdown;
use crate::storage::{Completion, Failure, FanIn, Heartbeat, Job, NewJob, Store, now_ms};

/// What a successful job leads to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub next: Vec<NewJob>,
    pub fan_in: Option<FanIn>,
}

/// Why a job failed. The message is what users see on the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retrying cannot help (bad input): the job fails for good at once.
    #[error("{0}")]
    Fail(String),
    /// Anything else: retried with backoff until the queue's `max_attempts`.
    #[error("{0}")]
    Retry(String),
}

/// What the jobs of a queue do.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<Outcome, JobError>;
}

/// Which handler runs the jobs of each queue.
#[derive(Clone, Default)]
pub struct Handlers(BTreeMap<String, Arc<dyn Handler>>);

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Jobs on `queue` go to `handler`.
    pub fn on(mut self, queue: &str, handler: Arc<dyn Handler>) -> Self {
        self.0.insert(queue.to_string(), handler);
        self
    }

    fn get(&self, queue: &str) -> Option<&Arc<dyn Handler>> {
        self.0.get(queue)
    }
}

/// Settings of one queue (`[queues.<name>]` in `jobs/pipeline.toml`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Jobs one process runs at once.
    pub concurrency: usize,
    pub timeout_secs: u64,
    pub max_attempts: i32,
    /// First retry delay; doubles with each attempt.
    pub backoff_ms: u64,
    /// Higher runs first.
    pub priority: i32,
}

/// Timing knobs of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a claim holds a job without a heartbeat.
    pub lease: Duration,
    /// How often running jobs renew their lease and check for cancellation.
    pub heartbeat: Duration,
    /// Idle workers re-check the queue this often (the listener usually wakes them sooner).
    pub poll: Duration,
    /// On shutdown, how long running jobs may finish before they are released.
    pub grace: Duration,
    /// Finished jobs older than this are deleted (documents keep their status).
    pub retention: Option<Duration>,
    /// Per-queue settings (timeout, attempts, backoff).
    pub queues: BTreeMap<String, QueueConfig>,
}

impl EngineConfig {
    pub fn new(queues: BTreeMap<String, QueueConfig>) -> Self {
        Self {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(30),
            retention: None,
            queues,
        }
    }
}

/// One queue and how many of its jobs this process runs at once.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub queue: String,
    pub concurrency: usize,
}

/// A unique name for this worker process: host (the kernel's, as `hostname` prints it),
/// pid and a random suffix, so a restarted worker never mistakes its predecessor's jobs
/// for its own.
pub fn worker_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:06x}", std::process::id(), rand::rng().random_range(0..0xFF_FFFF))
}

struct Shared {
    store: Arc<Store>,
    handlers: Handlers,
    config: EngineConfig,
    worker: String,
    completer: mpsc::Sender<(Completion, oneshot::Sender<bool>)>,
}

/// Runs worker pools for `specs` until `shutdown` fires and running jobs are finished or
/// released.
pub async fn run(
    store: Arc<Store>,
    handlers: Handlers,
    config: EngineConfig,
    specs: Vec<QueueSpec>,
    shutdown: Shutdown,
) {
    let worker = worker_name();
    tracing::info!(worker = %worker, ?specs, "workers starting");
    let (tx, rx) = mpsc::channel(4096);
    let completer = tokio::spawn(complete_batches(store.clone(), rx));
    let shared = Arc::new(Shared { store, handlers, config, worker: worker.clone(), completer: tx });
    let mut fetchers = tokio::task::JoinSet::new();
    for spec in specs {
        fetchers.spawn(fetch_loop(shared.clone(), spec, shutdown.clone()));
    }
    let janitor =
        shared.config.retention.map(|keep| tokio::spawn(clean_up(shared.store.clone(), keep, shutdown.clone())));
    while fetchers.join_next().await.is_some() {}
    if let Some(janitor) = janitor {
        let _ = janitor.await;
    }
    drop(shared);
    let _ = completer.await;
    tracing::info!(worker = %worker, "workers stopped");
}

/// Claims as many jobs as there are free slots and runs each on its own task.
async fn fetch_loop(shared: Arc<Shared>, spec: QueueSpec, mut shutdown: Shutdown) {
    let capacity = spec.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    let mut running = tokio::task::JoinSet::new();
    while !shutdown.is_triggered() {
        let Ok(first) = slots.clone().acquire_owned().await else { break };
        let mut permits = vec![first];
        // Short jobs finish in bursts: let the runtime run a few rounds so one claim can
        // fill more slots (fewer round trips to the store); costs microseconds otherwise.
        for _ in 0..8 {
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            if permits.len() == capacity {
                break;
            }
            tokio::task::yield_now().await;
        }
        let now = now_ms();
        let lease_until = now + shared.config.lease.as_millis() as i64;
        match shared.store.claim(&spec.queue, &shared.worker, permits.len(), now, lease_until).await {
            Ok(jobs) if !jobs.is_empty() => {
                for job in jobs {
                    let permit = permits.pop().expect("no more jobs than permits");
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    running.spawn(async move { run_job(&shared, job, shutdown, permit).await });
                }
                while running.try_join_next().is_some() {}
            }
            Ok(_) => {
                drop(permits);
                tokio::select! {
                    _ = shared.store.wait_for_jobs(&spec.queue) => {}
                    _ = tokio::time::sleep(shared.config.poll) => {}
                    _ = shutdown.wait() => {}
                }
            }
            Err(e) => {
                drop(permits);
                tracing::error!(queue = %spec.queue, error = %e, "claim failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait() => {}
                }
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// Deletes finished jobs past their retention, every few minutes.
async fn clean_up(store: Arc<Store>, keep: Duration, mut shutdown: Shutdown) {
    let every = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        match store.cleanup(now_ms() - keep.as_millis() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "removed finished jobs past retention"),
            Err(e) => tracing::warn!(error = %e, "cleanup of finished jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Records completions in batches: whatever is waiting, up to 512, in one transaction.
async fn complete_batches(store: Arc<Store>, mut rx: mpsc::Receiver<(Completion, oneshot::Sender<bool>)>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let completions: Vec<Completion> = batch.iter().map(|(c, _)| c.clone()).collect();
        let mut delay = Duration::from_millis(100);
        let results = loop {
            match store.complete(&completions).await {
                Ok(results) => break results,
                Err(e) => {
                    tracing::error!(error = %e, n = completions.len(), "recording completions failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        for ((_, reply), ok) in batch.drain(..).zip(results) {
            let _ = reply.send(ok);
        }
    }
}

enum Ending {
    Finished(Result<Outcome, JobError>),
    LeaseLost,
    Cancelled,
    Released,
}

/// Runs one job and records how it ended. The concurrency slot (`permit`) frees as soon as
/// the handler returns, so the next claim overlaps with recording this outcome.
async fn run_job(shared: &Shared, job: Job, shutdown: Shutdown, permit: tokio::sync::OwnedSemaphorePermit) {
    let started = std::time::Instant::now();
    let ending = if job.cancel_requested { Ending::Cancelled } else { execute(shared, &job, shutdown).await };
    drop(permit);
    let store = &shared.store;
    let worker = shared.worker.as_str();
    let recorded = match ending {
        Ending::Finished(Ok(outcome)) => {
            let (reply, answer) = oneshot::channel();
            let completion =
                Completion { job: job.clone(), worker: worker.to_string(), next: outcome.next, fan_in: outcome.fan_in };
            if shared.completer.send((completion, reply)).await.is_err() {
                return;
            }
            let ok = answer.await.unwrap_or(false);
            if ok {
                tracing::debug!(job = job.id, queue = %job.queue, doc = ?job.document_id, elapsed_ms = started.elapsed().as_millis() as u64, "job done");
            }
            Ok(ok)
        }
        Ending::Finished(Err(JobError::Fail(reason))) => {
            tracing::warn!(job = job.id, queue = %job.queue, doc = ?job.document_id, reason = %reason, "job failed: bad input");
            store.fail(&job, worker, &reason, Failure::Permanent).await
        }
        Ending::Finished(Err(JobError::Retry(reason))) => {
            tracing::warn!(job = job.id, queue = %job.queue, doc = ?job.document_id, attempt = job.attempt, reason = %reason, "job failed");
            let at = now_ms() + backoff(shared, &job).as_millis() as i64;
            store.fail(&job, worker, &reason, Failure::Retry { at }).await
        }
        Ending::Cancelled => {
            tracing::info!(job = job.id, queue = %job.queue, "job cancelled");
            store.confirm_cancel(&job, worker).await
        }
        Ending::Released => {
            tracing::info!(job = job.id, queue = %job.queue, "job released at shutdown");
            store.release(&job, worker).await
        }
        Ending::LeaseLost => Ok(false),
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = job.id, "lease was lost; another worker owns this job now"),
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "could not record the job's outcome; its lease will expire")
        }
    }
}

/// Runs the handler with heartbeats, the queue's timeout and the shutdown grace period.
async fn execute(shared: &Shared, job: &Job, mut shutdown: Shutdown) -> Ending {
    let timeout = shared
        .config
        .queues
        .get(&job.queue)
        .map(|q| Duration::from_secs(q.timeout_secs))
        .unwrap_or(Duration::from_secs(600));
    let Some(handler) = shared.handlers.get(&job.queue) else {
        return Ending::Finished(Err(JobError::Fail(format!("no handler for queue {:?} in this worker", job.queue))));
    };
    let work = std::panic::AssertUnwindSafe(handler.run(job)).catch_unwind();
    let heartbeat = async {
        let mut tick = tokio::time::interval(shared.config.heartbeat);
        tick.tick().await;
        loop {
            tick.tick().await;
            let lease_until = now_ms() + shared.config.lease.as_millis() as i64;
            match shared.store.heartbeat(job, &shared.worker, lease_until).await {
                Ok(Heartbeat::Held) => {}
                Ok(Heartbeat::Lost) => return Ending::LeaseLost,
                Ok(Heartbeat::CancelRequested) => return Ending::Cancelled,
                Err(e) => tracing::warn!(job = job.id, error = %e, "heartbeat failed"),
            }
        }
    };
    let grace = async {
        shutdown.wait().await;
        tokio::time::sleep(shared.config.grace).await;
        Ending::Released
    };
    tokio::select! {
        result = tokio::time::timeout(timeout, work) => Ending::Finished(match result {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(JobError::Retry(format!("the {} job panicked", job.queue))),
            Err(_) => Err(JobError::Retry(format!("timed out after {}s", timeout.as_secs()))),
        }),
        ending = heartbeat => ending,
        ending = grace => ending,
    }
}

/// `backoff_ms * 2^(attempt-1)`, capped at one hour, plus up to 20 % jitter.
fn backoff(shared: &Shared, job: &Job) -> Duration {
    let base = shared.config.queues.get(&job.queue).map(|q| q.backoff_ms).unwrap_or(1000);
    let exp = base.saturating_mul(1u64 << (job.attempt.clamp(1, 20) - 1)).min(3_600_000);
    Duration::from_millis(exp + rand::rng().random_range(0..=exp / 5))
}
