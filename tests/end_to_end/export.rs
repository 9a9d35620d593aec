//! Export of processed fixtures (`lectern_document::export`): the two-column page read
//! column by column, DOCX heading levels as Markdown headings, a DOCX table as a GitHub
//! table, PPTX speaker notes quoted; JSON against its committed schema; plain text without
//! markup.

use crate::common;
use crate::stages::submit_through;

use lectern_document::config::Stage;
use lectern_document::context::Context;
use lectern_document::export::{self, Format, Source};
use serde_json::Value;

const TO_OCR: [Stage; 4] = [Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr];

async fn exported(ctx: &Context, id: &str, format: Format) -> String {
    let figures = ctx.store.figures(id).await.unwrap();
    let source = Source { document_id: id, filename: "f", language: None, figures: &figures, figure_base: "figs/" };
    let mut out = Vec::new();
    export::write(&ctx.workdir(id), &source, format, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_json_and_text_keep_structure_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;

    let columns = submit_through(&ctx, "columns.pdf", &TO_OCR).await;
    let text = exported(&ctx, &columns, Format::Text).await;
    let harbours = "Harbours publish tide tables so that ships with deep hulls can wait for high water.";
    let bread = "Bread rises because yeast eats sugar in the dough and breathes out carbon dioxide.";
    assert!(text.contains(harbours) && text.contains(bread), "sentences come out whole: {text}");
    assert!(text.find(harbours) < text.find(bread), "left column before right: {text}");
    assert!(!text.contains("<!--") && !text.contains('#'), "plain text has no markup: {text}");

    let headings = submit_through(&ctx, "headings.docx", &TO_OCR).await;
    let md = exported(&ctx, &headings, Format::Markdown).await;
    assert!(md.starts_with("<!-- page 1 -->\n\n# Heading Paragraph\n\n"), "{md}");
    assert!(md.contains("Normal paragraph"), "{md}");

    let tables = submit_through(&ctx, "tables.docx", &TO_OCR).await;
    let md = exported(&ctx, &tables, Format::Markdown).await;
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(table.len() >= 3 && table[1].starts_with("| --- |"), "a GitHub table: {md}");
    let columns_of = |line: &str| line.matches(" | ").count();
    assert!(table.iter().all(|l| columns_of(l) == columns_of(table[0])), "every row has the header's cells: {md}");

    let notes = submit_through(&ctx, "notes.pptx", &TO_OCR).await;
    let md = exported(&ctx, &notes, Format::Markdown).await;
    assert!(md.contains("> Notes: Notes") && md.contains("<!-- page 2 -->"), "{md}");

    // JSON: valid against jobs/export.schema.json, blocks numbered in reading order.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("jobs/export.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for id in [&columns, &headings, &tables, &notes] {
        let json: Value = serde_json::from_str(&exported(&ctx, id, Format::Json).await).unwrap();
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {json}");
        let order: Vec<i64> = json["pages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["blocks"].as_array().unwrap())
            .map(|b| b["order"].as_i64().unwrap())
            .collect();
        assert_eq!(order, (0..order.len() as i64).collect::<Vec<_>>());
    }
    let json: Value = serde_json::from_str(&exported(&ctx, &headings, Format::Json).await).unwrap();
    let body = json["pages"][0]["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "paragraph").unwrap();
    assert_eq!(body["heading_path"], serde_json::json!(["Heading Paragraph"]), "{json}");
}
