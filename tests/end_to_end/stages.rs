//! Each pipeline stage on real fixtures with the real components: pdfium, the ONNX layout
//! model, tesseract, fastembed + LanceDB, docx-rs and krilla.

use crate::common;

use std::io::Read;

use lectern_document::config::Stage;
use lectern_document::error::StageError;
use lectern_document::model::workdir::TextSource;
use lectern_document::stages::{Payload, ingest};

async fn submit(ctx: &lectern_document::context::Context, name: &str) -> String {
    ingest::submit_file(ctx, &common::fixture(name)).await.unwrap().0
}

/// Submits a fixture and runs `stages` on the whole document; returns its id.
pub(crate) async fn submit_through(ctx: &lectern_document::context::Context, name: &str, stages: &[Stage]) -> String {
    let id = submit(ctx, name).await;
    for &stage in stages {
        run_stage(ctx, stage, &id).await.unwrap_or_else(|e| panic!("{name}: {stage:?}: {e}"));
    }
    id
}

/// Runs `stage` on the whole document.
async fn run_stage(ctx: &lectern_document::context::Context, stage: Stage, id: &str) -> Result<(), StageError> {
    lectern_document::pipeline::run_stage(ctx, stage, &Payload::document(id)).await
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
    assert!(p2.text().contains("Number of characteristics"), "text turned 90° keeps its words: {}", p2.text());
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!(doc.language.as_deref(), Some("eng"), "language of the text layer");
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
    let summaries = lectern::status::document_pages(&ctx, &id).await.unwrap().unwrap();
    assert_eq!(summaries.len(), 5);
    assert!(summaries.iter().all(|p| p.source == TextSource::TextLayer && p.ocr_confidence.is_none() && p.regions > 0));
    let figures = ctx.store.figures(&id).await.unwrap();
    assert!(figures.iter().any(|f| f.page == 5), "figure on page 5: {figures:?}");
    // Its box is the embedded image's own (found by render), not the model's estimate.
    let image_box = pages[4].images.first().expect("render found the image on page 5").map(f64::from);
    let exact = figures.iter().find(|f| f.page == 5 && f.score == 1.0).expect("the embedded image is a figure");
    assert!(exact.bbox.iter().zip(image_box).all(|(a, b)| (a - b).abs() < 0.5), "{exact:?} vs {image_box:?}");
    for f in &figures {
        let png = image::open(ctx.blobs.path(&f.path)).expect("figure PNG is readable");
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
    let chunks = lectern_document::stages::chunk::load(&ctx, &id).await.unwrap();
    let hit = chunks.iter().find(|c| c.text.contains("smallest common denominator")).expect("chunk with the phrase");
    assert_eq!((hit.page, hit.document_id.as_str()), (2, id.as_str()));
    assert!(hit.bbox[2] > hit.bbox[0] && hit.bbox[3] <= pages[1].height + 1.0);

    // embed: one row per chunk, and re-embedding replaces rather than duplicates.
    run_stage(&ctx, Stage::Embed, &id).await.unwrap();
    let index = ctx.index().await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), chunks.len());
    run_stage(&ctx, Stage::Embed, &id).await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), chunks.len());
    let hits = common::search(
        &ctx,
        "managing geospatial data shared by several organizations",
        lectern_document::index::Mode::Vector,
    )
    .await;
    assert_eq!((hits[0].document_id.as_str(), hits[0].page), (id.as_str(), 2), "{hits:#?}");

    // generate: the three artifacts exist and read back.
    run_stage(&ctx, Stage::Generate, &id).await.unwrap();
    let artifacts = ctx.store.artifacts(&id).await.unwrap();
    let names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["cheatsheet.docx", "flashcards.json", "quiz.json", "quiz.pdf"]);
    let path = |name: &str| ctx.blobs.path(&artifacts.iter().find(|a| a.name == name).unwrap().path);

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
    let quiz_path = path("quiz.pdf");
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

fn zip_entry(path: &std::path::Path, name: &str) -> String {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut s = String::new();
    archive.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// The pdfium children serve call after call: a count then a render of the same file, a
/// file replaced at the same path read anew, and a child that failed replaced by a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdfium_children_serve_call_after_call() {
    use lectern_document::engines::pdfium::Renders;
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let pdfium = ctx.pdfium_process().await.unwrap();
    let pdf = dir.path().join("upload.pdf");

    std::fs::copy(common::fixture("paper.pdf"), &pdf).unwrap();
    assert_eq!(pdfium.page_count(pdf.clone()).await.unwrap(), 5);
    let renders = Renders { layout: false, layer_check: false };
    let pages = pdfium.render(pdf.clone(), dir.path().to_path_buf(), 2..=3, renders).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.number).collect::<Vec<_>>(), [2, 3]);
    assert!(pages.iter().all(|p| p.source == TextSource::TextLayer && !p.words.is_empty()));

    std::fs::copy(common::fixture("columns.pdf"), &pdf).unwrap();
    assert_eq!(pdfium.page_count(pdf.clone()).await.unwrap(), 1, "the new file at the same path");

    std::fs::write(&pdf, b"%PDF-1.7\nnot a PDF after all").unwrap();
    let err = pdfium.page_count(pdf.clone()).await.unwrap_err();
    assert!(matches!(&err, StageError::BadInput(r) if r.contains("corrupt")), "{err}");
    std::fs::copy(common::fixture("paper.pdf"), &pdf).unwrap();
    assert_eq!(pdfium.page_count(pdf.clone()).await.unwrap(), 5, "after a failed call");
    pdfium.close().await;
    assert_eq!(pdfium.page_count(pdf).await.unwrap(), 5, "after close, on a new child");
    pdfium.close().await;
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
    assert_eq!(page.ocr_language.as_deref(), Some("eng"));
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!(doc.language.as_deref(), Some("eng"), "language found by the first OCR pass");
    let pages = lectern::status::document_pages(&ctx, &id).await.unwrap().unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!((pages[0].source, pages[0].low_confidence), (TextSource::Ocr, false));
    assert!(pages[0].words > 300 && pages[0].ocr_confidence.unwrap() > 70.0, "{pages:?}");
}

/// A French scan: the first pass (eng) reads "a coté de l'alcéve"; the language found in it
/// sends the page through the French data, which reads the accents right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn french_scan_is_read_with_french_data() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = submit_through(&ctx, "francais.pdf", &[Stage::Ingest, Stage::Render, Stage::Ocr]).await;
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!(doc.language.as_deref(), Some("fra"));
    let page = &ctx.workdir(&id).load_pages().unwrap()[0];
    assert_eq!(page.ocr_language.as_deref(), Some("fra"));
    let text = page.text();
    for phrase in ["à côté de l'alcôve", "les bûches", "consument dans l'âtre", "œuvre"] {
        assert!(text.contains(phrase), "{phrase:?} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_uploads_are_one_ocrd_page() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    // The JPEG's compression costs the large title; the legend still reads.
    for (name, mime, word) in [("page.png", "image/png", "BAIONA"), ("page.jpg", "image/jpeg", "Komunikabideak")] {
        let id = submit_through(&ctx, name, &[Stage::Ingest, Stage::Render, Stage::Ocr]).await;
        let doc = ctx.store.document(&id).await.unwrap().unwrap();
        assert_eq!((doc.media_type.as_deref(), doc.pages), (Some(mime), Some(1)));
        let text = ctx.workdir(&id).load_pages().unwrap()[0].text();
        assert!(text.contains(word), "{name}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let mut corrupt = std::fs::read(common::fixture("paper.pdf")).unwrap();
    corrupt.truncate(2000);
    let mut broken_docx = std::fs::read(common::fixture("tables.docx")).unwrap();
    broken_docx.truncate(4000);
    let mut legacy = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
    legacy.resize(4096, 0);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty.pdf", Vec::new(), "empty"),
        ("corrupt.pdf", corrupt, "corrupt"),
        ("notes.pdf", b"just some text pretending to be a PDF".to_vec(), "unsupported file type"),
        ("broken.docx", broken_docx, "not a readable DOCX/PPTX"),
        ("secret.docx", legacy, "password-protected Office document"),
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

/// Runs the stages up to chunking, which is all a non-PDF input changes.
async fn through_chunking(ctx: &lectern_document::context::Context, name: &str) -> String {
    submit_through(ctx, name, &[Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr, Stage::Chunk]).await
}

/// A two-column page whose text layer interleaves the columns line by line
/// (`fixtures/make_columns.py`): the chunks read the left column, then the right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_columns_read_column_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = through_chunking(&ctx, "columns.pdf").await;
    let page = &ctx.workdir(&id).load_pages().unwrap()[0];
    assert_eq!(page.source, TextSource::TextLayer);
    let text = chunks_text(&ctx, &id).await;
    let tides = "Tides rise and fall twice a day because the Moon pulls the oceans toward it.";
    assert!(text.contains(tides), "{tides:?} is read whole in: {text}");
    assert_left_column_then_right(&text);
}

/// The chunks of document `id`, their texts joined by spaces.
async fn chunks_text(ctx: &lectern_document::context::Context, id: &str) -> String {
    let chunks = lectern_document::stages::chunk::load(ctx, id).await.unwrap();
    chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// `fixtures/columns.pdf` read column by column: the left column's last sentence and the
/// right column's first, each whole, in that order.
fn assert_left_column_then_right(text: &str) {
    let harbours = "Harbours publish tide tables so that ships with deep hulls can wait for high water.";
    let bread = "Bread rises because yeast eats sugar in the dough and breathes out carbon dioxide.";
    for sentence in [harbours, bread] {
        assert!(text.contains(sentence), "{sentence:?} is read whole in: {text}");
    }
    assert!(text.find(harbours) < text.find(bread), "the left column ends before the right begins: {text}");
}

/// The same two columns as a scan tilted 2.5°: deskewed, OCR'd, and still read column by
/// column, each sentence whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tilted_two_column_scan_reads_column_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let page = fixture_page(&ctx, "columns.pdf").await;
    let (w, h) = page.dimensions();
    let tilted = lectern_document::engines::deskew::rotate::<1>(page.as_raw(), w, h, 2.5);
    let file = dir.path().join("columns-scan.png");
    image::GrayImage::from_raw(w, h, tilted).unwrap().save(&file).unwrap();
    let id = through_chunking(&ctx, file.to_str().unwrap()).await;
    let page = &ctx.workdir(&id).load_pages().unwrap()[0];
    assert_eq!(page.source, TextSource::Ocr);
    assert!(page.skew.is_some_and(|d| (d - 2.5).abs() < 0.2), "tilt {:?}", page.skew);
    assert_left_column_then_right(&chunks_text(&ctx, &id).await);
}

/// DOCX (python-docx's own test files): heading styles become titles with their level,
/// tables are kept whole as text, embedded images become figures; nothing is OCR'd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docx_headings_tables_and_images() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let docx_mime = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

    let id = through_chunking(&ctx, "headings.docx").await;
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!((doc.media_type.as_deref(), doc.pages), (Some(docx_mime), Some(1)));
    let page = &ctx.workdir(&id).load_pages().unwrap()[0];
    assert_eq!((page.source, page.ocr_image.as_deref()), (TextSource::TextLayer, None));
    let title = &page.regions[0];
    assert_eq!((title.label.as_str(), title.level), ("title", Some(1)), "{:?}", page.regions);
    let chunks = lectern_document::stages::chunk::load(&ctx, &id).await.unwrap();
    let body = chunks.iter().find(|c| c.text.contains("Normal paragraph")).expect("body chunk");
    assert_eq!(body.heading_path, ["Heading Paragraph"]);

    let id = through_chunking(&ctx, "tables.docx").await;
    let pages = ctx.workdir(&id).load_pages().unwrap();
    let text: String = pages.iter().map(|p| p.text()).collect::<Vec<_>>().join(" ");
    assert!(text.contains("Lorem ipsum dolor sit amet") && text.contains("Donec semper"), "{text}");
    assert!(pages.iter().flat_map(|p| &p.regions).any(|r| r.label == "table"), "a table region");

    let id = through_chunking(&ctx, "images.docx").await;
    let figures = ctx.store.figures(&id).await.unwrap();
    assert_eq!(figures.len(), 5, "one figure per embedded picture: {figures:?}");
    let pages = ctx.workdir(&id).load_pages().unwrap();
    for f in &figures {
        let png = image::open(ctx.blobs.path(&f.path)).expect("figure PNG is readable");
        assert!(png.width() >= 140 && png.height() >= 56, "{f:?}");
        let page = &pages[f.page as usize - 1];
        assert!(f.bbox[3] <= page.height as f64 && f.bbox[2] <= page.width as f64, "{f:?} lies on its page");
    }
}

/// PPTX (python-pptx's own test files): a page per slide with text boxes, grouped shapes
/// and tables in reading order, pictures (a GIF and a JPEG) as figures, and the slide's
/// speaker notes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pptx_slides_tables_pictures_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;

    let id = through_chunking(&ctx, "slides.pptx").await;
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    let pptx_mime = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
    assert_eq!((doc.media_type.as_deref(), doc.pages), (Some(pptx_mime), Some(1)));
    let text = ctx.workdir(&id).load_pages().unwrap()[0].text();
    assert_eq!(text, "Test text Group test text Box 1 Box 2 Col head 1 | Col head 2 Cell text 1 | Cell text 2");
    let figures = ctx.store.figures(&id).await.unwrap();
    let widths: Vec<u32> = figures.iter().map(|f| image::open(ctx.blobs.path(&f.path)).unwrap().width()).collect();
    assert_eq!(widths, [211, 204], "the GIF and the JPEG picture: {figures:?}");

    let id = through_chunking(&ctx, "notes.pptx").await;
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].text(), "Notes: Notes", "the first slide has speaker notes");
    assert!(pages[0].regions.iter().any(|r| r.label == "notes"));
    assert_eq!(pages[1].text(), "");
}

/// A two-page TIFF made from real scans (fixtures/README.md): a 1-bit page and an RGB page,
/// each OCR'd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_page_tiff_is_one_page_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = submit_through(&ctx, "pages.tiff", &[Stage::Ingest, Stage::Render, Stage::Ocr]).await;
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    assert_eq!((doc.media_type.as_deref(), doc.pages), (Some("image/tiff"), Some(2)));
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert!(pages[0].text().contains("Goldberg"), "{}", pages[0].text());
    assert!(pages[1].text().contains("BAIONA"), "{}", pages[1].text());
    assert!((pages[0].width - 595.2).abs() < 1.0, "A4 at 300 dpi: {}", pages[0].width);
}

/// The first page of fixture `name`, a PDF, as a 300-DPI grey image.
async fn fixture_page(ctx: &lectern_document::context::Context, name: &str) -> image::GrayImage {
    let path = common::fixture(name);
    let pdfium = ctx.pdfium().await.unwrap();
    pdfium.run(move |pdfium| lectern_document::engines::pdfium::render_grey(pdfium, &path, 1, 300.0)).await.unwrap()
}

/// A real scan turned on its side: the first pass reads garbage, orientation detection
/// turns the page and the text comes out right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_on_its_side_is_read_upright() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let grey = fixture_page(&ctx, "scan.pdf").await;
    let turned = image::imageops::rotate90(&grey);
    let page = tokio::task::spawn_blocking(move || {
        let (w, h) = turned.dimensions();
        lectern_document::engines::tesseract::recognize("eng", turned.as_raw(), w, h, 300)
    })
    .await
    .unwrap()
    .unwrap();
    let text = page.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
    assert!(text.contains("Emanuel Goldberg developed a machine"), "{text}");
    assert!(page.mean_confidence.unwrap() > 70.0);
}

/// Scans stored on their side and upside down: the layout stage finds how each lies, turns
/// its page images upright for good and records the turn; the page reads in order, its
/// size is the upright page's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_on_their_side_or_upside_down_are_set_upright_before_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let upright = fixture_page(&ctx, "scan.pdf").await;
    let lying = [
        ("on-its-side.png", image::imageops::rotate90(&upright), 270),
        ("upside-down.png", image::imageops::rotate180(&upright), 180),
    ];
    for (name, image, turn) in lying {
        let file = dir.path().join(name);
        image.save(&file).unwrap();
        let id = through_chunking(&ctx, file.to_str().unwrap()).await;
        let page = ctx.workdir(&id).load_pages().unwrap().remove(0);
        assert_eq!(page.turn, Some(turn), "{name}");
        assert!(page.height > page.width, "{name}: upright size {}×{}", page.width, page.height);
        let blocks = lectern_document::text::blocks::page_blocks(&page);
        let text: Vec<String> = blocks.iter().map(|b| lectern_document::text::blocks::running_text(&b.words)).collect();
        let text = text.join(" ");
        assert!(text.contains("Emanuel Goldberg developed a machine"), "{name}: {text}");
    }
}

/// A scan under an invisible text layer (render mode 3, as OCR tools leave it), made here
/// with pdfium: page 1's layer is tesseract's own reading of the scan, page 2's the same
/// words garbled, as a poor OCR engine leaves them. The OCR stage reads a band of each as
/// a sample: page 1's layer agrees and is kept, page 2's does not and the page is OCR'd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invisible_text_layer_is_checked_and_a_poor_one_replaced_by_ocr() {
    use pdfium_render::prelude::{
        PdfPageContentRegenerationStrategy, PdfPageImageObject, PdfPageObjectsCommon, PdfPagePaperSize,
        PdfPageTextObject, PdfPageTextRenderMode, PdfPoints,
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let pdfium = ctx.pdfium().await.unwrap();
    let grey = fixture_page(&ctx, "scan.pdf").await;
    let scan = grey.clone();
    let words = tokio::task::spawn_blocking(move || {
        let (w, h) = scan.dimensions();
        lectern_document::engines::tesseract::recognize("eng", scan.as_raw(), w, h, 300).unwrap().words
    })
    .await
    .unwrap();
    // Each letter moved on by one: words that look like words to a text-layer check.
    let garble = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_ascii_lowercase() { (b'a' + (c as u8 - b'a' + 1) % 26) as char } else { c })
            .collect()
    };
    let file = dir.path().join("invisible.pdf");
    let out = file.clone();
    pdfium
        .run(move |pdfium| {
            let mut document = pdfium.create_new_pdf().unwrap();
            let font = document.fonts_mut().helvetica();
            let scale = 72.0 / 300.0;
            for garbled in [false, true] {
                let size = PdfPagePaperSize::from_points(
                    PdfPoints::new(grey.width() as f32 * scale),
                    PdfPoints::new(grey.height() as f32 * scale),
                );
                let mut page = document.pages_mut().create_page_at_end(size).unwrap();
                page.set_content_regeneration_strategy(PdfPageContentRegenerationStrategy::Manual);
                let (width, height) = (page.width(), page.height());
                let image = PdfPageImageObject::new_with_size(
                    &document,
                    &image::DynamicImage::ImageLuma8(grey.clone()),
                    width,
                    height,
                )
                .unwrap();
                page.objects_mut().add_image_object(image).unwrap();
                for word in &words {
                    let text = if garbled { garble(&word.text) } else { word.text.clone() };
                    let [x0, _, _, y1] = word.bbox.map(|v| v * scale);
                    let font_size = PdfPoints::new(((word.bbox[3] - word.bbox[1]) * scale).max(4.0));
                    let mut object = PdfPageTextObject::new(&document, text, font, font_size).unwrap();
                    object.set_render_mode(PdfPageTextRenderMode::Invisible).unwrap();
                    object.translate(PdfPoints::new(x0), PdfPoints::new(height.value - y1)).unwrap();
                    page.objects_mut().add_text_object(object).unwrap();
                }
                page.regenerate_content().unwrap();
            }
            document.save_to_file(&out).unwrap();
            Ok(())
        })
        .await
        .unwrap();
    let id = through_chunking(&ctx, file.to_str().unwrap()).await;
    let pages = ctx.workdir(&id).load_pages().unwrap();
    let (kept, replaced) = (&pages[0], &pages[1]);
    assert!(kept.invisible_text && replaced.invisible_text);
    assert_eq!(kept.source, TextSource::TextLayer);
    assert!(kept.layer_agreement.unwrap() > 0.8, "tesseract's layer agrees: {:?}", kept.layer_agreement);
    assert_eq!(replaced.source, TextSource::Ocr);
    assert!(replaced.layer_agreement.unwrap() < 0.2, "a garbled layer: {:?}", replaced.layer_agreement);
    for page in [kept, replaced] {
        assert!(page.text().contains("Emanuel Goldberg developed a machine"), "page {}: {}", page.number, page.text());
    }
}

/// A photo of a page (fixtures/tilted.jpg): stored on its side with an EXIF orientation,
/// and its lines tilted 4° clockwise (read as it is, tesseract loses whole lines). It is
/// turned upright, deskewed and read line by line; its word boxes stay on the page as it
/// is, and the tilt is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tilted_photo_on_its_side_is_turned_upright_and_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = through_chunking(&ctx, "tilted.jpg").await;
    let page = ctx.workdir(&id).load_pages().unwrap().remove(0);
    assert!(page.width > page.height, "EXIF orientation applied: {}×{}", page.width, page.height);
    let skew = page.skew.expect("the tilt is recorded");
    assert!((skew - 4.0).abs() < 0.3, "tilt found {skew}°, made 4°");
    let blocks = lectern_document::text::blocks::page_blocks(&page);
    let text: Vec<String> = blocks.iter().map(|b| lectern_document::text::blocks::running_text(&b.words)).collect();
    let text = text.join(" ");
    for phrase in [
        "is the mechanical or electronic conversion of images of typed",
        "Early versions needed to be trained with images of each character",
        "Advanced systems capable of producing a high degree of recognition accuracy",
    ] {
        assert!(text.contains(phrase), "{phrase:?} in {text}");
    }
    // The title's words descend to the right on the page as it is.
    let word = |t: &str| page.words.iter().find(|w| w.text == t).unwrap_or_else(|| panic!("{t} in {text}"));
    let (first, last) = (word("Optical").bbox, word("recognition").bbox);
    let centre = |b: [f32; 4]| ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let ((x0, y0), (x1, y1)) = (centre(first), centre(last));
    let slope = ((y1 - y0) / (x1 - x0)).atan().to_degrees();
    assert!((slope - 4.0).abs() < 1.0, "title slope on the page {slope}°");
}

/// A photo of a page under a shadow, its paper grey and its ink faded: the scan's page with
/// its contrast halved and a shadow darkening it towards the lower right to a fifth of its
/// light. Tesseract thresholds the whole page at one level and loses words under the
/// shadow; with the paper evened out first it reads nearly all of the clean page's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadowed_photo_reads_once_its_paper_is_evened_out() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let clean = fixture_page(&ctx, "scan.pdf").await;
    let (w, h) = clean.dimensions();
    let shadowed = image::GrayImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let light = 1.0 - 0.8 * fx * (0.4 + 0.6 * fy);
        image::Luma([((f32::from(clean.get_pixel(x, y)[0]) * 0.5 + 60.0) * light) as u8])
    });
    let mut evened = shadowed.clone();
    lectern_document::formats::raster::even_background(&mut evened);
    let read = |image: image::GrayImage| {
        tokio::task::spawn_blocking(move || {
            let page = lectern_document::engines::tesseract::recognize("eng", image.as_raw(), w, h, 300).unwrap();
            page.words.into_iter().map(|w| w.text).collect::<Vec<_>>()
        })
    };
    let truth = read(clean).await.unwrap();
    let found = |words: Vec<String>| {
        let set: std::collections::HashSet<String> = words.into_iter().collect();
        truth.iter().filter(|w| set.contains(*w)).count() as f32 / truth.len() as f32
    };
    let (before, after) = (found(read(shadowed).await.unwrap()), found(read(evened).await.unwrap()));
    assert!(after > 0.95 && after > before + 0.05, "clean page's words read: {before:.2} shadowed, {after:.2} evened");
}
