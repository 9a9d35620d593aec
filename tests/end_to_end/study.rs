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

pub(crate) fn validate(schema: &str, path: &std::path::Path) {
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
    // Blanks are key terms, never one of the 5,000 most common English words.
    let freq = ctx.word_frequencies().await.unwrap();
    for q in quiz.questions.iter().filter(|q| q.kind != Kind::TrueFalse) {
        let ws: Vec<String> = q.answer.split_whitespace().map(str::to_lowercase).collect();
        assert!(ws.len() > 1 || !freq.is_top(&ws[0], 5000), "{q:?}");
    }
    // A five-page paper has fewer sentences with a key term the sentence does not give away
    // than the 10 asked for; every question must still be on one.
    assert!(quiz.questions.len() >= 6, "{quiz:#?}");
    for kind in [Kind::MultipleChoice, Kind::Cloze, Kind::TrueFalse] {
        assert!(quiz.questions.iter().any(|q| q.kind == kind), "no {kind:?} in {quiz:#?}");
    }
    for q in quiz.questions.iter().filter(|q| q.kind == Kind::MultipleChoice) {
        let lower: Vec<String> = q.choices.iter().map(|c| c.to_lowercase()).collect();
        assert!(lower.iter().filter(|c| **c == q.answer.to_lowercase()).count() == 1, "{q:?}");
    }
    assert!(deck.cards.len() >= 8, "{deck:#?}");

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

/// LLM drafts, through the wire format, replace extractive items only where they pass the
/// same checks: the one good question and the one good card are used; a question whose
/// answer the cited passage does not contain, one with a repeated choice, one citing a
/// passage it was not given and a card the passage does not support are refused.
#[tokio::test]
async fn llm_drafts_are_used_only_when_they_pass_the_checks() {
    use axum::{Json, Router, routing::post};
    use generate::draft;
    use generate::text::{Material, Section, Sentence, Term};
    use lectern_document::config::LlmConfig;

    let reply = serde_json::json!({
        "questions": [
            {"kind": "cloze", "prompt": "A _____ renews the lease of a running job.", "answer": "heartbeat", "passage": 1},
            {"kind": "multiple_choice", "prompt": "_____ spreads retries of failed jobs over time.",
             "choices": ["exponential backoff", "linear probing", "round robin", "exponential backoff"],
             "answer": "exponential backoff", "passage": 2},
            {"kind": "cloze", "prompt": "The scheduler is written in _____.", "answer": "Rust code", "passage": 1},
            {"kind": "cloze", "prompt": "A _____ renews the lease.", "answer": "heartbeat", "passage": 9}
        ],
        "cards": [
            {"front": "What renews a lease?", "back": "A heartbeat renews the lease of a running job.", "passage": 1},
            {"front": "What is the moon made of?", "back": "Cheese, as everyone knows.", "passage": 1}
        ]
    });
    let content = format!("Here you are:\n```json\n{reply}\n```");
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<serde_json::Value>| async move {
            assert_eq!(body["response_format"]["type"], "json_object");
            let prompt = body["messages"][1]["content"].as_str().unwrap().to_string();
            assert!(prompt.contains("[1] (page 3) A heartbeat renews"), "{prompt}");
            Json(serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config =
        LlmConfig { url: format!("http://{addr}/v1"), model: "tiny".into(), api_key_env: None, timeout_secs: 5 };

    let sentence = |text: &str, page| Sentence { text: text.into(), page, section: 0, score: 0.5, within_page: true };
    let term = |text: &str, weight| Term {
        text: text.into(),
        words: text.split(' ').map(str::to_lowercase).collect(),
        weight,
        count: 2,
    };
    let material = Material {
        sentences: vec![
            sentence("A heartbeat renews the lease of a running job.", 3),
            sentence("Exponential backoff spreads retries of failed jobs over time.", 4),
        ],
        sections: vec![Section { path: vec!["Leases".into()], page: 3, sentences: vec![0, 1] }],
        terms: vec![term("heartbeat", 2.0), term("exponential backoff", 1.5)],
        ..Default::default()
    };
    let passages = draft::passages(&material, 12);
    assert_eq!(passages.len(), 2, "{passages:?}");
    let drafts = generate::llm::draft(&config, "leases.pdf", &passages, 3, 2).await.unwrap();
    assert_eq!((drafts.questions.len(), drafts.cards.len()), (4, 2));

    let extractive = generate::quiz::questions("leases.pdf", &material, 3);
    assert_eq!(extractive.questions.len(), 2, "{extractive:#?}");
    let (quiz, used, refused) = draft::merge_questions(extractive, &drafts, &passages, &material, 3);
    assert_eq!(used, 1, "{refused:?}");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].contains("choices") && refused[1].contains("does not say") && refused[2].contains("no passage"));
    // The drafted question comes first; the extractive one on the same sentence is dropped.
    assert_eq!(quiz.questions.len(), 2, "{quiz:#?}");
    assert_eq!((quiz.questions[0].number, quiz.questions[0].page), (1, 3));
    assert_eq!(quiz.questions[0].prompt, "A _____ renews the lease of a running job.");
    assert_eq!(quiz.questions[1].term, "Exponential backoff");

    let now = chrono::Utc::now();
    let cards = generate::flashcards::cards("d", &material, 5, now);
    let (deck, used, refused) = draft::merge_cards(cards, &drafts, &passages, "d", 5, now);
    assert_eq!((used, refused.len()), (1, 1), "{refused:?}");
    assert_eq!((deck[0].id.as_str(), deck[0].front.as_str(), deck[0].page), ("d-c001", "What renews a lease?", 3));
    assert!(deck.iter().all(|c| !c.front.contains("moon")));
}
