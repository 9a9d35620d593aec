//! Full pipeline runs through the worker engine on the embedded default (SQLite file +
//! local LanceDB): good documents reach `done` through every queue, bad ones fail with a
//! readable reason, and the workers keep going.

use crate::common;

use lectern_document::export::Format;
use lectern_document::index::Mode;

use std::time::Duration;

use lectern_document::stages::{Payload, ingest};
use lectern_queue::storage::JobState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_flow_through_every_queue_and_bad_ones_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let (trigger, workers) = common::start_workers(&ctx);

    // Bad input first: the same workers must go on to process the good documents.
    let empty = common::write_file(dir.path(), "empty.pdf", b"");
    let mut truncated = std::fs::read(common::fixture("paper.pdf")).unwrap();
    truncated.truncate(3000);
    let corrupt = common::write_file(dir.path(), "corrupt.pdf", &truncated);
    let mut ids = Vec::new();
    for path in [empty, corrupt, common::fixture("paper.pdf"), common::fixture("scan.pdf")] {
        ids.push(ingest::submit_file(&ctx, &path).await.unwrap().0);
    }
    let docs = common::wait_finished(&ctx, &ids, Duration::from_secs(600)).await;

    assert_eq!(docs[0].status.as_str(), "failed");
    assert!(docs[0].error.as_deref().unwrap().contains("empty"), "{:?}", docs[0].error);
    assert_eq!(docs[1].status.as_str(), "failed");
    assert!(docs[1].error.as_deref().unwrap().contains("corrupt"), "{:?}", docs[1].error);
    let failed_jobs = ctx.store.jobs_for_document(&ids[1]).await.unwrap();
    assert_eq!(failed_jobs.len(), 1);
    assert_eq!((failed_jobs[0].state, failed_jobs[0].attempt), (JobState::Failed, 1), "bad input is not retried");

    for (doc, id) in docs[2..].iter().zip(&ids[2..]) {
        assert_eq!(doc.status.as_str(), "done", "{doc:?}");
        let jobs = ctx.store.jobs_for_document(id).await.unwrap();
        let mut stages: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        stages.sort_by_key(|s| ctx.pipeline.stages.iter().position(|p| p == s));
        stages.dedup();
        assert_eq!(stages, ["ingest", "render", "layout", "ocr", "chunk", "embed", "extract", "generate"]);
        assert!(jobs.iter().all(|j| j.state == JobState::Done && j.attempt == 1));
        // Per-page stages ran once per range of 4 pages; the rest once per document.
        let ranges = (doc.pages.unwrap() as usize).div_ceil(4);
        for stage in &ctx.pipeline.stages {
            let n = jobs.iter().filter(|j| &j.stage == stage).count();
            assert_eq!(n, if ctx.pipeline.is_per_page(stage) { ranges } else { 1 }, "{stage}");
        }
        assert_eq!(doc.pages_done, doc.pages.unwrap());
        assert_eq!(ctx.store.artifacts(id).await.unwrap().len(), 4, "cheat sheet, quiz PDF and JSON, flashcards");
    }
    assert!(!ctx.store.figures(&ids[2]).await.unwrap().is_empty(), "figures from the paper");

    // The export use case: the paper's Markdown links its figures; a document that failed
    // before it had pages says why.
    let figures = format!("{}/", ctx.workdir(&ids[2]).figures_dir().display());
    let md = lectern::export::prepare(&ctx, &ids[2]).await.unwrap().write(Format::Markdown, figures, Vec::new());
    let md = String::from_utf8(md.await.unwrap()).unwrap();
    let links: Vec<&str> = md.lines().filter_map(|l| l.strip_prefix("![Figure ")).collect();
    assert_eq!(links.len(), ctx.store.figures(&ids[2]).await.unwrap().len(), "{md}");
    for link in links {
        let path = link.split_once("](").unwrap().1.trim_end_matches(')');
        assert!(std::path::Path::new(path).is_file(), "{link}");
    }
    assert!(md.lines().any(|l| l.starts_with("# ") || l.starts_with("## ")), "headings: {md}");
    match lectern::export::prepare(&ctx, &ids[0]).await {
        Err(e @ lectern::export::ExportError::NoPages { .. }) => assert!(e.to_string().contains("empty"), "{e}"),
        other => panic!("{:?}", other.err()),
    }

    // Search finds the right document and page, for the text layer and for OCR text.
    let hits = common::search(&ctx, "managing geospatial data shared by several organizations", Mode::Hybrid).await;
    assert_eq!((hits[0].document_id.as_str(), hits[0].page), (ids[2].as_str(), 2), "{hits:#?}");
    let hits = common::search(&ctx, "Emanuel Goldberg developed a machine", Mode::Hybrid).await;
    assert_eq!((hits[0].document_id.as_str(), hits[0].page), (ids[3].as_str(), 1), "{hits:#?}");

    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(30), workers).await.expect("workers stop on shutdown").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_torn_on_disk_fails_ingest_by_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let (id, _) = ingest::submit_file(&ctx, &common::fixture("paper.pdf")).await.unwrap();
    ingest::run(&ctx, &Payload::document(&id)).await.expect("the intact upload passes");
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    let stored = ingest::upload_path(&ctx.settings, &doc.sha256);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000..].fill(0); // as if its tail never reached the disk
    std::fs::write(&stored, &bytes).unwrap();
    let err = ingest::run(&ctx, &Payload::document(&id)).await.unwrap_err();
    assert!(matches!(err, lectern_document::error::StageError::BadInput(_)), "not retried: {err:?}");
    assert!(err.to_string().contains("sha256"), "{err}");
}
