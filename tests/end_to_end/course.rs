//! Study material over a collection (a course): three documents (a born-digital report, a
//! two-column page and a scanned article) processed by the workers,
//! then study sets over all of them, made by the study job on the generate queue. The
//! cheat sheet has a part per document, repeats no sentence and fits its page budget in
//! LibreOffice; the quiz spreads over the documents and passes the per-document checks;
//! the deck's .apkg is read back by an independent reader (Python's sqlite3 on the
//! unzipped collection); Moodle XML and GIFT hold every question.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common;
use crate::study::validate;

use lectern::study::{self, StudyStatus};
use lectern_document::config::GenerateConfig;
use lectern_document::context::Context;
use lectern_document::generate::{self, flashcards::Deck, quiz::Quiz};
use lectern_document::model::workdir::{Page, read_json};
use lectern_document::stages::ingest;
use lectern_document::stages::study::{Kind, Request};
use lectern_queue::storage::{DocumentStatus, JobState};

async fn study_until_done(ctx: &Context, request: &Request) -> StudyStatus {
    let (id, _) = study::request(ctx, "default", request).await.unwrap();
    let start = Instant::now();
    loop {
        let status = study::status(ctx, &id).await.unwrap();
        if !matches!(status.state, Some(JobState::Available | JobState::Running)) {
            assert_eq!(status.state, Some(JobState::Done), "{status:?}");
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "study set not made in 5 min: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The artifact's file on this host (artifacts are recorded by their blob-store key).
fn file(ctx: &Context, status: &StudyStatus, name: &str) -> PathBuf {
    ctx.blobs.path(&status.artifacts.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no {name}")).path)
}

/// The paragraphs of a .docx, in order.
fn paragraphs(docx: &std::path::Path) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(docx).unwrap()).unwrap();
    let mut xml = String::new();
    zip.by_name("word/document.xml").unwrap().read_to_string(&mut xml).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "p")
        .map(|p| p.descendants().filter(|n| n.tag_name().name() == "t").filter_map(|t| t.text()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_study_set_spans_its_documents_and_exports_for_anki_and_moodle() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let names = ["paper.pdf", "columns.pdf", "scan.pdf"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(ingest::submit_file(&ctx, &common::fixture(name)).await.unwrap().0);
    }
    let (_stop, _workers) = common::start_workers(&ctx);
    let docs = common::wait_finished(&ctx, &ids, Duration::from_secs(600)).await;
    assert!(docs.iter().all(|d| d.status == DocumentStatus::Done), "{docs:#?}");
    let pages: HashMap<String, Vec<Page>> =
        docs.iter().map(|d| (d.id.clone(), ctx.workdir(&d.id).load_pages().unwrap())).collect();
    let id_of_name: HashMap<String, String> = docs.iter().map(|d| (d.filename.clone(), d.id.clone())).collect();

    let every = Request {
        kinds: vec![Kind::Cheatsheet, Kind::Quiz, Kind::Flashcards],
        documents: None,
        pages: Some(2),
        questions: Some(12),
        cards: Some(30),
        seed: 7,
        topics: None,
    };
    let status = study_until_done(&ctx, &every).await;
    assert_eq!((status.set.steps_done, status.set.steps_total), (4, 4), "three documents read, then written");
    let mut produced: Vec<&str> = status.artifacts.iter().map(|a| a.name.as_str()).collect();
    produced.sort_unstable();
    assert_eq!(
        produced,
        [
            "cheatsheet.docx",
            "flashcards.apkg",
            "flashcards.csv",
            "flashcards.json",
            "quiz.gift.txt",
            "quiz.json",
            "quiz.moodle.xml",
            "quiz.pdf"
        ]
    );

    // Quiz and deck: schemas, then every item checked against its own document's pages.
    validate("quiz.schema.json", &file(&ctx, &status, "quiz.json"));
    validate("flashcards.schema.json", &file(&ctx, &status, "flashcards.json"));
    let quiz: Quiz = read_json(&file(&ctx, &status, "quiz.json")).unwrap();
    let deck: Deck = read_json(&file(&ctx, &status, "flashcards.json")).unwrap();
    let problems = generate::check::check_with(
        &quiz,
        &deck,
        |q| pages.get(q.document_id.as_deref()?).map(Vec::as_slice),
        |c| pages.get(id_of_name.get(c.document.as_deref()?)?).map(Vec::as_slice),
    );
    assert_eq!(problems, Vec::<String>::new());
    assert!(quiz.questions.len() >= 9, "{quiz:#?}");
    let cited: HashSet<&str> = quiz.questions.iter().filter_map(|q| q.document_id.as_deref()).collect();
    assert_eq!(cited.len(), 3, "every document has questions: {quiz:#?}");
    let difficulties: HashSet<&str> = quiz.questions.iter().filter_map(|q| q.difficulty.as_deref()).collect();
    assert!(difficulties.len() >= 2, "a mix of difficulties: {difficulties:?}");
    let numbers: Vec<usize> = quiz.questions.iter().map(|q| q.number).collect();
    assert_eq!(numbers, (1..=quiz.questions.len()).collect::<Vec<_>>());
    let decks_documents: HashSet<&str> = deck.cards.iter().filter_map(|c| c.document.as_deref()).collect();
    assert_eq!(decks_documents.len(), 3, "every document has cards");
    let figure_cards: Vec<_> = deck.cards.iter().filter(|c| c.kind == "figure").collect();
    assert!(!figure_cards.is_empty(), "the paper's captioned figures become cards: {deck:#?}");

    // Cheat sheet: its checks, a part per document, no sentence twice, within 2 pages.
    let docx = file(&ctx, &status, "cheatsheet.docx");
    let facts = generate::check::cheatsheet(&docx, &GenerateConfig::default()).unwrap();
    assert!(facts.problems.is_empty(), "{facts:?}");
    let sheet_text = paragraphs(&docx);
    for name in names {
        let at = sheet_text.iter().position(|p| p == name).unwrap_or_else(|| panic!("no part for {name}"));
        assert!(sheet_text[at + 1..].iter().take(8).any(|p| p.starts_with("• ")), "{name} has sentences");
    }
    let bullets: Vec<&String> = sheet_text.iter().filter(|p| p.starts_with("• ")).collect();
    let distinct: HashSet<&&String> = bullets.iter().collect();
    assert!(bullets.len() >= 12 && distinct.len() == bullets.len(), "{bullets:#?}");
    let pdf = generate::check::docx_to_pdf(&docx, dir.path()).expect("soffice (scripts/setup.sh installs it)");
    let rendered = ctx
        .pdfium()
        .await
        .unwrap()
        .run(move |p| {
            lectern_document::engines::pdfium::page_count(&lectern_document::engines::pdfium::open_pdf(p, &pdf)?)
        })
        .await
        .unwrap();
    assert!((1..=2).contains(&rendered), "course cheat sheet has {rendered} pages for a budget of 2");

    // The .apkg, read by Python's sqlite3: one note and one new card per flashcard, in the
    // deck named after the collection, fields Front/Back/Source, figure images as media.
    // (`make bench-course` also imports one with Anki's own importer.)
    let out = std::process::Command::new("python3")
        .arg(common::root().join("tests/end_to_end/read_apkg.py"))
        .arg(file(&ctx, &status, "flashcards.apkg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let anki: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(anki["version"], 11);
    assert_eq!(anki["notes"].as_array().unwrap().len(), deck.cards.len());
    assert_eq!(anki["cards"].as_array().unwrap().len(), deck.cards.len());
    let deck_ids: Vec<&String> =
        anki["decks"].as_object().unwrap().iter().filter(|(_, v)| *v == "default (Lectern)").map(|(k, _)| k).collect();
    assert_eq!(deck_ids.len(), 1, "{}", anki["decks"]);
    assert!(
        anki["cards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["did"].as_i64().map(|d| d.to_string()).as_ref() == Some(deck_ids[0]) && c["type"] == 0)
    );
    let model = anki["models"].as_object().unwrap().values().next().unwrap();
    assert_eq!(model["fields"], serde_json::json!(["Front", "Back", "Source"]));
    let sort_fields: HashSet<&str> =
        anki["notes"].as_array().unwrap().iter().map(|n| n["sfld"].as_str().unwrap()).collect();
    // Anki's sort field: the front as text, a picture's file name kept.
    let sort_field = |c: &generate::flashcards::Card| match &c.image {
        Some(image) => format!("{image} {}", c.front),
        None => c.front.clone(),
    };
    assert!(deck.cards.iter().all(|c| sort_fields.contains(sort_field(c).as_str())), "each card is a note");
    let media: HashSet<&str> = anki["media"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
    for card in &figure_cards {
        let image = card.image.as_deref().unwrap();
        assert!(media.contains(image), "{image} missing from {media:?}");
        let note = anki["notes"].as_array().unwrap().iter().find(|n| n["sfld"] == sort_field(card).as_str()).unwrap();
        assert!(note["fields"][0].as_str().unwrap().contains(&format!("<img src=\"{image}\">")), "{note}");
    }
    assert_eq!(anki["png_files"].as_u64().unwrap() as usize, media.len(), "every media file is a PNG");

    // Moodle XML: a category, then one question per quiz question, each of its type's shape.
    let xml = std::fs::read_to_string(file(&ctx, &status, "quiz.moodle.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "quiz");
    let questions: Vec<_> = doc.root_element().children().filter(|n| n.has_tag_name("question")).collect();
    assert_eq!(questions[0].attribute("type"), Some("category"));
    assert_eq!(questions.len(), quiz.questions.len() + 1);
    for (q, node) in quiz.questions.iter().zip(&questions[1..]) {
        let child_text = |name: &str| {
            node.children().find(|n| n.has_tag_name(name)).and_then(|n| n.children().find(|t| t.has_tag_name("text")))
        };
        assert!(child_text("name").and_then(|t| t.text()).is_some_and(|t| !t.is_empty()));
        assert!(child_text("questiontext").and_then(|t| t.text()).is_some_and(|t| t.len() > 10));
        let answers: Vec<&str> =
            node.children().filter(|n| n.has_tag_name("answer")).filter_map(|a| a.attribute("fraction")).collect();
        let expected = match node.attribute("type") {
            Some("multichoice") => q.choices.len(),
            Some("truefalse") => 2,
            Some("shortanswer") => 1,
            other => panic!("unexpected question type {other:?}"),
        };
        assert_eq!(answers.len(), expected, "{q:?}");
        assert_eq!(answers.iter().filter(|f| **f == "100").count(), 1, "one right answer: {q:?}");
    }
    let gift = std::fs::read_to_string(file(&ctx, &status, "quiz.gift.txt")).unwrap();
    assert_eq!(gift.matches("\n::Q").count(), quiz.questions.len(), "{gift}");
    let csv = std::fs::read_to_string(file(&ctx, &status, "flashcards.csv")).unwrap();
    assert!(csv.starts_with("front,back,document,page,kind\r\n"));

    // The same documents and seed give the same quiz; another seed another order.
    let quiz_only = Request { kinds: vec![Kind::Quiz], ..every.clone() };
    let again: Quiz = read_json(&file(&ctx, &study_until_done(&ctx, &quiz_only).await, "quiz.json")).unwrap();
    assert_eq!(again, quiz);
    let reseeded = Request { seed: 8, ..quiz_only };
    let other: Quiz = read_json(&file(&ctx, &study_until_done(&ctx, &reseeded).await, "quiz.json")).unwrap();
    let sources = |q: &Quiz| q.questions.iter().map(|q| q.source.clone()).collect::<Vec<_>>();
    assert_ne!(sources(&other), sources(&quiz), "seed 8 deals the questions differently");
    let (mut a, mut b) = (sources(&other), sources(&quiz));
    a.sort();
    b.sort();
    assert_eq!(a, b, "but they are the same questions");

    // Topics instead of documents: a part per topic, its sections from the documents that
    // speak of it ("<document> · <section>").
    let topics = vec![
        "optical character recognition of scanned text".to_string(),
        "hydrographic network data model".to_string(),
    ];
    let topical = Request { kinds: vec![Kind::Cheatsheet], topics: Some(topics.clone()), ..every.clone() };
    let sheet = paragraphs(&file(&ctx, &study_until_done(&ctx, &topical).await, "cheatsheet.docx"));
    let at: Vec<usize> = topics
        .iter()
        .map(|t| sheet.iter().position(|p| p == t).unwrap_or_else(|| panic!("no part for {t}: {sheet:#?}")))
        .collect();
    let ocr_part = &sheet[at[0] + 1..at[1]];
    assert!(ocr_part.iter().any(|p| p.starts_with("scan.pdf · ")), "{ocr_part:#?}");
    assert!(ocr_part.iter().any(|p| p.starts_with("• ")) && sheet[at[1]..].iter().any(|p| p.starts_with("• ")));

    // A bad request is refused before any job; a study set of no document fails with why.
    let none = Request { kinds: Vec::new(), ..every.clone() };
    assert!(matches!(study::request(&ctx, "default", &none).await, Err(study::StudyError::Invalid(_))));
    let (empty, _) = study::request(&ctx, "empty", &every).await.unwrap();
    let start = Instant::now();
    let failed = loop {
        let s = study::status(&ctx, &empty).await.unwrap();
        if s.state == Some(JobState::Failed) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failed.error.unwrap().contains("has no processed documents"));

    // Deleting the set removes its files.
    let dir_of = ctx.settings.study_dir(&status.set.id);
    assert!(dir_of.exists());
    assert!(study::delete(&ctx, &status.set.id).await.unwrap());
    assert!(!dir_of.exists() && study::status(&ctx, &status.set.id).await.is_err());
}
