//! The remote store: every file and the LanceDB tables in a real S3-compatible server
//! (moto, started by `scripts/s3.sh` under `make test`), the data directory only a cache.

use std::sync::Arc;
use std::time::Duration;

use lectern_document::blob::Remote;
use lectern_document::config::PipelineConfig;
use lectern_document::context::Context;
use lectern_document::index::Mode;
use lectern_document::index::{DocumentMeta, VectorIndex};
use lectern_document::search::{SearchRequest, search};
use lectern_document::stages::ingest;

use crate::common;

/// A fresh prefix in the test server's bucket.
fn remote() -> Remote {
    let endpoint = std::env::var("LECTERN_TEST_S3_URL").expect(
        "LECTERN_TEST_S3_URL is not set: run the tests with `make test`, which starts the S3 server with scripts/s3.sh",
    );
    let options =
        [("aws_endpoint", endpoint.as_str()), ("aws_access_key_id", "lectern"), ("aws_secret_access_key", "lectern")];
    let url = format!("s3://lectern/test-{}", uuid::Uuid::new_v4().simple());
    Remote::with_options(&url, options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
}

/// A host: its own empty cache directory, the shared job store and remote store.
async fn host(cache: &std::path::Path, database: &str, remote: &Remote) -> Arc<Context> {
    let mut settings = common::settings(cache);
    settings.database_url = Some(database.to_string());
    settings.remote = Some(remote.clone());
    let store = lectern_queue::storage::open(Some(database), cache).await.unwrap();
    Arc::new(Context::new(settings, store, PipelineConfig::builtin()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_made_on_one_host_is_read_on_another_with_no_shared_disk() {
    let remote = remote();
    let database = common::fresh_pg_database().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(a_dir.path(), &database, &remote).await;
    let (trigger, workers) = common::start_workers(&a);
    let id = ingest::submit_file(&a, &common::fixture("paper.pdf")).await.unwrap().0;
    let docs = common::wait_finished(&a, std::slice::from_ref(&id), Duration::from_secs(600)).await;
    trigger.trigger();
    workers.await.unwrap();
    assert_eq!(docs[0].status.as_str(), "done", "{:?}", docs[0].error);

    // Everything durable is in the store.
    let keys = a.blobs.list("").await.unwrap();
    let has = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix));
    assert!(has(&format!("uploads/{}/", &docs[0].sha256[..2])), "{keys:?}");
    for part in
        ["pages/p0001.json", "pages/p0005.json", "chunks.json", "artifacts/quiz.pdf", "artifacts/cheatsheet.docx"]
    {
        assert!(has(&format!("documents/{id}/{part}")), "{part} missing: {keys:?}");
    }
    assert!(!std::path::Path::new(&remote.url_of("lancedb")).exists());

    // A's cache is only a cache: files used in the last hour stay, then a trim to nothing
    // empties it, and A reads the document back from the store.
    assert_eq!(a.blobs.trim_cache(0, Duration::from_secs(3600)).await.unwrap().files, 0);
    let trimmed = a.blobs.trim_cache(0, Duration::ZERO).await.unwrap();
    assert!(trimmed.files >= 5 && trimmed.bytes > 0, "{trimmed:?}");
    for dir in ["uploads", "documents"] {
        assert!(walk(&a_dir.path().join(dir)).is_empty(), "{dir} left in the cache");
    }
    let export = lectern::export::prepare(&a, &id).await.unwrap();
    let markdown = export.write(lectern_document::export::Format::Markdown, String::new(), Vec::new()).await.unwrap();
    assert!(String::from_utf8(markdown).unwrap().contains("geospatial"));

    // Host B has an empty cache: export, artifacts and search still work from the store.
    let b = host(b_dir.path(), &database, &remote).await;
    let export = lectern::export::prepare(&b, &id).await.unwrap();
    let markdown = export.write(lectern_document::export::Format::Markdown, String::new(), Vec::new()).await.unwrap();
    assert!(String::from_utf8(markdown).unwrap().contains("geospatial"));
    let quiz = b.store.artifacts(&id).await.unwrap().into_iter().find(|a| a.name == "quiz.pdf").unwrap();
    assert!(!quiz.path.starts_with('/'), "artifacts are recorded by key, not a host's path: {}", quiz.path);
    assert!(std::fs::read(b.blobs.fetch(&quiz.path).await.unwrap()).unwrap().starts_with(b"%PDF"));
    let req = SearchRequest::new("managing geospatial data shared by several organizations", 5, Mode::Hybrid);
    let hits = search(&b, &req).await.unwrap();
    assert_eq!(hits.first().map(|h| h.hit.document_id.as_str()), Some(id.as_str()), "{hits:#?}");

    // Deleting from B removes the document's objects and rows everywhere.
    assert!(lectern::status::delete_document(&b, &id).await.unwrap());
    assert!(b.blobs.list(&format!("documents/{id}")).await.unwrap().is_empty());
    assert_eq!(a.index().await.unwrap().count("default", Some(&id)).await.unwrap(), 0);
}

/// Writers on several hosts (a connection each) creating one table at once and committing
/// to it: exactly one creation wins, the object store's conditional PUT makes the loser of
/// each commit race retry, and no row is lost. (lance's own create is not atomic, lance
/// issue #4451: a losing create could land as an overwrite of the winner's rows.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_creating_one_table_at_once_lose_no_rows() {
    let remote = remote();
    let location = lectern_document::index::IndexLocation {
        uri: remote.url_of("lancedb"),
        storage_options: remote.options.clone(),
    };
    concurrent_writers(location).await;
}

/// The same race between processes sharing a local data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_creating_one_local_table_at_once_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writers(dir.path().into()).await;
}

async fn concurrent_writers(location: lectern_document::index::IndexLocation) {
    const WRITERS: usize = 4;
    const DOCUMENTS: usize = 6;
    const CHUNKS: usize = 7;
    // Several rounds: each starts on a fresh table, all writers creating it together.
    for round in 0..3 {
        let collection = format!("shared{round}");
        let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let writers = (0..WRITERS).map(|writer| {
            let (location, start, collection) = (location.clone(), start.clone(), collection.clone());
            tokio::spawn(async move {
                let index = VectorIndex::open(location).await.unwrap();
                start.wait().await;
                for d in 0..DOCUMENTS {
                    let document_id = format!("w{writer}-d{d}");
                    let chunks = common::chunks(&document_id, CHUNKS);
                    let vectors: Vec<Vec<f32>> =
                        (0..CHUNKS).map(|i| vec![i as f32, writer as f32, d as f32, 1.0]).collect();
                    let meta = DocumentMeta {
                        collection: &collection,
                        document_id: &document_id,
                        doc_type: "test",
                        model: "test",
                    };
                    index.replace_document(&meta, &chunks, &vectors).await.unwrap();
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        let index = VectorIndex::open(location.clone()).await.unwrap();
        assert_eq!(index.count(&collection, None).await.unwrap(), WRITERS * DOCUMENTS * CHUNKS, "round {round}");
    }
}

/// A store that is down (nothing listening) or failing (every answer a 503): uploads are
/// refused with 503 and Retry-After and leave nothing behind; a stage's job fails
/// transiently, so the engine retries it with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_gives_503_and_retries() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing_addr = failing.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut conn, _) = failing.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
            });
        }
    });
    let good = remote();
    for addr in [refused, failing_addr] {
        let options = vec![
            ("aws_endpoint".to_string(), format!("http://{addr}")),
            ("aws_access_key_id".into(), "lectern".into()),
            ("aws_secret_access_key".into(), "lectern".into()),
        ];
        let down = Remote::with_options("s3://lectern/down", options).unwrap();
        let database = common::fresh_pg_database().await;
        let dir = tempfile::tempdir().unwrap();
        let ctx = host(dir.path(), &database, &down).await;
        let (base, client) = crate::http::serve(&ctx, &[]).await;
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(common::fixture("paper.pdf")).unwrap())
                .file_name("paper.pdf"),
        );
        let resp = client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{addr}");
        assert!(resp.headers().contains_key("retry-after"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("object store"), "{body}");
        let left: Vec<_> = walk(&dir.path().join("uploads"));
        assert!(left.is_empty(), "nothing of the upload stays: {left:?}");

        // The same upload stored while the store was up; its ingest job on this host fails
        // transiently (retried), not as bad input.
        let up_dir = tempfile::tempdir().unwrap();
        let up = host(up_dir.path(), &database, &good).await;
        let id = ingest::submit_file(&up, &common::fixture("paper.pdf")).await.unwrap().0;
        let payload = lectern_document::stages::Payload::document(&id);
        let err = lectern_document::pipeline::run_stage(&ctx, lectern_document::config::Stage::Ingest, &payload)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, lectern_document::error::StageError::Transient(m) if m.contains("object store")),
            "{err:?}"
        );
    }
}

/// Files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}
