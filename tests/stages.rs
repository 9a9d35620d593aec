//! Each pipeline stage on real fixtures with the real components: pdfium, the ONNX layout
//! model, tesseract, fastembed + LanceDB, docx-rs and krilla.

mod common;

use std::io::Read;

use lectern::pipeline::workdir::TextSource;
use lectern::pipeline::{Payload, Stage, StageError, ingest};

async fn submit(ctx: &lectern::context::Context, name: &str) -> String {
    ingest::submit_file(ctx, &common::fixture(name)).await.unwrap().0
}

/// Runs `stage` on the whole document.
async fn run_stage(ctx: &lectern::context::Context, stage: Stage, id: &str) -> Result<(), StageError> {
    lectern::pipeline::run_stage(ctx, stage, &Payload::document(id)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn born_digital_pdf_through_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = submit(&ctx, "paper.pdf").await;

    run_stage(&ctx, Stage::Ingest, &id).await.unwrap();
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!((doc.media_type.as_deref(), doc.pages), (Some("application/pdf"), Some(5)));

    // render: text layer with word boxes on the page; no OCR needed for born-digital pages.
    run_stage(&ctx, Stage::Render, &id).await.unwrap();
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert_eq!(pages.len(), 5);
    let p2 = &pages[1];
    assert_eq!(p2.source, TextSource::TextLayer);
    assert!(p2.ocr_image.is_none());
    assert!(p2.text().contains("smallest common denominator"), "{}", p2.text());
    for w in &p2.words {
        assert!(
            w.bbox[0] >= 0.0 && w.bbox[2] <= p2.width + 1.0 && w.bbox[1] >= 0.0 && w.bbox[3] <= p2.height + 1.0,
            "{w:?}"
        );
        assert!(w.bbox[0] <= w.bbox[2] && w.bbox[1] <= w.bbox[3], "{w:?}");
    }

    // layout: regions on every page, and the raster figure on page 5 cropped to a PNG.
    run_stage(&ctx, Stage::Layout, &id).await.unwrap();
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert!(pages.iter().all(|p| !p.regions.is_empty()), "every page has layout regions");
    let figures = ctx.store.figures(&id).await.unwrap();
    assert!(figures.iter().any(|f| f.page == 5), "figure on page 5: {figures:?}");
    for f in &figures {
        let png = image::open(&f.path).expect("figure PNG is readable");
        assert!(png.width() > 50 && png.height() > 50);
    }
    // Re-running layout leaves one set of figures.
    run_stage(&ctx, Stage::Layout, &id).await.unwrap();
    assert_eq!(ctx.store.figures(&id).await.unwrap(), figures);

    // ocr: nothing to do on born-digital pages; the text layer stays.
    run_stage(&ctx, Stage::Ocr, &id).await.unwrap();
    let after_ocr = ctx.workdir(&id).load_pages().unwrap();
    assert_eq!(after_ocr[1].words, pages[1].words);

    // chunk: provenance kept.
    run_stage(&ctx, Stage::Chunk, &id).await.unwrap();
    let chunks = lectern::pipeline::chunk::load(&ctx, &id).unwrap();
    let hit = chunks.iter().find(|c| c.text.contains("smallest common denominator")).expect("chunk with the phrase");
    assert_eq!((hit.page, hit.document_id.as_str()), (2, id.as_str()));
    assert!(hit.bbox[2] > hit.bbox[0] && hit.bbox[3] <= pages[1].height + 1.0);

    // embed: one row per chunk, and re-embedding replaces rather than duplicates.
    run_stage(&ctx, Stage::Embed, &id).await.unwrap();
    let index = ctx.index().await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), chunks.len());
    run_stage(&ctx, Stage::Embed, &id).await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), chunks.len());
    let hits =
        common::search(&ctx, "managing geospatial data shared by several organizations", lectern::index::Mode::Vector)
            .await;
    assert_eq!((hits[0].document_id.as_str(), hits[0].page), (id.as_str(), 2), "{hits:#?}");

    // generate: the three artifacts exist and read back.
    run_stage(&ctx, Stage::Generate, &id).await.unwrap();
    let artifacts = ctx.store.artifacts(&id).await.unwrap();
    let names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["cheatsheet.docx", "flashcards.json", "quiz.json", "quiz.pdf"]);
    let path = |name: &str| artifacts.iter().find(|a| a.name == name).unwrap().path.clone();

    let mut zip = zip_entry(&path("cheatsheet.docx"), "word/document.xml");
    assert!(zip.contains("w:cols") && zip.contains("w:num=\"2\""), "two columns");
    assert!(zip.contains("Heading1"));
    zip.clear();

    let deck: serde_json::Value = serde_json::from_slice(&std::fs::read(path("flashcards.json")).unwrap()).unwrap();
    let cards = deck["cards"].as_array().unwrap();
    assert!(!cards.is_empty());
    for c in cards {
        assert_eq!(c["sm2"]["ease"], 2.5);
        assert_eq!(c["sm2"]["interval_days"], 0);
        assert_eq!(c["sm2"]["repetitions"], 0);
        assert!(c["sm2"]["due"].is_string() && c["page"].as_u64().unwrap() >= 1);
    }

    let quiz = std::fs::read(path("quiz.pdf")).unwrap();
    assert!(quiz.starts_with(b"%PDF-"));
    let pdfium = ctx.pdfium().await.unwrap();
    let quiz_path = std::path::PathBuf::from(path("quiz.pdf"));
    let texts: Vec<String> = pdfium
        .run(move |p| {
            let doc = p.load_pdf_from_file(&quiz_path, None).map_err(|e| StageError::Transient(e.to_string()))?;
            Ok(doc.pages().iter().map(|pg| pg.text().map(|t| t.all()).unwrap_or_default()).collect())
        })
        .await
        .unwrap();
    assert!(texts.len() >= 2);
    assert!(texts.last().unwrap().contains("Answer key"), "answer key on its own last page");
    assert!(texts[0].contains("1.") && !texts[0].contains("Answer key"));
}

fn zip_entry(path: &str, name: &str) -> String {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut s = String::new();
    archive.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanned_page_is_ocrd() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = submit(&ctx, "scan.pdf").await;
    for stage in [Stage::Ingest, Stage::Render] {
        run_stage(&ctx, stage, &id).await.unwrap();
    }
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert_eq!(pages[0].source, TextSource::Ocr, "a scan has no usable text layer");
    assert!(pages[0].ocr_image.is_some());
    run_stage(&ctx, Stage::Ocr, &id).await.unwrap();
    let page = &ctx.workdir(&id).load_pages().unwrap()[0];
    let text = page.text();
    assert!(text.contains("Goldberg"), "{text}");
    assert!(text.to_lowercase().contains("optical character recognition"), "{text}");
    assert!(page.ocr_confidence.unwrap() > 70.0);
    assert!(page.words.iter().all(|w| w.conf.is_some() && w.bbox[3] <= page.height + 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_upload_is_one_ocrd_page() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = submit(&ctx, "page.png").await;
    for stage in [Stage::Ingest, Stage::Render, Stage::Ocr] {
        run_stage(&ctx, stage, &id).await.unwrap();
    }
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!((doc.media_type.as_deref(), doc.pages), (Some("image/png"), Some(1)));
    let text = ctx.workdir(&id).load_pages().unwrap()[0].text();
    assert!(text.contains("BAIONA"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let mut corrupt = std::fs::read(common::fixture("paper.pdf")).unwrap();
    corrupt.truncate(2000);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("empty.pdf", Vec::new(), "empty"),
        ("corrupt.pdf", corrupt, "corrupt"),
        ("notes.pdf", b"just some text pretending to be a PDF".to_vec(), "unsupported file type"),
    ];
    for (name, bytes, expected) in cases {
        let path = common::write_file(dir.path(), name, &bytes);
        let (id, _) = ingest::submit_file(&ctx, &path).await.unwrap();
        match run_stage(&ctx, Stage::Ingest, &id).await {
            Err(StageError::BadInput(reason)) => assert!(reason.contains(expected), "{name}: {reason}"),
            other => panic!("{name}: expected a bad-input error, got {other:?}"),
        }
    }
}
