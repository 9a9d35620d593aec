//! Stage extract, after embed (which sets the document's type): for a type with a schema
//! (`jobs/schemas/`), the schema's fields out of the page model ([`crate::extract`]),
//! checked and scored, written as the `fields.json` artifact. Where several schemas may
//! apply (invoice and receipt), the one that finds more is kept. Other documents pass.
//! With `[generate.llm]` set, the fields geometry left empty or invalid are asked of the
//! LLM from the pages' text; an answer is kept only when its words stand on the page it
//! names and parse as the field's type, and the rules then check it like any other.

use std::sync::Arc;

use super::Payload;
use crate::config::LlmConfig;
use crate::context::Context;
use crate::error::StageError;
use crate::extract::{self, Extraction, Schema, Supplied};
use crate::generate::llm;
use crate::model::workdir::Page;
use lectern_queue::storage::Artifact;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let doc = ctx.store.document(document_id).await?.ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let Some(doc_type) = doc.doc_type.clone() else { return Ok(()) };
    if !ctx.schemas.covers(&doc_type) {
        return Ok(());
    }
    let pages = Arc::new(ctx.load_pages(document_id).await?);
    let (schemas, on) = (ctx.schemas.clone(), pages.clone());
    let extraction: Option<Extraction> = crate::engines::cpu::spawn_cpu(move || {
        let text: String = on.iter().map(|p| p.text()).collect::<Vec<_>>().join("\n");
        extract::extract_best(&schemas.candidates(&doc_type, &text), &on)
    })
    .await?;
    let Some(mut extraction) = extraction else { return Ok(()) };
    if let Some(config) = ctx.pipeline.generate.llm.as_ref()
        && let Some(schema) = ctx.schemas.by_name(&extraction.schema)
    {
        extraction = with_llm(config, &doc.filename, schema, pages, extraction).await?;
    }
    let json = serde_json::to_vec_pretty(&extraction).map_err(|e| StageError::transient("write fields", e))?;
    let workdir = ctx.workdir(document_id);
    let (dir, key) = (workdir.artifacts_dir(), workdir.key("artifacts"));
    let artifacts =
        super::generate::write_artifacts(&dir, &key, vec![(extract::FILE_NAME, extract::MEDIA_TYPE, json)])?;
    for artifact in &artifacts {
        ctx.blobs.publish(&artifact.path).await?;
        ctx.store.put_artifact(document_id, artifact).await?;
    }
    Ok(())
}

/// Most characters of page text sent to the LLM: a business document's first pages.
const LLM_TEXT_CHARS: usize = 12_000;

/// `x` with the fields it lacks or found invalid read by the LLM where its answers hold up
/// ([`extract::read_supplied`]), extracted again off the runtime. When the LLM cannot be
/// reached, or nothing holds up, `x` is kept as it is; refused answers are logged.
pub async fn with_llm(
    config: &LlmConfig,
    title: &str,
    schema: &Schema,
    pages: Arc<Vec<Page>>,
    x: Extraction,
) -> Result<Extraction, StageError> {
    let questions: Vec<llm::FieldQuestion> = extract::wanted(schema, &x)
        .into_iter()
        .map(|f| llm::FieldQuestion { name: f.name.clone(), kind: f.type_name(), labels: f.labels.clone() })
        .collect();
    if questions.is_empty() {
        return Ok(x);
    }
    let mut text = Vec::new();
    let mut budget = LLM_TEXT_CHARS;
    for page in pages.iter() {
        let t: String = page.text().chars().take(budget).collect();
        budget -= t.chars().count();
        text.push((page.number, t));
        if budget == 0 {
            break;
        }
    }
    let answers = match llm::fields(config, title, &questions, &text).await {
        Ok(answers) => answers,
        Err(e) => {
            tracing::warn!(error = %e, "LLM did not read the missing fields; keeping what geometry found");
            return Ok(x);
        }
    };
    let asked = |name: &str| questions.iter().any(|q| q.name == name);
    let supplied: Vec<Supplied> = answers
        .into_iter()
        .filter(|a| asked(&a.name))
        .map(|a| Supplied { field: a.name, text: a.value, page: a.page })
        .collect();
    let schema = schema.clone();
    Ok(crate::engines::cpu::spawn_cpu(move || {
        let (fields, refused) = extract::read_supplied(&schema, &pages, &supplied);
        for why in &refused {
            tracing::info!(answer = %why, "LLM field answer refused");
        }
        if fields.is_empty() { x } else { extract::extract_with(&schema, &pages, fields) }
    })
    .await?)
}

/// A document's extracted fields, if its `artifacts` hold a `fields.json`.
pub async fn load(ctx: &Context, artifacts: &[Artifact]) -> Result<Option<Extraction>, StageError> {
    let Some(artifact) = artifacts.iter().find(|a| a.name == extract::FILE_NAME) else { return Ok(None) };
    let path = ctx.blobs.fetch(&artifact.path).await?;
    tokio::task::spawn_blocking(move || crate::model::workdir::read_json(&path)).await?.map(Some)
}
