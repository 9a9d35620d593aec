//! Shared test set-up: a context over a fresh data directory with a real SQLite file and
//! the real libraries and models fetched by scripts/setup.sh.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lectern::config::{PipelineConfig, Settings};
use lectern::context::Context;
use lectern::engine::QueueSpec;
use lectern::storage::{self, Document};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

pub fn settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::new(data_dir);
    settings.models_dir = root().join("models/cache");
    settings
}

pub async fn context(data_dir: &Path) -> Arc<Context> {
    let settings = settings(data_dir);
    let store = storage::open(None, &settings.data_dir).await.expect("open SQLite store");
    Arc::new(Context::new(settings, store, PipelineConfig::builtin()))
}

/// Writes `bytes` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Waits until every document has finished (done or failed).
pub async fn wait_finished(ctx: &Context, ids: &[String], limit: Duration) -> Vec<Document> {
    let start = Instant::now();
    loop {
        let mut docs = Vec::new();
        for id in ids {
            docs.push(ctx.store.document(id).await.unwrap().expect("document exists"));
        }
        if docs.iter().all(Document::is_finished) {
            return docs;
        }
        assert!(start.elapsed() < limit, "documents did not finish within {limit:?}: {docs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts worker pools for every queue; returns the trigger that stops them and their task.
pub fn start_workers(ctx: &Arc<Context>) -> (lectern::shutdown::Trigger, tokio::task::JoinHandle<()>) {
    let (trigger, shutdown) = lectern::shutdown::channel();
    let specs = ctx.pipeline.stages.iter().map(|q| QueueSpec { queue: q.clone(), concurrency: 1 }).collect();
    let task = tokio::spawn(lectern::pipeline::run_workers(ctx.clone(), specs, shutdown));
    (trigger, task)
}

/// A fresh, empty database on the PostgreSQL server started by `scripts/pg.sh`.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("LECTERN_TEST_PG_URL").expect(
        "LECTERN_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL with scripts/pg.sh",
    );
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, _) = admin.rsplit_once('/').expect("URL has a database");
    format!("{base}/{name}")
}
