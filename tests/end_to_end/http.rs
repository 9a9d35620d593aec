//! The HTTP API over a real socket: upload answers 202 at once with ids; polling the job
//! and the document shows progress until done; a zero-byte upload ends as a failed job
//! with a readable reason.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::Value;

async fn start() -> (String, tempfile::TempDir, lectern_queue::shutdown::Trigger, reqwest::Client) {
    let (base, dir, ctx, client) = start_without_workers().await;
    let (trigger, _workers) = common::start_workers(&ctx);
    (base, dir, trigger, client)
}

async fn start_without_workers()
-> (String, tempfile::TempDir, std::sync::Arc<lectern_document::context::Context>, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let (base, client) = serve(&ctx, &[]).await;
    (base, dir, ctx, client)
}

/// Serves the API on a free port; the client carries a new token for `collections`.
pub(crate) async fn serve(
    ctx: &std::sync::Arc<lectern_document::context::Context>,
    collections: &[String],
) -> (String, reqwest::Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = lectern::http::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), client_for(ctx, collections).await)
}

async fn client_for(ctx: &lectern_document::context::Context, collections: &[String]) -> reqwest::Client {
    let (secret, token) = lectern::auth::new_token("tests", collections);
    ctx.store.insert_token(&token).await.unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
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
    let (base, _dir, _trigger, client) = start().await;
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
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 8);
    assert_eq!(doc["artifacts"].as_array().unwrap().len(), 4);
    assert!(doc["fields"].is_null(), "a scanned paper has no schema: {doc}");
    let job: Value = client.get(format!("{base}/v1/jobs/{job_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((job["state"].as_str(), job["attempt"].as_i64()), (Some("done"), Some(1)));

    // Search in every mode finds the scan's page, with provenance.
    for mode in ["vector", "text", "hybrid"] {
        let body = serde_json::json!({ "query": "Emanuel Goldberg developed a machine", "top_k": 3, "mode": mode });
        let hits: Value =
            client.post(format!("{base}/v1/search")).json(&body).send().await.unwrap().json().await.unwrap();
        let top = &hits["hits"][0];
        assert_eq!(
            (top["document_id"].as_str(), top["page"].as_i64()),
            (Some(doc_id.as_str()), Some(1)),
            "{mode}: {hits}"
        );
        assert!(
            top["bbox"].as_array().unwrap().len() == 4 && top["heading_path"].is_array() && top["doc_type"].is_string()
        );
    }
    for bad in [
        serde_json::json!({ "query": "x", "mode": "fuzzy" }),
        serde_json::json!({ "query": " " }),
        serde_json::json!({ "query": "x", "top_k": 0 }),
        serde_json::json!({ "query": "x", "collection": "../etc" }),
    ] {
        let resp = client.post(format!("{base}/v1/search")).json(&bad).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{bad} → {}", resp.status());
    }
    assert!(doc["doc_type"].is_string() && doc["collection"] == "default", "{doc}");

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    // It parses as Prometheus text, with the stage-duration histogram filled in.
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "lectern_stage_duration_seconds" && s.labels.get("stage") == Some("ocr"))
        .unwrap_or_else(|| panic!("ocr durations in {metrics}"));
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.iter().any(|b| b.less_than.is_infinite() && b.count >= 1.0), "{buckets:?}")
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(scrape.samples.iter().any(|s| s.metric == "lectern_pages_done_total"));
    assert!(metrics.contains("lectern_jobs{queue=\"generate\",state=\"done\"} 1"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("lectern_index_chunks{collection=\"default\"} ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    let missing = client.get(format!("{base}/v1/jobs/999999")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Each page says which path gave it its text.
    let pages: Value =
        client.get(format!("{base}/v1/documents/{doc_id}/pages")).send().await.unwrap().json().await.unwrap();
    let page = &pages["pages"][0];
    assert_eq!((page["number"].as_i64(), page["source"].as_str()), (Some(1), Some("ocr")), "{pages}");
    assert_eq!((page["ocr_language"].as_str(), page["low_confidence"].as_bool()), (Some("eng"), Some(false)));
    let unknown = client.get(format!("{base}/v1/documents/nope/pages")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // Artifacts are listed and downloadable.
    let list: Value =
        client.get(format!("{base}/v1/documents/{doc_id}/artifacts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["artifacts"].as_array().unwrap().len(), 4);
    let quiz = client.get(format!("{base}/v1/documents/{doc_id}/artifacts/quiz.pdf")).send().await.unwrap();
    assert_eq!(quiz.headers()["content-type"], "application/pdf");
    assert!(quiz.bytes().await.unwrap().starts_with(b"%PDF-"));
    let nothing = client.get(format!("{base}/v1/documents/{doc_id}/artifacts/../../etc/passwd")).send().await.unwrap();
    assert_eq!(nothing.status(), 404);

    // Content export: Markdown, JSON and text of the OCR'd scan; bad format, unknown document.
    let get = |path: String| client.get(format!("{base}{path}")).send();
    let md = get(format!("/v1/documents/{doc_id}/content")).await.unwrap();
    assert_eq!(md.headers()["content-type"], "text/markdown; charset=utf-8");
    let md = md.text().await.unwrap();
    assert!(md.starts_with("<!-- page 1 -->") && md.contains("Goldberg"), "{md}");
    let json: Value = get(format!("/v1/documents/{doc_id}/content?format=json")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (json["document_id"].as_str(), json["pages"][0]["source"].as_str()),
        (Some(doc_id.as_str()), Some("ocr"))
    );
    assert!(
        json["pages"][0]["blocks"].as_array().unwrap().iter().any(|b| b["confidence"].as_f64() > Some(50.0)),
        "{json}"
    );
    let text = get(format!("/v1/documents/{doc_id}/content?format=text")).await.unwrap().text().await.unwrap();
    assert!(text.contains("Goldberg") && !text.contains("<!--"), "{text}");
    assert_eq!(get(format!("/v1/documents/{doc_id}/content?format=xml")).await.unwrap().status(), 400);
    assert_eq!(get("/v1/documents/nope/content".into()).await.unwrap().status(), 404);
    assert_eq!(get(format!("/v1/documents/{doc_id}/figures/..%2F..%2Fupload")).await.unwrap().status(), 404);

    // The same content again is the same document, unless reprocessing is asked for.
    let again = |query: &'static str| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(common::fixture("scan.pdf")).unwrap()).file_name("copy.pdf"),
        );
        client.post(format!("{base}/v1/documents{query}")).multipart(form).send()
    };
    let dup = again("").await.unwrap();
    assert_eq!(dup.status(), 200);
    let dup: Value = dup.json().await.unwrap();
    assert_eq!((dup["document_id"].as_str(), dup["duplicate"].as_bool()), (Some(doc_id.as_str()), Some(true)), "{dup}");
    let fresh = again("?reprocess=true").await.unwrap();
    assert_eq!(fresh.status(), 202);
    let fresh: Value = fresh.json().await.unwrap();
    let fresh_id = fresh["document_id"].as_str().unwrap();
    assert_ne!(fresh_id, doc_id);
    let early = client.get(format!("{base}/v1/documents/{fresh_id}/content")).send().await.unwrap();
    assert_eq!(early.status(), 409, "not exported before it is processed");
    client.post(format!("{base}/v1/documents/{fresh_id}/cancel")).send().await.unwrap();

    // A file that is no document is refused at once.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"hello, plain text".to_vec()).file_name("notes.pdf"));
    let refused = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(refused.status(), 415);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("plain text"), "{body}");
    // A ZIP is looked into: a DOCX is taken, any other archive refused.
    let mut zipped = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zipped.start_file("notes.txt", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut zipped, b"not a slide deck").unwrap();
    let zipped = zipped.finish().unwrap().into_inner();
    let docx = std::fs::read(common::fixture("headings.docx")).unwrap();
    for (bytes, status) in [(zipped, 415), (docx, 202)] {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("upload.docx");
        let answer = client
            .post(format!("{base}/v1/documents"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status);
        let body: Value = answer.json().await.unwrap();
        if status == 415 {
            assert!(body["error"].as_str().unwrap().contains("neither DOCX nor PPTX"), "{body}");
        } else {
            client
                .post(format!("{base}/v1/documents/{}/cancel", body["document_id"].as_str().unwrap()))
                .send()
                .await
                .unwrap();
        }
    }

    // Review a flashcard: SM-2 moves it to tomorrow; a bad grade is refused.
    let deck_url = format!("{base}/v1/documents/{doc_id}/artifacts/flashcards.json");
    let deck: Value = client.get(deck_url).send().await.unwrap().json().await.unwrap();
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

    // FSRS for the collection: a new card rated good is due in 2 days (the fsrs crate's
    // first stability, 2.3065 days); grades outside 1–4 are refused; the SM-2-reviewed card
    // keeps its SM-2 due date until FSRS sees it, so the study queue holds the others.
    let fsrs = serde_json::json!({ "scheduler": "fsrs", "desired_retention": 0.9 });
    let put = client.put(format!("{base}/v1/collections/default/settings")).json(&fsrs).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let settings: Value =
        client.get(format!("{base}/v1/collections/default/settings")).send().await.unwrap().json().await.unwrap();
    assert_eq!(settings, fsrs);
    let too_low = serde_json::json!({ "scheduler": "fsrs", "desired_retention": 0.2 });
    let put = client.put(format!("{base}/v1/collections/default/settings")).json(&too_low).send().await.unwrap();
    assert_eq!(put.status(), 400);
    let second = deck["cards"][1]["id"].as_str().expect("the scan yields two cards").to_string();
    let review = |grade: i64| {
        client.post(format!("{base}/v1/flashcards/{second}/review")).json(&serde_json::json!({ "grade": grade })).send()
    };
    let fsrs_reviewed: Value = review(3).await.unwrap().json().await.unwrap();
    assert_eq!(fsrs_reviewed["scheduler"], "fsrs", "{fsrs_reviewed}");
    assert_eq!(fsrs_reviewed["fsrs"]["interval_days"], 2, "{fsrs_reviewed}");
    assert_eq!(fsrs_reviewed["sm2"]["repetitions"], 0, "SM-2 state untouched: {fsrs_reviewed}");
    let due = chrono::DateTime::parse_from_rfc3339(fsrs_reviewed["due"].as_str().unwrap()).unwrap();
    let hours = (due.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((47.0..=48.1).contains(&hours), "due in two days: {fsrs_reviewed}");
    assert_eq!(review(5).await.unwrap().status(), 400);
    let queue: Value = client
        .get(format!("{base}/v1/collections/default/flashcards/due?limit=500"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let due_ids: Vec<&str> = queue["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(due_ids.len(), deck["cards"].as_array().unwrap().len() - 2, "{queue}");
    assert!(!due_ids.contains(&card_id.as_str()) && !due_ids.contains(&second.as_str()));
    let bad_limit = client.get(format!("{base}/v1/collections/default/flashcards/due?limit=0")).send().await.unwrap();
    assert_eq!(bad_limit.status(), 400);

    // Study material on request: 202 at once, made by the workers, downloadable.
    let asked = client
        .post(format!("{base}/v1/collections/default/study"))
        .json(&serde_json::json!({ "kinds": ["flashcards"], "cards": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    let asked: Value = asked.json().await.unwrap();
    let study_url = format!("{base}{}", asked["status_url"].as_str().unwrap());
    let started = std::time::Instant::now();
    let set = loop {
        let set: Value = client.get(&study_url).send().await.unwrap().json().await.unwrap();
        if set["state"] == "done" {
            break set;
        }
        assert!(!["failed", "dead", "cancelled"].contains(&set["state"].as_str().unwrap_or("")), "{set}");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "{set}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!((set["steps_done"].as_i64(), set["steps_total"].as_i64()), (Some(2), Some(2)), "{set}");
    let apkg = client.get(format!("{study_url}/artifacts/flashcards.apkg")).send().await.unwrap();
    assert_eq!(apkg.status(), 200);
    assert!(apkg.bytes().await.unwrap().starts_with(b"PK"), "a zip");
    let refused = client
        .post(format!("{base}/v1/collections/default/study"))
        .json(&serde_json::json!({ "kinds": [], "cards": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(client.delete(&study_url).send().await.unwrap().status(), 204);
    assert_eq!(client.get(&study_url).send().await.unwrap().status(), 404);

    // Deleting the document removes it and its chunks.
    let deleted = client.delete(format!("{base}/v1/documents/{doc_id}")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(client.get(format!("{base}/v1/documents/{doc_id}")).send().await.unwrap().status(), 404);
    assert_eq!(client.delete(format!("{base}/v1/documents/{doc_id}")).send().await.unwrap().status(), 404);
    let body = serde_json::json!({ "query": "Emanuel Goldberg developed a machine", "mode": "hybrid" });
    let hits: Value = client.post(format!("{base}/v1/search")).json(&body).send().await.unwrap().json().await.unwrap();
    assert!(hits["hits"].as_array().unwrap().iter().all(|h| h["document_id"] != doc_id.as_str()), "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_document_then_retry_its_job() {
    // Cancel while no worker runs, so the queued first job is what gets cancelled.
    let (base, _dir, ctx, client) = start_without_workers().await;
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
    let ctx = common::context_with(settings).await;
    let (base, client) = serve(&ctx, &[]).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(common::fixture("paper.pdf")).unwrap()).file_name("paper.pdf"),
    );
    let resp = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let uploads = ctx.settings.uploads_dir();
    let leftovers = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "the partial upload was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_upload_fails_with_reason() {
    let (base, _dir, _trigger, client) = start().await;
    let created = upload(&client, &base, "nothing.pdf", Vec::new()).await;
    let doc = wait_document(&client, &base, created["document_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "failed");
    assert!(doc["error"].as_str().unwrap().contains("empty"), "{doc}");
    let job: Value =
        client.get(format!("{base}/v1/jobs/{}", created["job_id"])).send().await.unwrap().json().await.unwrap();
    assert_eq!(job["state"], "failed");
    assert!(job["error"].as_str().unwrap().contains("empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_stream_delivers_stage_events_in_order() {
    let (base, _dir, _trigger, client) = start().await;
    let created = upload(&client, &base, "paper.pdf", std::fs::read(common::fixture("paper.pdf")).unwrap()).await;
    let id = created["document_id"].as_str().unwrap();
    let mut resp = client.get(format!("{base}/v1/documents/{id}/events")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while let Some(chunk) = tokio::time::timeout_at(deadline.into(), resp.chunk()).await.expect("stream ends").unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Parse "event: x\ndata: {...}\n\n" frames.
    let frames: Vec<(String, String)> = text
        .split("\n\n")
        .filter_map(|f| {
            let event = f.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("");
            Some((event.to_string(), data.to_string()))
        })
        .collect();
    assert_eq!(frames.last().map(|f| f.0.as_str()), Some("end"), "{text}");
    let stages = ["ingest", "render", "layout", "ocr", "chunk", "embed", "extract", "generate"];
    let mut done_order = Vec::new();
    for (event, data) in &frames {
        if event == "job" {
            let v: Value = serde_json::from_str(data).unwrap();
            if v["state"] == "done" {
                done_order.push(stages.iter().position(|s| *s == v["stage"]).unwrap());
            }
        }
    }
    // Page ranges interleave in the per-page stages; each stage's first finished job still
    // comes in pipeline order, and the document-wide stages come after every page range.
    let first_done: Vec<usize> = (0..stages.len()).map(|s| done_order.iter().position(|&d| d == s).unwrap()).collect();
    assert!(first_done.windows(2).all(|w| w[0] < w[1]), "{done_order:?}");
    let last_per_page = done_order.iter().rposition(|&d| (1..=3).contains(&d)).unwrap();
    assert!(first_done[4] > last_per_page, "chunk after every page range: {done_order:?}");
    assert_eq!(done_order.last(), Some(&7));
    let last_doc = frames.iter().rev().find(|f| f.0 == "document").unwrap();
    let v: Value = serde_json::from_str(&last_doc.1).unwrap();
    assert_eq!(v["status"], "done", "{v}");
    let missing = client.get(format!("{base}/v1/documents/nope/events")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let (base, _dir, _ctx, client) = start_without_workers().await;
    let spec: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    // The routes as the router declares them in src/http.rs.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http.rs")).unwrap();
    let mut routes = Vec::new();
    for line in source.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap();
        for method in ["get", "post", "put", "patch", "delete"] {
            if line.contains(&format!("{method}(")) {
                routes.push((method, path.to_string()));
            }
        }
    }
    assert!(routes.len() >= 17, "{routes:?}");
    for (method, path) in &routes {
        assert!(spec["paths"][path][method].is_object(), "{method} {path} is missing from /openapi.json");
    }
    let documented: usize = spec["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len(), "/openapi.json describes routes the router does not have");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_a_token_scoped_and_rate_limited() {
    let (base, _dir, ctx, client) = start_without_workers().await;
    let spec: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let anonymous = reqwest::Client::new();
    let forged = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}{}", lectern::auth::PREFIX, "0".repeat(64)).parse().unwrap(),
        );
        reqwest::Client::builder().default_headers(h).build().unwrap()
    };
    // Table-driven over every documented route: no token or an unknown one is 401.
    let mut checked = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        let url = format!("{base}{}", path.replace("{id}", "1").replace("{name}", "quiz.pdf"));
        for method in methods.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            for c in [&anonymous, &forged] {
                let status = c.request(method.clone(), &url).send().await.unwrap().status();
                if path == "/healthz" || path == "/readyz" {
                    assert!(status.is_success(), "{method} {path}: {status}");
                } else {
                    assert_eq!(status, 401, "{method} {path}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "{checked}");
    let unauthorized = anonymous.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert_eq!(unauthorized.headers()["www-authenticate"], "Bearer");

    // A token scoped to one collection cannot upload to or search another, nor see its documents.
    let scoped = client_for(&ctx, &["papers".to_string()]).await;
    let created = upload(&client, &base, "paper.pdf", std::fs::read(common::fixture("paper.pdf")).unwrap()).await;
    let id = created["document_id"].as_str().unwrap();
    assert_eq!(scoped.get(format!("{base}/v1/documents/{id}")).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{base}/v1/documents/{id}")).send().await.unwrap().status(), 200);
    let search = |c: &reqwest::Client, collection: &str| {
        c.post(format!("{base}/v1/search")).json(&serde_json::json!({ "query": "x", "collection": collection })).send()
    };
    assert_eq!(search(&scoped, "default").await.unwrap().status(), 403);
    assert_eq!(search(&scoped, "papers").await.unwrap().status(), 200);
    let form = reqwest::multipart::Form::new()
        .text("collection", "default")
        .part("file", reqwest::multipart::Part::bytes(b"%PDF-1.4".to_vec()).file_name("x.pdf"));
    assert_eq!(scoped.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap().status(), 403);

    // Study sets, settings and the study queue of a collection it may not use are out of
    // reach too; a study set and its job are hidden like a document.
    let study = |c: &reqwest::Client| {
        c.post(format!("{base}/v1/collections/default/study")).json(&serde_json::json!({ "kinds": ["quiz"] })).send()
    };
    assert_eq!(study(&scoped).await.unwrap().status(), 403);
    let queued = study(&client).await.unwrap();
    assert_eq!(queued.status(), 202);
    let queued: Value = queued.json().await.unwrap();
    let study_id = queued["study_id"].as_str().unwrap().to_string();
    assert_eq!(scoped.get(format!("{base}/v1/study/{study_id}")).send().await.unwrap().status(), 404);
    // Percent-escaped ids are what the handlers see decoded: still hidden.
    let escaped = format!("%{:02X}{}", study_id.as_bytes()[0], &study_id[1..]);
    assert_eq!(scoped.get(format!("{base}/v1/study/{escaped}")).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{base}/v1/study/{escaped}")).send().await.unwrap().status(), 200);
    let escaped_doc = format!("%{:02X}{}", id.as_bytes()[0], &id[1..]);
    assert_eq!(scoped.get(format!("{base}/v1/documents/{escaped_doc}")).send().await.unwrap().status(), 404);
    assert_eq!(scoped.get(format!("{base}/v1/jobs/{}", queued["job_id"])).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{base}/v1/study/{study_id}")).send().await.unwrap().status(), 200);
    let due = scoped.get(format!("{base}/v1/collections/default/flashcards/due")).send().await.unwrap();
    assert_eq!(due.status(), 403);
    let fsrs = serde_json::json!({ "scheduler": "fsrs", "desired_retention": 0.9 });
    let put = scoped.put(format!("{base}/v1/collections/default/settings")).json(&fsrs).send().await.unwrap();
    assert_eq!(put.status(), 403);

    // Listings: the scoped token sees neither the document nor its collection.
    let get_json = |c: &reqwest::Client, path: &str| c.get(format!("{base}{path}")).send();
    let all: Value = get_json(&client, "/v1/documents?limit=10").await.unwrap().json().await.unwrap();
    assert_eq!(all["documents"][0]["id"].as_str(), Some(id), "{all}");
    assert!(all["next_cursor"].is_null(), "one page: {all}");
    let mine: Value = get_json(&scoped, "/v1/documents").await.unwrap().json().await.unwrap();
    assert_eq!(mine["documents"].as_array().unwrap().len(), 0, "{mine}");
    assert_eq!(get_json(&scoped, "/v1/documents?collection=default").await.unwrap().status(), 403);
    assert_eq!(get_json(&client, "/v1/documents?status=lost").await.unwrap().status(), 400);
    assert_eq!(get_json(&client, "/v1/documents?cursor=nonsense").await.unwrap().status(), 400);
    let collections: Value = get_json(&client, "/v1/collections").await.unwrap().json().await.unwrap();
    assert_eq!(collections["collections"][0]["name"], "default", "{collections}");
    assert_eq!(collections["collections"][0]["documents"], 1, "{collections}");
    let theirs: Value = get_json(&scoped, "/v1/collections").await.unwrap().json().await.unwrap();
    assert_eq!(theirs["collections"].as_array().unwrap().len(), 0, "{theirs}");
    let delete = |c: &reqwest::Client, name: &str| c.delete(format!("{base}/v1/collections/{name}")).send();
    assert_eq!(delete(&scoped, "default").await.unwrap().status(), 403);
    let gone: Value = delete(&client, "default").await.unwrap().json().await.unwrap();
    assert_eq!(gone["deleted_documents"], 1, "{gone}");
    let study_gone = client.get(format!("{base}/v1/study/{study_id}")).send().await.unwrap();
    assert_eq!(study_gone.status(), 404, "the collection's study sets go with it");
    assert_eq!(client.get(format!("{base}/v1/documents/{id}")).send().await.unwrap().status(), 404);

    // Revoked tokens stop working.
    let tokens = ctx.store.tokens().await.unwrap();
    let scoped_id = &tokens.iter().find(|t| t.collections == ["papers"]).unwrap().id;
    assert!(ctx.store.revoke_token(scoped_id).await.unwrap());
    assert_eq!(search(&scoped, "papers").await.unwrap().status(), 401);

    // Past its rate a token gets 429 with Retry-After.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.rate_per_minute = 5;
    let limited = common::context_with(settings).await;
    let (base, client) = serve(&limited, &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(client.get(format!("{base}/v1/queues")).send().await.unwrap());
    }
    assert!(statuses[..5].iter().all(|r| r.status() == 200));
    let refused = statuses.last().unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
}

/// CORS: only configured origins get a preflight answer and allow headers.
/// Every route that reaches a document's data, by caller: no token, a forged one and a
/// revoked one get 401; a token of collection A gets 403 where the request names collection B
/// and 404 for B's document, jobs, pages, content, figures, artifacts, events and flashcards,
/// and no answer to it carries B's document (its id, unless the caller sent it, or its name); B's own token gets 2xx everywhere, so each
/// refusal is about the caller, not a missing resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_every_route_by_caller() {
    let (base, _dir, ctx, _admin) = start_without_workers().await;
    let (_trigger, _workers) = common::start_workers(&ctx);
    let owner = client_for(&ctx, &["b".to_string()]).await;
    let other = client_for(&ctx, &["a".to_string()]).await;
    let (revoked_secret, revoked) = lectern::auth::new_token("revoked", &["b".to_string()]);
    ctx.store.insert_token(&revoked).await.unwrap();
    assert!(ctx.store.revoke_token(&revoked.id).await.unwrap());
    let with_bearer = |secret: String| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
        reqwest::Client::builder().default_headers(h).build().unwrap()
    };
    let revoked = with_bearer(revoked_secret);
    let forged = with_bearer(format!("{}{}", lectern::auth::PREFIX, "1".repeat(64)));
    let anonymous = reqwest::Client::new();

    let form = reqwest::multipart::Form::new().text("collection", "b").part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(common::fixture("paper.pdf")).unwrap()).file_name("paper.pdf"),
    );
    let created: Value =
        owner.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap().json().await.unwrap();
    let id = created["document_id"].as_str().unwrap().to_string();
    let doc = wait_document(&owner, &base, &id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let job = doc["jobs"][0]["id"].as_i64().unwrap();
    let figure = ctx.store.figures(&id).await.unwrap()[0].path.rsplit('/').next().unwrap().to_string();
    let cards: Value = owner
        .get(format!("{base}/v1/documents/{id}/artifacts/flashcards.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let card = cards["cards"][0]["id"].as_str().unwrap().to_string();

    use reqwest::Method;
    let search = serde_json::json!({ "query": "hydro network", "collection": "b" });
    let ask = serde_json::json!({ "question": "what is the hydro network?", "collection": "b" });
    let review = serde_json::json!({ "grade": 4 });
    // (method, path, JSON body, status for A's token: 403 names B, 404 reaches B's resource)
    let routes: Vec<(Method, String, Option<&Value>, u16)> = vec![
        (Method::GET, format!("/v1/documents/{id}"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/pages"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/content?format=markdown"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/figures/{figure}"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/artifacts"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/artifacts/quiz.pdf"), None, 404),
        (Method::GET, format!("/v1/documents/{id}/events"), None, 404),
        (Method::GET, format!("/v1/jobs/{job}"), None, 404),
        (Method::GET, format!("/v1/flashcards/{card}"), None, 404),
        (Method::POST, format!("/v1/flashcards/{card}/review"), Some(&review), 404),
        (Method::POST, "/v1/search".into(), Some(&search), 403),
        (Method::POST, "/v1/ask".into(), Some(&ask), 403),
        (Method::GET, "/v1/documents?collection=b".into(), None, 403),
        (Method::POST, format!("/v1/jobs/{job}/retry"), None, 404),
        (Method::POST, format!("/v1/jobs/{job}/cancel"), None, 404),
        (Method::POST, format!("/v1/documents/{id}/cancel"), None, 404),
        (Method::DELETE, "/v1/collections/b".into(), None, 403),
        (Method::DELETE, format!("/v1/documents/{id}"), None, 404),
    ];
    let call = |client: &reqwest::Client, method: &Method, path: &str, body: Option<&Value>| {
        let mut req = client.request(method.clone(), format!("{base}{path}"));
        if let Some(body) = body {
            req = req.json(body);
        }
        req.timeout(Duration::from_secs(30)).send()
    };
    let mut cells = 0;
    for (method, path, body, for_other) in &routes {
        for (who, client) in [("anonymous", &anonymous), ("forged", &forged), ("revoked", &revoked)] {
            let status = call(client, method, path, *body).await.unwrap().status();
            assert_eq!(status, 401, "{who} {method} {path}");
            cells += 1;
        }
        let resp = call(&other, method, path, *body).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, *for_other, "collection A's token: {method} {path}: {text}");
        // A 404 may repeat the id the caller sent, nothing else of B's document.
        let leak = text.contains("paper.pdf") || (!path.contains(&id) && text.contains(&id));
        assert!(!leak, "collection A's token sees B's document: {method} {path}: {text}");
        cells += 1;
        // The owner last: its DELETE and cancel would remove what the other cells reach.
        if *method == Method::GET || path.contains("search") || path.contains("ask") || path.contains("review") {
            let resp = call(&owner, method, path, *body).await.unwrap();
            assert!(resp.status().is_success(), "owner {method} {path}: {}", resp.status());
            cells += 1;
        }
    }
    // A's listings hold nothing of B.
    for path in ["/v1/documents", "/v1/collections"] {
        let text = call(&other, &Method::GET, path, None).await.unwrap().text().await.unwrap();
        assert!(!text.contains(&id) && !text.contains("\"b\""), "{path}: {text}");
        cells += 1;
    }
    println!("auth matrix: {cells} cells as expected");

    // The owner deletes the whole collection: its document, its rows in LanceDB and their
    // files, not left for a later maintenance.
    let index = ctx.index().await.unwrap();
    let indexed = index.stats("b").await.unwrap().unwrap();
    assert!(indexed.rows > 0, "{indexed:?}");
    let gone = call(&owner, &Method::DELETE, "/v1/collections/b", None).await.unwrap();
    assert!(gone.status().is_success(), "the owner deletes: {}", gone.status());
    assert_eq!(gone.json::<Value>().await.unwrap()["deleted_documents"], 1);
    assert!(ctx.store.document(&id).await.unwrap().is_none());
    let emptied = index.stats("b").await.unwrap().unwrap();
    assert_eq!(emptied.rows, 0);
    assert!(emptied.bytes_on_disk * 2 < indexed.bytes_on_disk, "{indexed:?} → {emptied:?}");
}

/// Slow-loris: a client that sends its request head a byte at a time, or opens connections
/// and sends nothing, loses them after the progress window; a client over the per-client cap
/// is closed at once; others are served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_connections() {
    use lectern::http::connections::{GuardedListener, PER_CLIENT};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guarded = GuardedListener::new(listener).window(Duration::from_secs(2));
    tokio::spawn(async move { axum::serve(guarded, lectern::http::router(ctx)).await.unwrap() });

    // One byte of a request head every 300 ms: closed within the window plus a little.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the slow client was never cut off");
    assert!(closed_after < Duration::from_secs(5), "closed after {closed_after:?}");

    // Idle connections up to the cap stay open until the window; one more is closed at once.
    let mut idle = Vec::new();
    for _ in 0..PER_CLIENT {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(1), over.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "a connection over the cap is closed: {n:?}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Places are given back: a normal request is served.
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_allowed_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.cors_origins = vec!["https://app.example".into()];
    let ctx = common::context_with(settings).await;
    let (base, client) = serve(&ctx, &[]).await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{base}/v1/search"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 204, "answered before authentication");
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none(), "{:?}", evil.headers());
    let get = client.get(format!("{base}/v1/queues")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["access-control-allow-origin"], "https://app.example");

    let (base, _dir, _ctx, client) = start_without_workers().await;
    let plain = client.get(format!("{base}/v1/queues")).header("origin", "https://app.example").send().await.unwrap();
    assert!(plain.headers().get("access-control-allow-origin").is_none(), "no origins by default");
}

/// Renders the dashboard in headless Chromium (installed by scripts/setup.sh).
fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=1000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium runs (scripts/setup.sh installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_an_upload_reaching_done_in_a_browser() {
    let (base, _dir, ctx, client) = start_without_workers().await;
    let (secret, token) = lectern::auth::new_token("browser", &[]);
    ctx.store.insert_token(&token).await.unwrap();
    let created = upload(&client, &base, "scan <i>.pdf", std::fs::read(common::fixture("scan.pdf")).unwrap()).await;
    let id = created["document_id"].as_str().unwrap().to_string();
    let url = format!("{base}/?token={secret}");

    // Before any worker runs, the page shows the document queued.
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &url]).stdout).into_owned();
    assert!(dom.contains(&format!("id=\"doc-{id}\"")), "{dom}");
    assert!(dom.contains("data-status=\"queued\"") && dom.contains("scan &lt;i&gt;.pdf"), "{dom}");
    assert!(dom.contains("<h2>Queues</h2>"));

    // With workers it reaches done on the page.
    let (_trigger, _workers) = common::start_workers(&ctx);
    let start = Instant::now();
    loop {
        let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &url]).stdout).into_owned();
        let row = dom.split(&format!("id=\"doc-{id}\"")).nth(1).unwrap_or("").split("</tr>").next().unwrap_or("");
        if row.contains("data-status=\"done\"") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "never done on the page: {dom}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1280,800", &url]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    println!("dashboard screenshot: {}", shot.display());

    // Without a token the page is refused.
    let out = chromium(&["--dump-dom", &format!("{base}/")]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("<h2>Queues</h2>"));
}

/// Everything a webhook receiver saw: (headers, body) per request.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A receiver on a free port that answers 500 to the first request and 200 after.
async fn webhook_receiver() -> (String, Received) {
    let received: Received = Default::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push((headers, body.to_vec()));
                if seen.len() == 1 { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried_and_upload_options_apply() {
    use hmac::{Hmac, Mac};
    use lectern_document::stages::ingest::UploadOptions;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.webhook_secret = Some("hook-secret".into());
    // The receiver is on loopback: refused unless allowed.
    let loopback_refused = {
        let options = UploadOptions { callback_url: Some("http://127.0.0.1:9/hook".into()), ..Default::default() };
        options.check(&settings).await.unwrap_err()
    };
    assert!(loopback_refused.contains("loopback"), "{loopback_refused}");
    settings.webhook_allow = vec!["127.0.0.1".into()];
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let ctx = std::sync::Arc::new(lectern_document::context::Context::new(
        settings,
        store,
        lectern_document::config::PipelineConfig::builtin(),
    ));
    let (base, client) = serve(&ctx, &[]).await;
    let (hook, received) = webhook_receiver().await;

    // Bad options are refused before anything is stored.
    let form = |query: &str, bytes: Vec<u8>| {
        let form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("paper.pdf"));
        client.post(format!("{base}/v1/documents?{query}")).multipart(form)
    };
    for bad in ["artifacts=poster", "callback_url=ftp://example.org/x", "priority=high"] {
        let resp = form(bad, b"%PDF-1.4".to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }

    // A file that fails at once: the failure is delivered, the first attempt answered 500.
    let resp = form(&format!("callback_url={hook}"), Vec::new()).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let empty: Value = resp.json().await.unwrap();
    // A real document with a subset of artifacts and a priority.
    let paper = std::fs::read(common::fixture("paper.pdf")).unwrap();
    let resp = form(&format!("callback_url={hook}&artifacts=quiz&priority=7"), paper).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let paper: Value = resp.json().await.unwrap();
    let (_trigger, _workers) = common::start_workers(&ctx);

    let doc = wait_document(&client, &base, paper["document_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let names: Vec<&str> = doc["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["quiz.json", "quiz.pdf"]);
    assert!(doc["jobs"].as_array().unwrap().iter().all(|j| j["priority"] == 7), "{doc}");

    let start = Instant::now();
    while received.lock().unwrap().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "webhooks not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().unwrap().clone();
    let mut events = Vec::new();
    for (headers, body) in &received {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-lectern-signature"].to_str().unwrap(), expected);
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["event"].as_str(), headers["x-lectern-event"].to_str().ok());
        events
            .push((body["document"]["id"].as_str().unwrap().to_string(), body["event"].as_str().unwrap().to_string()));
        if body["event"] == "document.failed" {
            assert!(body["document"]["error"].as_str().unwrap().contains("empty"), "{body}");
        }
    }
    let empty_id = empty["document_id"].as_str().unwrap().to_string();
    let paper_id = paper["document_id"].as_str().unwrap().to_string();
    let distinct: std::collections::BTreeSet<_> = events.iter().cloned().collect();
    let expected = [(empty_id, "document.failed".to_string()), (paper_id, "document.done".to_string())];
    assert_eq!((events.len(), distinct), (3, expected.into_iter().collect()));
    // The first request got a 500: the same delivery came again, and only it did.
    let first = &received[0].0["x-lectern-delivery"];
    let repeats: Vec<usize> = (0..3).filter(|&i| received[i].0["x-lectern-delivery"] == *first).collect();
    assert_eq!(repeats.len(), 2, "{events:?}");
    assert_eq!(events[repeats[0]], events[repeats[1]]);
    let queues: Value = client.get(format!("{base}/v1/queues")).send().await.unwrap().json().await.unwrap();
    let webhook = queues["queues"].as_array().unwrap().iter().find(|q| q["queue"] == "webhook").expect("webhook queue");
    assert_eq!(webhook["done"], 2, "{queues}");
}

/// `POST /v1/ask` over a real index: JSON answers quote the page; with `[generate.llm]`, the
/// answer streams as server-sent events and a citation of a passage that was not retrieved
/// is dropped. The LLM is a local stub that speaks the OpenAI streaming format (wire
/// format only: no model answers here); when it is down the answer is extractive and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_answers_with_citations_and_streams_an_llm_answer() {
    use axum::{Json, Router, routing::post};
    use lectern_document::config::{LlmConfig, PipelineConfig, Stage};
    use lectern_document::stages::{Payload, ingest};
    use std::sync::{Arc, Mutex};

    let prompts: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = prompts.clone();
    let llm = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| async move {
            assert_eq!(body["stream"], true);
            record.lock().unwrap().push(body["messages"][1]["content"].as_str().unwrap().to_string());
            let pieces = ["Emanuel Goldberg built ", "a machine [", "1] that reads [9", "] documents."];
            let mut sse: String = pieces
                .iter()
                .map(|p| {
                    format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {"content": p}}]}))
                })
                .collect();
            sse.push_str("data: [DONE]\n\n");
            ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], sse)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, llm).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let settings = common::settings(dir.path());
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let plain = Arc::new(lectern_document::context::Context::new(settings, store, PipelineConfig::builtin()));
    let id = ingest::submit_file_to(&plain, &common::fixture("scan.pdf"), "default").await.unwrap().0;
    for stage in [Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr, Stage::Chunk, Stage::Embed] {
        lectern_document::pipeline::run_stage(&plain, stage, &Payload::document(&id)).await.unwrap();
    }
    let question = serde_json::json!({ "question": "Who built a machine that turned characters into telegraph code?" });

    // Without an LLM: the best sentence, cited.
    let (base, client) = serve(&plain, &[]).await;
    let answer: Value =
        client.post(format!("{base}/v1/ask")).json(&question).send().await.unwrap().json().await.unwrap();
    assert_eq!((answer["found"].as_bool(), answer["method"].as_str()), (Some(true), Some("extractive")), "{answer}");
    assert!(answer["answer"].as_str().unwrap().contains("Goldberg"), "{answer}");
    let cited = &answer["citations"][0];
    assert_eq!(
        (cited["document_id"].as_str(), cited["name"].as_str(), cited["page"].as_i64()),
        (Some(id.as_str()), Some("scan.pdf"), Some(1))
    );
    let empty =
        client.post(format!("{base}/v1/ask")).json(&serde_json::json!({ "question": " " })).send().await.unwrap();
    assert_eq!(empty.status(), 400);

    // With one: events `passages`, `delta`…, `answer`; citation [9] never reaches the client.
    let with_llm = |url: String| {
        let mut pipeline = PipelineConfig::builtin();
        pipeline.generate.llm = Some(LlmConfig { url, model: "tiny".into(), api_key_env: None, timeout_secs: 5 });
        Arc::new(lectern_document::context::Context::new(plain.settings.clone(), plain.store.clone(), pipeline))
    };
    let (base, client) = serve(&with_llm(format!("http://{llm_addr}/v1")), &[]).await;
    let body = client
        .post(format!("{base}/v1/ask"))
        .header("accept", "text/event-stream")
        .json(&question)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<(&str, Value)> = body
        .split("\n\n")
        .filter_map(|e| {
            let kind = e.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data: String = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            Some((kind, serde_json::from_str(&data).unwrap()))
        })
        .collect();
    assert_eq!(events.first().map(|e| e.0), Some("passages"), "{body}");
    let streamed: String = events.iter().filter(|e| e.0 == "delta").map(|e| e.1["text"].as_str().unwrap()).collect();
    assert_eq!(streamed, "Emanuel Goldberg built a machine [1] that reads  documents.");
    let (kind, answer) = events.last().unwrap();
    assert_eq!((*kind, answer["method"].as_str()), ("answer", Some("llm")), "{body}");
    assert_eq!(answer["answer"], "Emanuel Goldberg built a machine [1] that reads documents.");
    assert_eq!(answer["citations"].as_array().unwrap().len(), 1);
    assert_eq!(answer["citations"][0]["passage"], 1);
    let prompt = prompts.lock().unwrap().pop().unwrap();
    assert!(
        prompt.contains("[1] (scan.pdf, page 1)")
            && prompt.ends_with("Question: Who built a machine that turned characters into telegraph code?"),
        "{prompt}"
    );

    // The LLM down: an extractive answer that says why.
    let (base, client) = serve(&with_llm("http://127.0.0.1:9/v1".into()), &[]).await;
    let answer: Value =
        client.post(format!("{base}/v1/ask")).json(&question).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["method"], "extractive", "{answer}");
    assert!(answer["llm_error"].as_str().unwrap().contains("127.0.0.1:9"), "{answer}");
}
