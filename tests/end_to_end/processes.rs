//! Worker processes for real: `lectern worker` children over one job store.
//! - crash: kill -9 a worker with jobs in flight, start another; every job ends done
//!   exactly once, in-flight jobs resume within the lease, nothing stays running;
//! - fan-out: two worker processes on a PostgreSQL store split a multi-page PDF page by
//!   page; each page is processed once and the document finalised once;
//! - pdfium children: kept between jobs, one killed while it waits replaced unnoticed;
//! - `lectern serve --workers`: an HTTP upload reaches done, and the in-process pools'
//!   CPU threads and the lectern-pdfium children they start run under SCHED_IDLE (the
//!   default `--worker-nice idle`) while the server's, and the thread embedding search
//!   queries, run at normal priority.

use crate::common;

use std::time::{Duration, Instant};

use lectern_document::stages::ingest;
use lectern_queue::storage::{JobState, now_ms};

const LEASE_SECS: i64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_finishes_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let mut ids = Vec::new();
    for f in ["paper.pdf", "scan.pdf", "page.png"] {
        ids.push(ingest::submit_file(&ctx, &common::fixture(f)).await.unwrap().0);
    }
    let log = dir.path().join("workers.log");
    let global = ["--lease-secs", "3", "--grace-secs", "1"];
    let mut first = common::WorkerProcess::start(dir.path(), &global, &[], &log);

    // Wait until a per-page or embedding job is in flight, then pull the plug.
    let start = Instant::now();
    let in_flight = loop {
        let mut running = Vec::new();
        for id in &ids {
            running.extend(
                ctx.store.jobs_for_document(id).await.unwrap().into_iter().filter(|j| j.state == JobState::Running),
            );
        }
        if running.iter().any(|j| j.stage != "ingest") {
            break running;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill9();
    let killed_at = now_ms();

    let _second = common::WorkerProcess::start(dir.path(), &global, &[], &log);
    let docs = common::wait_finished(&ctx, &ids, Duration::from_secs(300)).await;
    for (doc, id) in docs.iter().zip(&ids) {
        assert_eq!(doc.status.as_str(), "done", "{doc:?}\n{}", std::fs::read_to_string(&log).unwrap());
        common::assert_processed_once(&ctx, id).await;
    }
    for job in in_flight {
        let after = ctx.store.job(job.id).await.unwrap().unwrap();
        // Finished after the crash unless the dead worker had already recorded it.
        if after.finished_at.unwrap() > killed_at {
            assert_eq!(after.attempt, job.attempt + 1, "{after:?}");
            let resumed_after = after.started_at.unwrap() - killed_at;
            println!(
                "job {} ({}) resumed {resumed_after} ms after the crash, attempt {}",
                after.id, after.stage, after.attempt
            );
            assert!(resumed_after <= (LEASE_SECS + 5) * 1000, "resumed {resumed_after} ms after the crash");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_split_a_pdf_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_pg_database().await;
    let pipeline = std::fs::read_to_string(common::root().join("jobs/pipeline.toml"))
        .unwrap()
        .replace("pages_per_job = 4", "pages_per_job = 1");
    let pipeline_file = common::write_file(dir.path(), "pipeline.toml", pipeline.as_bytes());
    let settings = common::settings(dir.path());
    let store = lectern_queue::storage::open(Some(&url), dir.path()).await.unwrap();
    let config = lectern_document::config::PipelineConfig::load(&pipeline_file).unwrap();
    let ctx = std::sync::Arc::new(lectern_document::context::Context::new(settings, store, config));

    let id = ingest::submit_file(&ctx, &common::fixture("paper.pdf")).await.unwrap().0;
    let log = dir.path().join("workers.log");
    let global = ["--database-url", url.as_str(), "--pipeline", pipeline_file.to_str().unwrap()];
    let _a = common::WorkerProcess::start(dir.path(), &global, &[], &log);
    let _b = common::WorkerProcess::start(dir.path(), &global, &[], &log);
    let docs = common::wait_finished(&ctx, std::slice::from_ref(&id), Duration::from_secs(300)).await;
    assert_eq!(docs[0].status.as_str(), "done", "{:?}\n{}", docs[0], std::fs::read_to_string(&log).unwrap());
    common::assert_processed_once(&ctx, &id).await;

    let jobs = ctx.store.jobs_for_document(&id).await.unwrap();
    for stage in ["render", "layout", "ocr"] {
        let mut pages: Vec<u64> =
            jobs.iter().filter(|j| j.stage == stage).map(|j| j.payload["pages"][0].as_u64().unwrap()).collect();
        pages.sort();
        assert_eq!(pages, [1, 2, 3, 4, 5], "{stage}: one job per page");
    }
    for stage in ["ingest", "chunk", "embed", "extract", "generate"] {
        assert_eq!(jobs.iter().filter(|j| j.stage == stage).count(), 1, "{stage} once");
    }
    assert!(jobs.iter().all(|j| j.attempt == 1));
    let workers: std::collections::BTreeSet<_> = jobs.iter().filter_map(|j| j.locked_by.clone()).collect();
    println!("jobs were run by {} worker processes: {workers:?}", workers.len());
}

/// A worker keeps its lectern-pdfium children between jobs; one killed while it waits is
/// left for a fresh one, so the next PDF goes through at its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdfium_child_killed_while_it_waits_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let log = dir.path().join("worker.log");
    let pipeline = common::root().join("jobs/text-layer.toml");
    let mut worker = common::WorkerProcess::start(dir.path(), &["--pipeline", pipeline.to_str().unwrap()], &[], &log);
    let first = ingest::submit_file(&ctx, &common::fixture("paper.pdf")).await.unwrap().0;
    let docs = common::wait_finished(&ctx, std::slice::from_ref(&first), Duration::from_secs(120)).await;
    assert_eq!(docs[0].status.as_str(), "done", "{:?}\n{}", docs[0], std::fs::read_to_string(&log).unwrap());

    let waiting: Vec<u32> = common::children(worker.child.id())
        .into_iter()
        .filter(|(_, n)| "lectern-pdfium".starts_with(n.as_str()))
        .map(|(pid, _)| pid)
        .collect();
    assert!(!waiting.is_empty(), "no lectern-pdfium child kept after the job");
    for pid in &waiting {
        // SAFETY: a plain kill(2) of a child of the worker this test started.
        assert_eq!(unsafe { libc::kill(*pid as i32, libc::SIGKILL) }, 0);
    }

    let second = ingest::submit_file(&ctx, &common::fixture("columns.pdf")).await.unwrap().0;
    let docs = common::wait_finished(&ctx, std::slice::from_ref(&second), Duration::from_secs(120)).await;
    assert_eq!(docs[0].status.as_str(), "done", "{:?}\n{}", docs[0], std::fs::read_to_string(&log).unwrap());
    let jobs = ctx.store.jobs_for_document(&second).await.unwrap();
    assert!(jobs.iter().all(|j| j.attempt == 1), "a job was retried: {jobs:?}");
    assert!(worker.terminate().success());
}

/// (thread name, "idle" or "nice N") of every thread of process `pid`, from /proc.
fn thread_priorities(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // A process that has just exited has no tasks left to list.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        // Fields after the name start at field 3 (state); nice is field 19, policy 41.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let priority =
            if fields[38] == libc::SCHED_IDLE.to_string() { "idle".into() } else { format!("nice {}", fields[16]) };
        out.push((stat[open + 1..close].to_string(), priority));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_workers_processes_an_upload_on_lower_priority_threads() {
    let dir = tempfile::tempdir().unwrap();
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let log = dir.path().join("serve.log");
    let serve = ["serve", "--workers", "--no-auth", "--listen", &listen];
    let mut server = common::WorkerProcess::command(&dir.path().join("data"), &[], &serve, &log);
    let (base, client) = (format!("http://{listen}"), reqwest::Client::new());
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // pdfium runs in lectern-pdfium children, started as jobs need them: sample their priority.
    let server_pid = server.child.id();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (pid, _) in
                    common::children(server_pid).into_iter().filter(|(_, n)| "lectern-pdfium".starts_with(n.as_str()))
                {
                    seen.extend(thread_priorities(pid).into_iter().map(|(_, priority)| priority));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    let pdf = std::fs::read(common::fixture("paper.pdf")).unwrap();
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(pdf).file_name("paper.pdf"));
    let resp = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<serde_json::Value>().await.unwrap()["document_id"].as_str().unwrap().to_string();
    let status = loop {
        let doc: serde_json::Value =
            client.get(format!("{base}/v1/documents/{id}")).send().await.unwrap().json().await.unwrap();
        let status = doc["status"].as_str().unwrap_or_default().to_string();
        if status == "done" || status == "failed" {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "not finished: {doc}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status, "done", "{}", std::fs::read_to_string(&log).unwrap_or_default());
    // A search query is embedded on a thread of the server's, not the workers' idle one.
    let body =
        serde_json::json!({ "query": "managing geospatial data shared by several organizations", "mode": "hybrid" });
    let hits: serde_json::Value =
        client.post(format!("{base}/v1/search")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(hits["hits"][0]["document_id"].as_str(), Some(id.as_str()), "{hits}");

    let threads = thread_priorities(server.child.id());
    let of = |name: &str| threads.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|p| p == "idle"), "lectern-pdfium children: {seen:?}");
    let embed = of("lectern-embed");
    assert!(!embed.is_empty() && embed.iter().all(|v| *v == "idle"), "lectern-embed: {embed:?} in {threads:?}");
    assert_eq!(of("lectern-query"), ["nice 0"], "query embedding thread in {threads:?}");
    // The pools' runtime: blocking threads that ran stage work are idle, its async
    // threads (which hold the SQLite writer) are not; the server's threads are not.
    let pool = of("lectern-worker");
    assert!(pool.contains(&"idle") && pool.contains(&"nice 0"), "worker runtime: {pool:?}");
    // Tokio's default thread names: "tokio-rt-worker" now, "tokio-runtime-w(orker)" before.
    let server_threads: Vec<&str> =
        threads.iter().filter(|(n, _)| n.starts_with("tokio-r")).map(|(_, v)| v.as_str()).collect();
    assert!(!server_threads.is_empty() && server_threads.iter().all(|v| *v == "nice 0"), "server: {threads:?}");
    assert!(server.terminate().success());
}
