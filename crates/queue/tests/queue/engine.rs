//! The worker engine against both backends with a scripted handler (no documents):
//! retries with stored backoff, dead jobs revived, cancel of a running job, delayed jobs,
//! priorities, and graceful shutdown that releases without charging an attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lectern_queue::engine::{self, EngineConfig, Handler, Handlers, JobError, Outcome, QueueConfig, QueueSpec};
use lectern_queue::storage::{Job, JobState, NewJob, Store, now_ms};

/// Behaviour comes from the payload: `fail` transient failures before success, `bad`
/// fails for good, `sleep_ms` before answering. Every call is recorded.
#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<(i64, i32)>>,
}

#[async_trait]
impl Handler for Scripted {
    async fn run(&self, job: &Job) -> Result<Outcome, JobError> {
        self.calls.lock().unwrap().push((job.id, job.attempt));
        let p = &job.payload;
        if let Some(ms) = p["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if p["bad"].as_bool() == Some(true) {
            return Err(JobError::Fail("this input is bad".into()));
        }
        if (job.attempt as u64) <= p["fail"].as_u64().unwrap_or(0) {
            return Err(JobError::Retry(format!("flaky, attempt {}", job.attempt)));
        }
        Ok(Outcome::default())
    }
}

fn job(payload: serde_json::Value, priority: i32) -> NewJob {
    NewJob { queue: "q".into(), stage: "q".into(), document_id: None, payload, priority, max_attempts: 3, run_at: None }
}

fn config() -> EngineConfig {
    let q = QueueConfig { concurrency: 1, timeout_secs: 30, max_attempts: 3, backoff_ms: 200, priority: 0 };
    let mut c = EngineConfig::new(BTreeMap::from([("q".to_string(), q)]));
    c.lease = Duration::from_secs(2);
    c.heartbeat = Duration::from_millis(100);
    c.poll = Duration::from_millis(50);
    c.grace = Duration::from_millis(300);
    c
}

struct Running {
    trigger: lectern_queue::shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

fn start(store: &Arc<Store>, handler: &Arc<Scripted>, concurrency: usize, config: EngineConfig) -> Running {
    let (trigger, shutdown) = lectern_queue::shutdown::channel();
    let specs = vec![QueueSpec { queue: "q".into(), concurrency }];
    let task =
        tokio::spawn(engine::run(store.clone(), Handlers::new().on("q", handler.clone()), config, specs, shutdown));
    Running { trigger, task }
}

impl Running {
    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("engine stops").unwrap();
    }
}

async fn wait_state(store: &Store, id: i64, state: JobState, limit: Duration) -> Job {
    let start = Instant::now();
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        assert!(start.elapsed() < limit, "job {id} did not reach {state:?} within {limit:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn retries_with_backoff_then_succeeds(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let id = store.insert_jobs(&[job(serde_json::json!({ "fail": 2 }), 0)]).await.unwrap()[0];
    let engine = start(&store, &handler, 1, config());
    let job = wait_state(store.as_ref(), id, JobState::Done, Duration::from_secs(10)).await;
    engine.stop().await;
    assert_eq!(job.attempt, 3);
    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(calls, [(id, 1), (id, 2), (id, 3)]);
    // Backoff doubles (200 ms, 400 ms, jitter ≤ 20 %): the third attempt waited ≥ 400 ms.
    assert!(job.run_at - job.created_at >= 600, "stored run_at reflects backoff: {job:?}");
}

pub async fn dead_after_max_attempts_and_revived(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let id = store.insert_jobs(&[job(serde_json::json!({ "fail": 3 }), 0)]).await.unwrap()[0];
    let engine = start(&store, &handler, 1, config());
    let dead = wait_state(store.as_ref(), id, JobState::Dead, Duration::from_secs(10)).await;
    assert_eq!((dead.attempt, dead.error.as_deref()), (3, Some("flaky, attempt 3")));
    // Revived, it gets fresh attempts (and, scripted to fail three times, dies again).
    assert!(store.retry_job(id).await.unwrap());
    let again = wait_state(store.as_ref(), id, JobState::Dead, Duration::from_secs(10)).await;
    assert_eq!(again.attempt, 3);
    assert_eq!(handler.calls.lock().unwrap().len(), 6);
    let bad = store.insert_jobs(&[job(serde_json::json!({ "bad": true }), 0)]).await.unwrap()[0];
    let failed = wait_state(store.as_ref(), bad, JobState::Failed, Duration::from_secs(5)).await;
    assert_eq!((failed.attempt, failed.error.as_deref()), (1, Some("this input is bad")));
    engine.stop().await;
}

pub async fn cancel_stops_a_running_job(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let id = store.insert_jobs(&[job(serde_json::json!({ "sleep_ms": 30_000 }), 0)]).await.unwrap()[0];
    let engine = start(&store, &handler, 1, config());
    wait_state(store.as_ref(), id, JobState::Running, Duration::from_secs(5)).await;
    let asked = Instant::now();
    assert_eq!(store.cancel_job(id).await.unwrap(), Some(JobState::Running));
    wait_state(store.as_ref(), id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert!(asked.elapsed() < Duration::from_secs(2), "stopped at the next heartbeat");
    engine.stop().await;
}

pub async fn delayed_and_prioritised(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let mut delayed = job(serde_json::json!({}), 100);
    delayed.run_at = Some(now_ms() + 1500);
    let ids = store
        .insert_jobs(&[
            delayed,
            job(serde_json::json!({}), 0),
            job(serde_json::json!({}), 5),
            job(serde_json::json!({}), 0),
        ])
        .await
        .unwrap();
    let engine = start(&store, &handler, 1, config());
    for id in &ids {
        wait_state(store.as_ref(), *id, JobState::Done, Duration::from_secs(10)).await;
    }
    engine.stop().await;
    let order: Vec<i64> = handler.calls.lock().unwrap().iter().map(|c| c.0).collect();
    // Highest priority first, FIFO among equals; the delayed one (priority 100) waits its turn.
    assert_eq!(order, [ids[2], ids[1], ids[3], ids[0]]);
    let delayed = store.job(ids[0]).await.unwrap().unwrap();
    assert!(delayed.started_at.unwrap() >= delayed.run_at);
}

pub async fn timeout_fails_the_attempt(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let mut config = config();
    config.queues.get_mut("q").unwrap().timeout_secs = 1;
    let id = store.insert_jobs(&[job(serde_json::json!({ "sleep_ms": 30_000 }), 0)]).await.unwrap()[0];
    let engine = start(&store, &handler, 1, config);
    let dead = wait_state(store.as_ref(), id, JobState::Dead, Duration::from_secs(15)).await;
    engine.stop().await;
    assert_eq!((dead.attempt, dead.error.as_deref()), (3, Some("timed out after 1s")));
}

pub async fn shutdown_releases_without_charging_an_attempt(store: Arc<Store>) {
    let handler = Arc::new(Scripted::default());
    let id = store.insert_jobs(&[job(serde_json::json!({ "sleep_ms": 30_000 }), 0)]).await.unwrap()[0];
    let engine = start(&store, &handler, 1, config());
    wait_state(store.as_ref(), id, JobState::Running, Duration::from_secs(5)).await;
    let stopping = Instant::now();
    engine.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(3), "grace period, then release");
    let released = store.job(id).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempt), (JobState::Available, 0));
}

macro_rules! backend_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let dir = tempfile::tempdir().unwrap();
                        super::$name($open(dir.path()).await).await;
                    }
                };
            }
            case!(retries_with_backoff_then_succeeds);
            case!(dead_after_max_attempts_and_revived);
            case!(cancel_stops_a_running_job);
            case!(delayed_and_prioritised);
            case!(shutdown_releases_without_charging_an_attempt);
            case!(timeout_fails_the_attempt);
        }
    };
}

async fn open_sqlite(dir: &std::path::Path) -> Arc<Store> {
    lectern_queue::storage::open(None, dir).await.unwrap()
}

async fn open_postgres(dir: &std::path::Path) -> Arc<Store> {
    lectern_queue::storage::open(Some(&crate::fresh_pg_database().await), dir).await.unwrap()
}

backend_suite!(sqlite, open_sqlite);
backend_suite!(postgres, open_postgres);
