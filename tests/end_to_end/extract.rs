//! The extract stage on real PDFs through the pipeline: an invoice's fields and line items
//! found, typed and checked, served by the API and valid against `jobs/fields.schema.json`;
//! copies with one injected error each come out flagged for review with the value kept; a
//! value in a filled form field (no page text) is found in the field's box.

use std::time::Duration;

use serde_json::{Value, json};

use lectern_document::stages::ingest;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_fields_are_found_typed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let (trigger, workers) = common::start_workers(&ctx);
    let names = ["invoice", "invoice-cent", "invoice-iban", "invoice-dates", "invoice-form"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(ingest::submit_file(&ctx, &common::fixture(&format!("invoices/{name}.pdf"))).await.unwrap().0);
    }
    let docs = common::wait_finished(&ctx, &ids, Duration::from_secs(600)).await;
    trigger.trigger();
    workers.await.unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("jobs/fields.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut found = Vec::new();
    for (doc, id) in docs.iter().zip(&ids) {
        assert_eq!(doc.status.as_str(), "done", "{doc:?}");
        assert_eq!(doc.doc_type.as_deref(), Some("invoice"), "{doc:?}");
        let status = lectern::status::document_status(&ctx, id).await.unwrap().unwrap();
        let fields = status.fields.expect("an invoice has fields");
        let json = serde_json::to_value(&fields).unwrap();
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "fields.json against its schema: {errors:?}");
        found.push(fields);
    }

    let clean = &found[0];
    let value = |name: &str| clean.fields.get(name).map(|f| f.value.clone()).unwrap_or(Value::Null);
    assert_eq!(value("number"), json!("INV-2024-017"));
    assert_eq!(value("issue_date"), json!("2024-02-03"));
    assert_eq!(value("due_date"), json!("2024-02-17"));
    assert_eq!(value("subtotal"), json!({"amount": 240.0, "currency": "EUR"}));
    assert_eq!(value("tax"), json!({"amount": 45.6, "currency": "EUR"}));
    assert_eq!(value("total"), json!({"amount": 285.6, "currency": "EUR"}));
    assert_eq!(value("currency"), json!("EUR"));
    assert_eq!(value("vat_id"), json!("DE136695976"));
    assert_eq!(value("iban"), json!("DE89370400440532013000"));
    assert_eq!(value("order_id"), json!("PO-88412"));
    assert_eq!(value("customer_id"), json!("C-20931"));
    assert_eq!(value("email"), json!("accounts@lectern-supplies.example"));
    let items: Vec<_> =
        clean.items.iter().map(|i| (i.description.as_str(), i.quantity, i.unit_price, i.amount)).collect();
    assert_eq!(
        items,
        [
            ("Lab notebooks, A4, pack of 10", Some(2.0), Some(45.0), Some(90.0)),
            ("Whiteboard markers, box of 12", Some(3.0), Some(20.0), Some(60.0)),
            ("Printed course readers", Some(6.0), Some(15.0), Some(90.0)),
        ]
    );
    assert!(clean.rules.iter().any(|r| r.rule == "items = subtotal"), "{:#?}", clean.rules);
    assert!(clean.rules.iter().all(|r| r.ok == Some(true)), "{:#?}", clean.rules);
    assert!(!clean.review_needed, "{:?}", clean.review);
    let total = &clean.fields["total"];
    assert_eq!((total.page, total.source), (1, lectern_document::model::workdir::TextSource::TextLayer));
    assert!(total.bbox[0] > 300.0 && total.bbox[1] > 300.0, "the total's box is where it is printed: {total:?}");

    // Each injected error is flagged on the field it concerns, its value kept.
    let flagged = |x: &lectern_document::extract::Extraction, field: &str, says: &str| {
        assert!(x.review_needed, "{field}: {:?}", x.review);
        let f = &x.fields[field];
        assert!(f.problems.iter().any(|p| p.contains(says)), "{field}: {f:?}");
    };
    flagged(&found[1], "total", "subtotal + tax = total");
    assert_eq!(found[1].fields["total"].value["amount"], json!(285.61));
    flagged(&found[2], "iban", "check digits");
    assert_eq!(found[2].fields["iban"].value, json!("DE88370400440532013000"));
    flagged(&found[3], "due_date", "not before issue_date");

    // The order number of the last is a form field's value; the page's text draws a stale
    // one under the field, which the value replaces.
    let order = &found[4].fields["order_id"];
    assert_eq!(order.value, json!("PO-88412"), "{order:?}");
    assert!(order.bbox[0] >= 450.0 && order.bbox[1] > 160.0 && order.bbox[3] < 200.0, "in the field's box: {order:?}");

    // The API serves them, on the document and on a route of their own.
    let (base, client) = crate::http::serve(&ctx, &[]).await;
    let doc: Value = client.get(format!("{base}/v1/documents/{}", ids[0])).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["fields"]["fields"]["number"]["value"], "INV-2024-017", "{doc}");
    let response = client.get(format!("{base}/v1/documents/{}/fields", ids[1])).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cent: Value = response.json().await.unwrap();
    assert_eq!(cent["review_needed"], true, "{cent}");
}

/// The optional LLM pass, wire format only: a local stub stands in for an OpenAI-compatible
/// endpoint. Only the fields geometry left empty or invalid are asked for; an answer counts
/// only where its words stand on the page it names and parse as the field's type, and the
/// rules then check it like any other field.
#[tokio::test]
async fn llm_reads_only_missing_or_invalid_fields_and_only_what_the_page_says() {
    use axum::{Json, Router, routing::post};
    use lectern_document::config::LlmConfig;
    use lectern_document::extract::{self, FoundBy, Schemas};
    use lectern_document::model::workdir::Page;
    use std::sync::{Arc, Mutex};

    let at = |text: &str, x: f32, y: f32| json!({"text": text, "bbox": [x, y, x + 6.0 * text.len() as f32, y + 10.0]});
    let words = vec![
        at("Invoice", 50.0, 50.0),
        at("No:", 98.0, 50.0),
        at("INV-2024-17", 200.0, 50.0),
        at("Invoice", 50.0, 70.0),
        at("date:", 98.0, 70.0),
        at("03.02.2024", 200.0, 70.0),
        at("Please", 50.0, 90.0),
        at("pay", 92.0, 90.0),
        at("by", 116.0, 90.0),
        at("17.02.2024", 134.0, 90.0),
        at("Subtotal", 300.0, 300.0),
        at("100.00", 450.0, 300.0),
        at("VAT", 300.0, 320.0),
        at("19.00", 450.0, 320.0),
        at("Total", 300.0, 340.0),
        at("119.00", 450.0, 340.0),
        at("EUR", 490.0, 340.0),
        at("IBAN", 50.0, 500.0),
        at("DE31507500940000048567", 100.0, 500.0),
    ];
    let page: Page = serde_json::from_value(
        json!({"number": 1, "width": 600.0, "height": 800.0, "source": "text_layer", "words": words}),
    )
    .unwrap();
    let pages = Arc::new(vec![page]);
    let schemas = Schemas::builtin().unwrap();
    let schema = schemas.by_name("invoice").unwrap();
    let first = extract::extract_best(&[schema], &pages).unwrap();
    assert!(first.missing.contains(&"due_date".to_string()), "{:?}", first.missing);
    assert_eq!(first.fields["iban"].problems, ["IBAN check digits do not match"]);

    let reply = json!({"fields": [
        {"name": "due_date", "value": "17.02.2024", "page": 1},
        {"name": "iban", "value": "DE31507500940000048567", "page": 1},
        {"name": "order_id", "value": "PO-555", "page": 1},
        {"name": "customer_id", "value": "INV-2024-17", "page": 2},
        {"name": "email", "value": "Subtotal", "page": 1},
        {"name": "number", "value": "INV-9", "page": 1}
    ]});
    let prompts: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = prompts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| async move {
            seen.lock().unwrap().push(body["messages"][1]["content"].as_str().unwrap().to_string());
            let content = format!("```json\n{reply}\n```");
            Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config =
        LlmConfig { url: format!("http://{addr}/v1"), model: "tiny".into(), api_key_env: None, timeout_secs: 5 };

    let x = lectern_document::stages::extract::with_llm(&config, "inv.pdf", schema, pages.clone(), first.clone())
        .await
        .unwrap();
    let prompt = prompts.lock().unwrap().pop().unwrap();
    assert!(prompt.contains("- due_date (date)") && prompt.contains("- iban (iban)"), "{prompt}");
    assert!(!prompt.contains("- number (") && !prompt.contains("- currency ("), "asked only what is missing: {prompt}");
    assert!(prompt.contains("--- page 1 ---\nInvoice No: INV-2024-17"), "{prompt}");

    let due = &x.fields["due_date"];
    assert_eq!((due.value.clone(), due.found_by, due.page), (json!("2024-02-17"), FoundBy::Llm, 1));
    assert_eq!(due.bbox, pages[0].words[9].bbox, "the box of the words on the page");
    let rule = x.rules.iter().find(|r| r.rule == "due_date not before issue_date").unwrap();
    assert_eq!(rule.ok, Some(true), "{rule:?}");
    // Refused: the same bad check digits, a value not on the page, a page that does not
    // exist, words that are no e-mail address; not asked: the number geometry found.
    assert_eq!(x.fields["iban"].found_by, FoundBy::Geometry);
    assert!(!x.fields["iban"].problems.is_empty());
    for name in ["order_id", "customer_id", "email"] {
        assert!(x.missing.contains(&name.to_string()), "{name}: {:?}", x.fields.get(name));
    }
    assert_eq!(
        (x.fields["number"].value.clone(), x.fields["number"].found_by),
        (json!("INV-2024-17"), FoundBy::Geometry)
    );
    assert!(x.review_needed, "the IBAN still needs review: {:?}", x.review);

    // An LLM that cannot be reached leaves the extraction as geometry found it.
    let down = LlmConfig { url: "http://127.0.0.1:9/v1".into(), ..config };
    assert_eq!(
        lectern_document::stages::extract::with_llm(&down, "inv.pdf", schema, pages.clone(), first.clone())
            .await
            .unwrap(),
        first
    );
}
