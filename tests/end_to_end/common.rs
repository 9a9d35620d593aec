//! Shared test set-up: a context over a fresh data directory with a real SQLite file and
//! the real libraries and models fetched by scripts/setup.sh.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_queue::engine::QueueSpec;
use lectern_queue::storage::{self, Document};

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
    context_with(settings(data_dir)).await
}

/// A context on `settings` (e.g. [`settings`] with a limit changed) over a SQLite store.
pub async fn context_with(settings: Settings) -> Arc<Context> {
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
pub fn start_workers(ctx: &Arc<Context>) -> (lectern_queue::shutdown::Trigger, tokio::task::JoinHandle<()>) {
    let (trigger, shutdown) = lectern_queue::shutdown::channel();
    let specs = ctx.pipeline.queue_names().into_iter().map(|queue| QueueSpec { queue, concurrency: 1 }).collect();
    let task = tokio::spawn(lectern_document::pipeline::run_workers(ctx.clone(), specs, shutdown));
    (trigger, task)
}

/// Shared with the queue crate's tests.
#[path = "../../crates/queue/tests/queue/pg.rs"]
mod pg;
pub use pg::fresh_pg_database;

/// A `lectern` child process (a worker, or a server); killed (SIGKILL) when dropped.
pub struct WorkerProcess {
    pub child: std::process::Child,
}

impl WorkerProcess {
    /// Starts `lectern [global…] worker [worker_args…]` over `data_dir`, logging to `log`.
    pub fn start(data_dir: &Path, global: &[&str], worker_args: &[&str], log: &Path) -> Self {
        let args: Vec<&str> = ["worker"].into_iter().chain(worker_args.iter().copied()).collect();
        Self::command(data_dir, global, &args, log)
    }

    /// Starts `lectern [global…] [args…]` over `data_dir`, logging to `log`.
    pub fn command(data_dir: &Path, global: &[&str], args: &[&str], log: &Path) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_lectern"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--models-dir")
            .arg(root().join("models/cache"))
            .args(global)
            .args(args)
            .env("OMP_THREAD_LIMIT", "1")
            .env("RUST_LOG", "lectern=debug,warn")
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
            .spawn()
            .expect("start lectern");
        Self { child }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Like [`wait_finished`] but tolerant of store errors (e.g. while PostgreSQL restarts).
pub async fn wait_finished_retrying(
    store: &lectern_queue::storage::Store,
    ids: &[String],
    limit: Duration,
) -> Vec<Document> {
    let start = Instant::now();
    loop {
        let mut docs = Vec::new();
        for id in ids {
            match store.document(id).await {
                Ok(Some(d)) => docs.push(d),
                Ok(None) => panic!("document {id} vanished"),
                Err(_) => break,
            }
        }
        if docs.len() == ids.len() && docs.iter().all(Document::is_finished) {
            return docs;
        }
        assert!(start.elapsed() < limit, "documents did not finish within {limit:?}: {docs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks that every stage job of a finished document ran to `done` exactly once per
/// payload (no duplicate enqueues, nothing left running) and that its index rows match
/// its chunks.
pub async fn assert_processed_once(ctx: &Context, id: &str) {
    let jobs = ctx.store.jobs_for_document(id).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for j in &jobs {
        assert_eq!(j.state, lectern_queue::storage::JobState::Done, "{j:?}");
        assert!(seen.insert((j.stage.clone(), j.payload.to_string())), "duplicate job {j:?}");
    }
    let doc = ctx.store.document(id).await.unwrap().unwrap();
    assert_eq!((doc.status.as_str(), doc.pages_done), ("done", doc.pages.unwrap()));
    let chunks = lectern_document::stages::chunk::load(ctx, id).await.unwrap();
    assert_eq!(
        ctx.index().await.unwrap().count("default", Some(id)).await.unwrap(),
        chunks.len(),
        "one set of chunks in LanceDB"
    );
    // cheatsheet.docx, quiz.pdf, quiz.json, flashcards.json
    assert_eq!(ctx.store.artifacts(id).await.unwrap().len(), 4);
}

/// Top-5 search in the default collection.
pub async fn search(
    ctx: &Context,
    query: &str,
    mode: lectern_document::index::Mode,
) -> Vec<lectern_document::index::Hit> {
    let req = lectern_document::search::SearchRequest::new(query, 5, mode);
    lectern_document::search::search(ctx, &req).await.unwrap().into_iter().map(|h| h.hit).collect()
}

/// Children of process `parent` as (pid, name), from /proc; the kernel keeps 15 characters
/// of a name.
pub fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push((pid, stat[open + 1..close].to_string()));
        }
    }
    out
}

/// Resident memory of `pid` and its children (pdfium runs in a child), in bytes.
pub fn tree_rss(pid: u32) -> u64 {
    let rss = |p: u32| {
        let statm = std::fs::read_to_string(format!("/proc/{p}/statm")).unwrap_or_default();
        statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 4096
    };
    rss(pid) + children(pid).into_iter().map(|(child, _)| rss(child)).sum::<u64>()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { out.push(path) }
        }
    }
    out
}

/// `n` bare chunks of one document, to write to an index directly.
pub fn chunks(document_id: &str, n: usize) -> Vec<lectern_document::model::chunk::Chunk> {
    (0..n)
        .map(|i| lectern_document::model::chunk::Chunk {
            id: format!("{document_id}-{i}"),
            document_id: document_id.to_string(),
            index: i as u32,
            page: 1,
            bbox: [0.0, 0.0, 1.0, 1.0],
            spans: Vec::new(),
            heading_path: Vec::new(),
            figures: Vec::new(),
            tokens: 2,
            text: format!("chunk {i}"),
        })
        .collect()
}
