//! The HTTP API over a real socket: upload answers 202 at once with ids; polling the job
//! and the document shows progress until done; a zero-byte upload ends as a failed job
//! with a readable reason.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

async fn start() -> (String, tempfile::TempDir, lectern::shutdown::Trigger) {
    let (base, dir, ctx) = start_without_workers().await;
    let (trigger, _workers) = common::start_workers(&ctx);
    (base, dir, trigger)
}

async fn start_without_workers() -> (String, tempfile::TempDir, std::sync::Arc<lectern::context::Context>) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = lectern::http::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), dir, ctx)
}

async fn upload(client: &reqwest::Client, base: &str, name: &str, bytes: Vec<u8>) -> Value {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
    let started = Instant::now();
    let resp = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert!(started.elapsed() < Duration::from_secs(5), "upload answers at once");
    resp.json().await.unwrap()
}

async fn wait_document(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let doc: Value = client.get(format!("{base}/v1/documents/{id}")).send().await.unwrap().json().await.unwrap();
        if ["done", "failed", "cancelled"].contains(&doc["status"].as_str().unwrap_or("")) {
            return doc;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "document stuck: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_poll_until_done() {
    let (base, _dir, _trigger) = start().await;
    let client = reqwest::Client::new();
    let health: Value = client.get(format!("{base}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let created = upload(&client, &base, "../../scan?.pdf", std::fs::read(common::fixture("scan.pdf")).unwrap()).await;
    let (doc_id, job_id) = (created["document_id"].as_str().unwrap().to_string(), created["job_id"].as_i64().unwrap());
    let job: Value = client.get(format!("{base}/v1/jobs/{job_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(job["stage"], "ingest");
    assert!(job["attempt"].is_number() && job["state"].is_string());

    let doc = wait_document(&client, &base, &doc_id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["filename"], "scan?.pdf", "path parts are stripped from the name");
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 7);
    assert_eq!(doc["artifacts"].as_array().unwrap().len(), 3);
    let job: Value = client.get(format!("{base}/v1/jobs/{job_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((job["state"].as_str(), job["attempt"].as_i64()), (Some("done"), Some(1)));

    let hits: Value = client
        .post(format!("{base}/v1/search"))
        .json(&serde_json::json!({ "query": "Emanuel Goldberg developed a machine", "top_k": 3 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["hits"][0]["document_id"], doc_id.as_str());

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lectern_jobs{queue=\"generate\",state=\"done\"} 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("lectern_index_chunks ") && !l.ends_with(" 0")), "{metrics}");

    let missing = client.get(format!("{base}/v1/jobs/999999")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Artifacts are listed and downloadable.
    let list: Value =
        client.get(format!("{base}/v1/documents/{doc_id}/artifacts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["artifacts"].as_array().unwrap().len(), 3);
    let quiz = client.get(format!("{base}/v1/documents/{doc_id}/artifacts/quiz.pdf")).send().await.unwrap();
    assert_eq!(quiz.headers()["content-type"], "application/pdf");
    assert!(quiz.bytes().await.unwrap().starts_with(b"%PDF-"));
    let nothing = client.get(format!("{base}/v1/documents/{doc_id}/artifacts/../../etc/passwd")).send().await.unwrap();
    assert_eq!(nothing.status(), 404);

    // A file that is no document is refused at once.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"hello, plain text".to_vec()).file_name("notes.pdf"));
    let refused = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(refused.status(), 415);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("plain text"), "{body}");

    // Review a flashcard: SM-2 moves it to tomorrow; a bad grade is refused.
    let deck_path =
        doc["artifacts"].as_array().unwrap().iter().find(|a| a["name"] == "flashcards.json").unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string();
    let deck: Value = serde_json::from_slice(&std::fs::read(deck_path).unwrap()).unwrap();
    let card_id = deck["cards"][0]["id"].as_str().expect("the scan yields flashcards").to_string();
    let reviewed: Value = client
        .post(format!("{base}/v1/flashcards/{card_id}/review"))
        .json(&serde_json::json!({ "grade": 4 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (reviewed["sm2"]["interval_days"].as_i64(), reviewed["sm2"]["repetitions"].as_i64()),
        (Some(1), Some(1))
    );
    let due = chrono::DateTime::parse_from_rfc3339(reviewed["sm2"]["due"].as_str().unwrap()).unwrap();
    let hours = (due.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.0..=24.1).contains(&hours), "due in a day: {reviewed}");
    let bad = client
        .post(format!("{base}/v1/flashcards/{card_id}/review"))
        .json(&serde_json::json!({ "grade": 9 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = client
        .post(format!("{base}/v1/flashcards/nope/review"))
        .json(&serde_json::json!({ "grade": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_document_then_retry_its_job() {
    // Cancel while no worker runs, so the queued first job is what gets cancelled.
    let (base, _dir, ctx) = start_without_workers().await;
    let client = reqwest::Client::new();
    let created = upload(&client, &base, "paper.pdf", std::fs::read(common::fixture("paper.pdf")).unwrap()).await;
    let doc_id = created["document_id"].as_str().unwrap();
    let resp = client.post(format!("{base}/v1/documents/{doc_id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_trigger, _workers) = common::start_workers(&ctx);
    let doc = wait_document(&client, &base, doc_id).await;
    assert_eq!(doc["status"], "cancelled", "{doc}");
    let queues: Value = client.get(format!("{base}/v1/queues")).send().await.unwrap().json().await.unwrap();
    let running: i64 = queues["queues"].as_array().unwrap().iter().map(|q| q["running"].as_i64().unwrap()).sum();
    assert_eq!(running, 0, "{queues}");
    // Retrying the cancelled job revives it; the document runs to the end.
    let cancelled =
        doc["jobs"].as_array().unwrap().iter().find(|j| j["state"] == "cancelled").unwrap()["id"].as_i64().unwrap();
    let resp = client.post(format!("{base}/v1/jobs/{cancelled}/retry")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc = wait_document(&client, &base, doc_id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let again = client.post(format!("{base}/v1/jobs/{cancelled}/retry")).send().await.unwrap();
    assert_eq!(again.status(), 400, "a done job cannot be retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_upload_is_refused_with_413_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.max_upload_bytes = 64 * 1024;
    let store = lectern::storage::open(None, dir.path()).await.unwrap();
    let ctx = std::sync::Arc::new(lectern::context::Context::new(
        settings,
        store,
        lectern::config::PipelineConfig::builtin(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = lectern::http::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(common::fixture("paper.pdf")).unwrap()).file_name("paper.pdf"),
    );
    let resp = reqwest::Client::new().post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let uploads = ctx.settings.uploads_dir();
    let leftovers = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "the partial upload was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_upload_fails_with_reason() {
    let (base, _dir, _trigger) = start().await;
    let client = reqwest::Client::new();
    let created = upload(&client, &base, "nothing.pdf", Vec::new()).await;
    let doc = wait_document(&client, &base, created["document_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "failed");
    assert!(doc["error"].as_str().unwrap().contains("empty"), "{doc}");
    let job: Value =
        client.get(format!("{base}/v1/jobs/{}", created["job_id"])).send().await.unwrap().json().await.unwrap();
    assert_eq!(job["state"], "failed");
    assert!(job["error"].as_str().unwrap().contains("empty"));
}
