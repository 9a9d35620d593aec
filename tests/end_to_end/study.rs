//! Study material of a real document, read back: the cheat sheet's page setup, columns,
//! fonts, heading styles and picture width from its XML ([`generate::check::cheatsheet`]), and its page count through
//! LibreOffice against the budget; quiz and flashcards against their committed JSON
//! schemas and the checks of `lectern eval study`; the quiz PDF's text including the key.

use crate::common;

use lectern_document::config::GenerateConfig;
use lectern_document::config::Stage;
use lectern_document::generate::{self, cheatsheet, quiz::Kind};
use lectern_document::pipeline::run_stage;
use lectern_document::stages::{Payload, ingest};

fn validate(schema: &str, path: &std::path::Path) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("jobs").join(schema)).unwrap()).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{} against {schema}: {errors:?}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn study_material_reads_back_and_passes_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = ingest::submit_file(&ctx, &common::fixture("paper.pdf")).await.unwrap().0;
    for stage in Stage::ALL {
        run_stage(&ctx, stage, &Payload::document(&id)).await.unwrap();
    }
    let out = ctx.workdir(&id).artifacts_dir();

    // Quiz and flashcards: schemas, then the same checks as `lectern eval study`.
    validate("quiz.schema.json", &out.join("quiz.json"));
    validate("flashcards.schema.json", &out.join("flashcards.json"));
    let quiz: generate::quiz::Quiz = lectern_document::model::workdir::read_json(&out.join("quiz.json")).unwrap();
    let deck: generate::flashcards::Deck =
        lectern_document::model::workdir::read_json(&out.join("flashcards.json")).unwrap();
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert_eq!(generate::check::check(&quiz, &deck, &pages), Vec::<String>::new());
    assert_eq!(quiz.questions.len(), 10, "{quiz:#?}");
    for kind in [Kind::MultipleChoice, Kind::Cloze, Kind::TrueFalse] {
        assert!(quiz.questions.iter().any(|q| q.kind == kind), "no {kind:?} in {quiz:#?}");
    }
    for q in quiz.questions.iter().filter(|q| q.kind == Kind::MultipleChoice) {
        let lower: Vec<String> = q.choices.iter().map(|c| c.to_lowercase()).collect();
        assert!(lower.iter().filter(|c| **c == q.answer.to_lowercase()).count() == 1, "{q:?}");
    }
    assert!(deck.cards.len() >= 10, "{deck:#?}");

    // The PDF says every question and, on its last page, every answer.
    let pdfium = ctx.pdfium().await.unwrap();
    let quiz_pdf = out.join("quiz.pdf");
    let texts: Vec<String> = pdfium
        .run(move |p| {
            let doc = p.load_pdf_from_file(&quiz_pdf, None).unwrap();
            Ok(doc.pages().iter().map(|pg| pg.text().unwrap().all()).collect())
        })
        .await
        .unwrap();
    let key = texts.last().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(key.starts_with("Answer key"), "{key}");
    for q in &quiz.questions {
        let answer = q.answer.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(key.contains(&answer) && key.contains(&format!("page {}", q.page)), "{answer} not in {key}");
    }

    // Cheat sheet read back from its XML: A4, 0.5" margins, two columns, Arial 9 pt,
    // headings 11 pt bold in the built-in heading styles, pictures 3.2" wide.
    let docx = out.join("cheatsheet.docx");
    let facts = generate::check::cheatsheet(&docx, &GenerateConfig::default()).unwrap();
    assert!(facts.problems.is_empty(), "{facts:?}");
    assert!(facts.headings >= 2 && facts.bullets >= 10, "{facts:?}");
    let figures = ctx.store.figures(&id).await.unwrap();
    assert!(!figures.is_empty() && facts.pictures >= 1, "the paper's figures reach the sheet: {facts:?}");

    // Page count through LibreOffice: within the budget.
    let budget = GenerateConfig::default().pages;
    let pdf = generate::check::docx_to_pdf(&docx, dir.path()).expect("soffice (scripts/setup.sh installs it)");
    let rendered = pdfium
        .run(move |p| {
            lectern_document::engines::pdfium::page_count(&lectern_document::engines::pdfium::open_pdf(p, &pdf)?)
        })
        .await
        .unwrap();
    assert!(rendered >= 1 && rendered <= budget, "cheat sheet has {rendered} pages for a budget of {budget}");

    // US Letter on request; the read-back check notices a wrong paper size.
    let letter = GenerateConfig { paper: "letter".into(), ..GenerateConfig::default() };
    let bytes = cheatsheet::build(&[cheatsheet::Block::Heading { level: 1, text: "x".into() }], &letter).unwrap();
    let path = dir.path().join("letter.docx");
    std::fs::write(&path, bytes).unwrap();
    assert!(generate::check::cheatsheet(&path, &letter).unwrap().problems.is_empty());
    let as_a4 = generate::check::cheatsheet(&path, &GenerateConfig::default()).unwrap();
    assert_eq!(as_a4.problems.len(), 2, "{as_a4:?}");
}

/// The optional LLM path, wire format only: a local stub stands in for an
/// OpenAI-compatible endpoint and checks what Lectern sends.
#[tokio::test]
async fn llm_summary_speaks_the_openai_chat_format() {
    use axum::{Json, Router, http::HeaderMap, http::StatusCode, routing::post};
    use generate::llm::{LlmError, summary};
    use lectern_document::config::LlmConfig;
    use std::sync::{Arc, Mutex};

    type Requests = Vec<(Option<String>, serde_json::Value)>;
    let seen: Arc<Mutex<Requests>> = Arc::default();
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap, Json(body): Json<serde_json::Value>| async move {
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                record.lock().unwrap().push((auth, body));
                Json(serde_json::json!({
                    "id": "x", "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": " Spatial data is\n shared. "}}]
                }))
            }),
        )
        .route("/broken/chat/completions", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "model not loaded") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // HOME is always set: its value stands in for an API key without touching the environment.
    let config = LlmConfig {
        url: format!("http://{addr}/v1/"),
        model: "tiny".into(),
        api_key_env: Some("HOME".into()),
        timeout_secs: 5,
    };
    let text = summary(&config, "paper.pdf", &["Sentence one.", "Sentence two."]).await.unwrap();
    assert_eq!(text, "Spatial data is shared.");
    let (auth, body) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(auth, Some(format!("Bearer {}", std::env::var("HOME").unwrap())));
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("paper.pdf") && prompt.contains("- Sentence one.\n- Sentence two."), "{prompt}");

    let broken = LlmConfig { url: format!("http://{addr}/broken"), api_key_env: None, ..config };
    match summary(&broken, "t", &["s."]).await {
        Err(LlmError::Status { status: 500, body }) => assert_eq!(body, "model not loaded"),
        other => panic!("{other:?}"),
    }

    // The summary opens the sheet, after the title.
    let blocks =
        cheatsheet::plan("t", &Default::default(), &[], Some("Spatial data is shared."), &GenerateConfig::default());
    assert_eq!(
        blocks[1],
        cheatsheet::Block::Labelled { label: "Summary".into(), text: "Spatial data is shared.".into() }
    );
}
