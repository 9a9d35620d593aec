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
