//! PostgreSQL stopped under load, then started again: while it is down the API answers 503
//! with `Retry-After` (no 500, no hang) and the worker process waits; once it is back the
//! worker goes on and every document finishes with every job done once. Alone in its own
//! test binary because it stops the shared test server.

#[path = "end_to_end/common.rs"]
mod common;

use std::time::{Duration, Instant};

use lectern_document::stages::ingest;

fn pg(command: &str) {
    let out = std::process::Command::new(common::root().join("scripts/pg.sh")).arg(command).output().unwrap();
    assert!(out.status.success(), "pg.sh {command}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts PostgreSQL again when dropped, so a failure while it is down does not leave the
/// shared server stopped for the test binaries after this one.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(common::root().join("scripts/pg.sh")).arg("start").output();
    }
}

/// The API on a free port, and a client carrying a token.
async fn serve(ctx: &std::sync::Arc<lectern_document::context::Context>) -> (String, reqwest::Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = lectern::http::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (secret, token) = lectern::auth::new_token("tests", &[]);
    ctx.store.insert_token(&token).await.unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    (base, reqwest::Client::builder().default_headers(headers).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_the_api_survive_a_postgres_outage() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_pg_database().await;
    let store = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
    let ctx = std::sync::Arc::new(lectern_document::context::Context::new(
        common::settings(dir.path()),
        store,
        lectern_document::config::PipelineConfig::builtin(),
    ));
    let (base, client) = serve(&ctx).await;
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
    let _restart = StartOnDrop;
    pg("stop");
    let asked = Instant::now();
    let resp = client.get(format!("{base}/v1/documents/{}", ids[0])).send().await.unwrap();
    println!("while down: {} after {:?}", resp.status(), asked.elapsed());
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(asked.elapsed() < Duration::from_secs(30), "answered after {:?}", asked.elapsed());
    assert!(resp.text().await.unwrap().contains("retry shortly"));
    pg("start");
    let restarted_at = lectern_queue::storage::now_ms();
    let resp = client.get(format!("{base}/v1/documents/{}", ids[0])).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the API answers again once PostgreSQL is back");

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
