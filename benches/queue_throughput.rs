//! No-op job throughput: enqueue N jobs, then drain them with one worker process at a
//! given concurrency, on SQLite and PostgreSQL; and the same workload on apalis's own
//! SQLite/PostgreSQL storages in the same run as the baseline.
//!
//! ```text
//! make bench-queue                     # 20k jobs, concurrency 8, 3 runs, all backends
//! cargo bench -p lectern-queue --bench queue_throughput -- --jobs 20000 --concurrency 8 --runs 3 \
//!     [--accumulated 200000] [--skip-apalis] [--apalis-jobs 20000] [--apalis-runs 1]
//! ```
//! PostgreSQL comes from `LECTERN_BENCH_PG_URL` (an admin URL; a fresh database is made
//! per run), which `make bench-queue` sets from `scripts/pg.sh start`.

#[path = "apalis_baseline.rs"]
mod apalis_baseline;
#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lectern_queue::engine::{self, EngineConfig, Handler, Handlers, JobError, Outcome, QueueConfig, QueueSpec};
use lectern_queue::storage::{Job, NewJob, Store, now_ms};

struct Noop(AtomicUsize);

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _job: &Job) -> Result<Outcome, JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::default())
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    enqueue: Duration,
    drain: Duration,
}

/// No-op job throughput, ours vs apalis.
#[derive(clap::Parser)]
struct Args {
    /// Jobs per run.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    repeat: args::Repeat,
    /// Also run on a SQLite table already holding this many finished jobs (0: not run).
    #[arg(long, default_value_t = 0)]
    accumulated: usize,
    /// Leave out the apalis baseline.
    #[arg(long)]
    skip_apalis: bool,
    /// Jobs per apalis run [default: --jobs].
    #[arg(long)]
    apalis_jobs: Option<usize>,
    /// Runs of the apalis baseline (the first ones of --runs).
    #[arg(long, default_value_t = 1)]
    apalis_runs: usize,
}

fn noop_job() -> NewJob {
    NewJob {
        queue: "bench".into(),
        stage: "bench".into(),
        document_id: None,
        payload: serde_json::json!({}),
        priority: 0,
        max_attempts: 3,
        run_at: None,
    }
}

/// Leaves `n` finished jobs in the table, as a long-running system would have.
async fn accumulate(store: &Store, n: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(20_000);
        store.insert_jobs(&vec![noop_job(); batch]).await.unwrap();
        let now = now_ms();
        loop {
            let claimed = store.claim("bench", "filler", 5000, now, now + 600_000).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            let done: Vec<_> = claimed
                .into_iter()
                .map(|job| lectern_queue::storage::Completion {
                    job,
                    worker: "filler".into(),
                    next: vec![],
                    fan_in: None,
                })
                .collect();
            store.complete(&done).await.unwrap();
        }
        left -= batch;
    }
}

async fn ours(store: Arc<Store>, n: usize, concurrency: usize) -> Sample {
    let jobs = vec![noop_job(); n];
    let t = Instant::now();
    store.insert_jobs(&jobs).await.unwrap();
    let enqueue = t.elapsed();

    let q = QueueConfig { concurrency, timeout_secs: 60, max_attempts: 3, backoff_ms: 100, priority: 0 };
    let config = EngineConfig::new(BTreeMap::from([("bench".to_string(), q)]));
    let handler = Arc::new(Noop(AtomicUsize::new(0)));
    let (trigger, shutdown) = lectern_queue::shutdown::channel();
    let t = Instant::now();
    let specs = vec![QueueSpec { queue: "bench".into(), concurrency }];
    let engine =
        tokio::spawn(engine::run(store.clone(), Handlers::new().on("bench", handler.clone()), config, specs, shutdown));
    // Done means recorded done in the store, not just run.
    loop {
        if handler.0.load(Ordering::Relaxed) >= n {
            let stats = store.queue_stats(now_ms()).await.unwrap();
            if stats.iter().find(|s| s.queue == "bench").is_some_and(|s| s.available == 0 && s.running == 0) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain = t.elapsed();
    trigger.trigger();
    engine.await.unwrap();
    assert_eq!(handler.0.load(Ordering::Relaxed), n, "every job ran exactly once");
    Sample { enqueue, drain }
}

/// Signals every run on a channel, for pick-up latency.
struct Ping(tokio::sync::mpsc::UnboundedSender<Instant>);

#[async_trait]
impl Handler for Ping {
    async fn run(&self, _job: &Job) -> Result<Outcome, JobError> {
        let _ = self.0.send(Instant::now());
        Ok(Outcome::default())
    }
}

/// Median time from inserting one job (through `inserter`) to an idle worker running it.
async fn pickup(worker: Arc<Store>, inserter: Arc<Store>, samples: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let q = QueueConfig { concurrency: 1, timeout_secs: 60, max_attempts: 3, backoff_ms: 100, priority: 0 };
    let config = EngineConfig::new(BTreeMap::from([("bench".to_string(), q)]));
    let (trigger, shutdown) = lectern_queue::shutdown::channel();
    let specs = vec![QueueSpec { queue: "bench".into(), concurrency: 1 }];
    let engine =
        tokio::spawn(engine::run(worker, Handlers::new().on("bench", Arc::new(Ping(tx))), config, specs, shutdown));
    let mut times = Vec::new();
    for _ in 0..samples {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t = Instant::now();
        inserter.insert_jobs(&[noop_job()]).await.unwrap();
        let ran = rx.recv().await.unwrap();
        times.push((ran - t).as_secs_f64());
    }
    trigger.trigger();
    engine.await.unwrap();
    Duration::from_secs_f64(median(times))
}

async fn fresh_pg(admin: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(label: &str, n: usize, samples: &[Sample]) -> (f64, f64) {
    let enq = median(samples.iter().map(|s| n as f64 / s.enqueue.as_secs_f64()).collect());
    let drain = median(samples.iter().map(|s| n as f64 / s.drain.as_secs_f64()).collect());
    let all: Vec<String> = samples.iter().map(|s| format!("{:.0}", n as f64 / s.drain.as_secs_f64())).collect();
    println!("{label:<44} n={n:<7} enqueue {enq:>9.0} jobs/s   drain {drain:>8.0} jobs/s  (runs: {})", all.join(", "));
    (enq, drain)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Args = args::parse();
    let apalis_jobs = a.apalis_jobs.unwrap_or(a.jobs);
    let pg = std::env::var("LECTERN_BENCH_PG_URL").ok();
    println!(
        "no-op jobs: {} per run, concurrency {}, {} runs, {} cores; medians",
        a.jobs,
        a.concurrency,
        a.repeat.runs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut results: BTreeMap<&str, f64> = BTreeMap::new();

    let mut sqlite = Vec::new();
    let mut sqlite_acc = Vec::new();
    let mut pg_ours = Vec::new();
    let mut apalis_sqlite = Vec::new();
    let mut apalis_pg = Vec::new();
    for run in 0..a.repeat.runs {
        let dir = tempfile::tempdir().unwrap();
        let store = lectern_queue::storage::open(None, dir.path()).await.unwrap();
        sqlite.push(ours(store, a.jobs, a.concurrency).await);
        if a.accumulated > 0 {
            let dir = tempfile::tempdir().unwrap();
            let store = lectern_queue::storage::open(None, dir.path()).await.unwrap();
            accumulate(store.as_ref(), a.accumulated).await;
            sqlite_acc.push(ours(store, a.jobs, a.concurrency).await);
        }
        if let Some(admin) = &pg {
            let url = fresh_pg(admin, &format!("bench_lectern_{run}")).await;
            let store = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
            pg_ours.push(ours(store, a.jobs, a.concurrency).await);
        }
        if !a.skip_apalis && run < a.apalis_runs {
            // apalis-sqlite slows down as jobs accumulate: 20k jobs take minutes.
            let limit = Duration::from_secs(900);
            let dir = tempfile::tempdir().unwrap();
            match apalis_baseline::sqlite_within(&dir.path().join("apalis.db"), apalis_jobs, a.concurrency, limit).await
            {
                Ok(d) => apalis_sqlite.push(Sample { enqueue: d.enqueue, drain: d.drain }),
                Err(e) => println!("apalis sqlite run {run} failed: {e:#}"),
            }
            if let Some(admin) = &pg {
                let url = fresh_pg(admin, &format!("bench_apalis_{run}")).await;
                match apalis_baseline::postgres_within(&url, apalis_jobs, a.concurrency, limit).await {
                    Ok(d) => apalis_pg.push(Sample { enqueue: d.enqueue, drain: d.drain }),
                    Err(e) => println!("apalis postgres run {run} failed: {e:#}"),
                }
            }
        }
    }
    results.insert("sqlite", report("lectern sqlite", a.jobs, &sqlite).1);
    if !sqlite_acc.is_empty() {
        let label = format!("lectern sqlite, {} finished jobs in table", a.accumulated);
        results.insert("sqlite_acc", report(&label, a.jobs, &sqlite_acc).1);
    }
    if !pg_ours.is_empty() {
        results.insert("postgres", report("lectern postgres", a.jobs, &pg_ours).1);
    }
    if !apalis_sqlite.is_empty() {
        results.insert("apalis_sqlite", report("apalis-sqlite 1.0 (baseline)", apalis_jobs, &apalis_sqlite).1);
    }
    if !apalis_pg.is_empty() {
        results.insert("apalis_postgres", report("apalis-postgres 1.0 (baseline)", apalis_jobs, &apalis_pg).1);
    }
    for (ours, theirs) in [("sqlite", "apalis_sqlite"), ("postgres", "apalis_postgres")] {
        if let (Some(o), Some(t)) = (results.get(ours), results.get(theirs)) {
            println!("drain ratio lectern/apalis on {ours}: {:.1}x", o / t);
        }
    }
    // Pick-up latency of an idle worker: same process (in-process wake-up) and, on
    // PostgreSQL, another process's insert (LISTEN/NOTIFY: a second store, own connections).
    let dir = tempfile::tempdir().unwrap();
    let store = lectern_queue::storage::open(None, dir.path()).await.unwrap();
    println!(
        "pick-up, sqlite, same process:      {:>6.1} ms (median of 20)",
        pickup(store.clone(), store, 20).await.as_secs_f64() * 1e3
    );
    if let Some(admin) = &pg {
        let url = fresh_pg(admin, "bench_pickup").await;
        let worker = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
        let other = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
        println!(
            "pick-up, postgres, other connection: {:>6.1} ms (median of 20)",
            pickup(worker, other, 20).await.as_secs_f64() * 1e3
        );
    }
    if let (Some(o), Some(acc)) = (results.get("sqlite"), results.get("sqlite_acc")) {
        println!("sqlite drain with accumulated finished jobs vs empty table: {:.2}x", acc / o);
    }
}
