//! PostgreSQL restarted under load: a worker process keeps going once the server is back,
//! and every document finishes with every job done once. Alone in its own test binary
//! because it restarts the shared test server.

#[path = "end_to_end/common.rs"]
mod common;

use std::time::{Duration, Instant};

use lectern_document::stages::ingest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_postgres_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_pg_database().await;
    let store = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
    let ctx = std::sync::Arc::new(lectern_document::context::Context::new(
        common::settings(dir.path()),
        store,
        lectern_document::config::PipelineConfig::builtin(),
    ));
    let mut ids = Vec::new();
    for f in ["paper.pdf", "scan.pdf", "page.png"] {
        ids.push(ingest::submit_file(&ctx, &common::fixture(f)).await.unwrap().0);
    }
    let log = dir.path().join("worker.log");
    let _worker = common::WorkerProcess::start(dir.path(), &["--database-url", &url, "--lease-secs", "5"], &[], &log);

    // Restart once some work is done and more is under way.
    let start = Instant::now();
    loop {
        let jobs = ctx.store.jobs_for_document(&ids[0]).await.unwrap();
        if jobs.iter().filter(|j| j.state == lectern_queue::storage::JobState::Done).count() >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restart = std::process::Command::new(common::root().join("scripts/pg.sh")).arg("restart").output().unwrap();
    assert!(restart.status.success(), "{}", String::from_utf8_lossy(&restart.stderr));
    let restarted_at = lectern_queue::storage::now_ms();

    let docs = common::wait_finished_retrying(ctx.store.as_ref(), &ids, Duration::from_secs(300)).await;
    let log_text = std::fs::read_to_string(&log).unwrap();
    let errors = log_text.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).count();
    let mut after = 0;
    for id in &ids {
        let jobs = ctx.store.jobs_for_document(id).await.unwrap();
        after += jobs.iter().filter(|j| j.finished_at.is_some_and(|t| t > restarted_at)).count();
    }
    println!("worker logged {errors} errors/warnings; {after} jobs finished after the restart");
    assert!(after > 0, "the restart happened before the work was done");
    for (doc, id) in docs.iter().zip(&ids) {
        assert_eq!(doc.status.as_str(), "done", "{doc:?}\n{}", std::fs::read_to_string(&log).unwrap());
        common::assert_processed_once(&ctx, id).await;
    }
}
