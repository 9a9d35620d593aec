//! Baseline for the no-op job throughput benchmark: the same workload run against apalis's
//! own storages, so Lectern's numbers can be read next to a known engine in the same run.
//!
//! Versions: apalis 1.0.0, apalis-sqlite 1.0.0, apalis-postgres 1.0.0 (apalis-core 1.0.0),
//! on sqlx 0.9.0 and tokio 1.
//!
//! What is measured, for each storage:
//! - `enqueue`: one `TaskSink::push_bulk` of `n` jobs (payload: the job's index as a JSON
//!   number). apalis turns that into one transaction: `n` INSERTs on SQLite, one
//!   `INSERT .. SELECT unnest(..)` on PostgreSQL. The clock stops when it has committed.
//! - `drain`: from spawning one apalis worker (its `concurrency` limit = tower
//!   `ConcurrencyLimitLayer`, default apalis config: batches of 10, task locking and result
//!   persistence on) until all `n` rows are in apalis's done state (`status = 'Done'`) in the
//!   storage's own table. Handler invocations are counted with an `AtomicUsize`; once the count
//!   reaches `n` the storage table is polled until it shows `n` done rows, and only then does the
//!   clock stop. After the worker has been stopped, the count must be exactly `n` (no job ran
//!   twice) and the table must hold exactly `n` rows, all done; anything else is an error.
//! - Both phases share one time limit (`DEFAULT_LIMIT`, or `*_within`); past it the run fails
//!   with an error instead of hanging.
//!
//! Not measured: schema setup (apalis's migrations) and worker shutdown.
//!
//! SQLite: a fresh file at `path`. apalis's `SqliteStorage::setup` runs its migrations and sets
//! `journal_mode=WAL` (kept by the file) plus per-connection pragmas (`synchronous=OFF`, ...)
//! on whichever single pooled connection it happens to get. To keep the comparison fair and
//! deterministic, setup runs on a throwaway pool and the measured pool opens every connection
//! with the same settings as Lectern's own SQLite store: WAL, `synchronous=NORMAL`,
//! `busy_timeout` 10 s, at most 8 connections. PostgreSQL: a pool of at most 8 connections on
//! the given (fresh, empty) database, default server settings.
//!
//! Expect apalis-sqlite's drain rate to fall as `n` grows: with one worker, each ack batch
//! (`queries/task/ack.sql`) walks every row that worker has ever locked (index `LIdx` on
//! `lock_by`, done rows keep it) and each lock batch walks every pending row, so the drain is
//! quadratic in `n`. Compare engines at the same `n`.
#![allow(dead_code)] // the including bench may use only some of these

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder, WorkerBuilderExt, WorkerContext, WorkerError};
use sqlx::{
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::task::JoinHandle;

/// Time for one phase pair: `enqueue` (bulk push committed) and `drain` (all jobs done).
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub enqueue: Duration,
    pub drain: Duration,
}

impl Drain {
    /// Jobs per second for the enqueue phase.
    pub fn enqueue_rate(&self, n: usize) -> f64 {
        n as f64 / self.enqueue.as_secs_f64()
    }
    /// Jobs per second for the drain phase.
    pub fn drain_rate(&self, n: usize) -> f64 {
        n as f64 / self.drain.as_secs_f64()
    }
}

/// Time limit for one whole run (enqueue + drain) of `sqlite` / `postgres`.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(120);

/// apalis queue (its `job_type` column) used for the benchmark jobs.
const QUEUE: &str = "lectern-bench-noop";
/// How often the storage table is polled once the handler count has reached `n`.
const POLL: Duration = Duration::from_millis(1);

/// Fresh SQLite file at `path` (WAL), enqueue `n` no-op jobs, then run one worker with
/// `concurrency` until all `n` are done; measure both phases separately.
pub async fn sqlite(path: &Path, n: usize, concurrency: usize) -> anyhow::Result<Drain> {
    sqlite_within(path, n, concurrency, DEFAULT_LIMIT).await
}

/// Same against PostgreSQL at `url` (a fresh, empty database is given).
pub async fn postgres(url: &str, n: usize, concurrency: usize) -> anyhow::Result<Drain> {
    postgres_within(url, n, concurrency, DEFAULT_LIMIT).await
}

/// [`sqlite`] with an explicit time limit for the whole run (enqueue + drain).
pub async fn sqlite_within(path: &Path, n: usize, concurrency: usize, limit: Duration) -> anyhow::Result<Drain> {
    use apalis_sqlite::{Config, SqliteStorage};

    check_args(n, concurrency)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).with_context(|| format!("removing {}", Path::new(&file).display()));
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));

    // apalis's own setup (migrations + its pragmas) on a throwaway single-connection pool.
    let setup_pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .context("opening the apalis SQLite file")?;
    SqliteStorage::setup(&setup_pool).await.context("apalis-sqlite setup")?;
    setup_pool.close().await;

    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.synchronous(SqliteSynchronous::Normal))
        .await
        .context("opening the apalis SQLite pool")?;
    let deadline = Instant::now() + limit;
    let result = async {
        let mut storage = SqliteStorage::<u64>::new(&pool).with_config(Config::default().queue(QUEUE));

        let t0 = Instant::now();
        timeout_at(deadline, storage.push_bulk(jobs(n)), "enqueue")
            .await?
            .map_err(|e| anyhow!("apalis-sqlite push_bulk: {e}"))?;
        let enqueue = t0.elapsed();

        let calls = Arc::new(AtomicUsize::new(0));
        let ctx = WorkerContext::new("lectern-bench-apalis-sqlite");
        let worker = WorkerBuilder::new(&ctx).backend(storage).data(calls.clone()).concurrency(concurrency).build(noop);
        let started = Instant::now();
        let handle = tokio::spawn(worker.run());
        let drain = drain_and_verify(
            Running { ctx, handle, calls, started, deadline, n },
            || async {
                let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 AND status = 'Done'")
                    .bind(QUEUE)
                    .fetch_one(&pool)
                    .await?;
                Ok(done)
            },
            || async {
                let row: (i64, i64) =
                    sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(status = 'Done'), 0) FROM Jobs WHERE job_type = ?1")
                        .bind(QUEUE)
                        .fetch_one(&pool)
                        .await?;
                Ok(row)
            },
        )
        .await?;
        anyhow::Ok(Drain { enqueue, drain })
    }
    .await;
    pool.close().await;
    result.context("apalis-sqlite baseline")
}

/// [`postgres`] with an explicit time limit for the whole run (enqueue + drain).
pub async fn postgres_within(url: &str, n: usize, concurrency: usize, limit: Duration) -> anyhow::Result<Drain> {
    use apalis_postgres::{Config, PostgresStorage};

    check_args(n, concurrency)?;
    let pool = PgPoolOptions::new().max_connections(8).connect(url).await.context("connecting to PostgreSQL")?;
    let deadline = Instant::now() + limit;
    let result = async {
        PostgresStorage::setup(&pool).await.context("apalis-postgres setup")?;
        let mut storage = PostgresStorage::<u64>::new(&pool).with_config(Config::default().queue(QUEUE));

        let t0 = Instant::now();
        timeout_at(deadline, storage.push_bulk(jobs(n)), "enqueue")
            .await?
            .map_err(|e| anyhow!("apalis-postgres push_bulk: {e}"))?;
        let enqueue = t0.elapsed();

        let calls = Arc::new(AtomicUsize::new(0));
        let ctx = WorkerContext::new("lectern-bench-apalis-postgres");
        let worker = WorkerBuilder::new(&ctx).backend(storage).data(calls.clone()).concurrency(concurrency).build(noop);
        let started = Instant::now();
        let handle = tokio::spawn(worker.run());
        let drain = drain_and_verify(
            Running { ctx, handle, calls, started, deadline, n },
            || async {
                let done: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'")
                        .bind(QUEUE)
                        .fetch_one(&pool)
                        .await?;
                Ok(done)
            },
            || async {
                let row: (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'Done') \
                     FROM apalis.jobs WHERE job_type = $1",
                )
                .bind(QUEUE)
                .fetch_one(&pool)
                .await?;
                Ok(row)
            },
        )
        .await?;
        anyhow::Ok(Drain { enqueue, drain })
    }
    .await;
    pool.close().await;
    result.context("apalis-postgres baseline")
}

fn check_args(n: usize, concurrency: usize) -> anyhow::Result<()> {
    if n == 0 || concurrency == 0 {
        bail!("n and concurrency must be at least 1 (got n={n}, concurrency={concurrency})");
    }
    Ok(())
}

/// The payloads: each job's index.
fn jobs(n: usize) -> Vec<u64> {
    (0..n as u64).collect()
}

/// The no-op job: counts its invocations and succeeds.
async fn noop(_index: u64, calls: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn timeout_at<F: Future>(deadline: Instant, fut: F, phase: &str) -> anyhow::Result<F::Output> {
    tokio::time::timeout_at(deadline.into(), fut).await.map_err(|_| anyhow!("time limit reached during {phase}"))
}

/// A spawned apalis worker and what is needed to watch it.
struct Running {
    ctx: WorkerContext,
    handle: JoinHandle<Result<(), WorkerError>>,
    calls: Arc<AtomicUsize>,
    started: Instant,
    deadline: Instant,
    n: usize,
}

impl Running {
    /// Fails if the worker ended on its own or the time limit has passed.
    async fn check(&mut self, waiting_for: &str) -> anyhow::Result<()> {
        if self.handle.is_finished() {
            let outcome = match (&mut self.handle).await {
                Ok(Ok(())) => "exited".to_owned(),
                Ok(Err(e)) => format!("failed: {e}"),
                Err(e) => format!("panicked or was cancelled: {e}"),
            };
            bail!(
                "apalis worker {outcome} while waiting for {waiting_for} ({} of {} handler calls)",
                self.calls.load(Ordering::SeqCst),
                self.n
            );
        }
        if Instant::now() >= self.deadline {
            bail!(
                "time limit reached while waiting for {waiting_for} ({} of {} handler calls after {:.1?} of drain)",
                self.calls.load(Ordering::SeqCst),
                self.n,
                self.started.elapsed()
            );
        }
        Ok(())
    }
}

/// Waits until the handler has run `n` times and the storage shows `n` done rows (the drain
/// time), stops the worker, then checks that every job ran exactly once and is done.
async fn drain_and_verify<D, DF, T, TF>(mut run: Running, done: D, totals: T) -> anyhow::Result<Duration>
where
    D: Fn() -> DF,
    DF: Future<Output = anyhow::Result<i64>>,
    T: Fn() -> TF,
    TF: Future<Output = anyhow::Result<(i64, i64)>>,
{
    let measured = async {
        while run.calls.load(Ordering::SeqCst) < run.n {
            run.check("the handler calls").await?;
            tokio::time::sleep(POLL).await;
        }
        loop {
            let rows = done().await?;
            if rows >= run.n as i64 {
                break;
            }
            run.check(&format!("done rows ({rows} of {} so far)", run.n)).await?;
            tokio::time::sleep(POLL).await;
        }
        anyhow::Ok(run.started.elapsed())
    }
    .await;
    let drain = match measured {
        Ok(drain) => drain,
        Err(e) => {
            let _ = run.ctx.stop();
            run.handle.abort();
            return Err(e);
        }
    };

    // Outside the clock: stop the worker (it flushes pending acks) and verify.
    run.ctx.stop().map_err(|e| anyhow!("stopping the apalis worker: {e}"))?;
    let grace = run.deadline.max(Instant::now() + Duration::from_secs(10));
    match tokio::time::timeout_at(grace.into(), &mut run.handle).await {
        Err(_) => {
            run.handle.abort();
            bail!("the apalis worker did not stop within its time limit");
        }
        Ok(Err(e)) => bail!("the apalis worker panicked: {e}"),
        Ok(Ok(Err(e))) => bail!("the apalis worker failed: {e}"),
        Ok(Ok(Ok(()))) => {}
    }
    let calls = run.calls.load(Ordering::SeqCst);
    let (rows, done_rows) = totals().await?;
    if calls != run.n || rows != run.n as i64 || done_rows != run.n as i64 {
        bail!(
            "mismatch after drain: {calls} handler calls, {rows} rows, {done_rows} done rows; expected {} of each",
            run.n
        );
    }
    Ok(drain)
}
