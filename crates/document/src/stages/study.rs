//! The study job (queue `generate`, stage `study`): study material over a collection or
//! chosen documents of it, made on request rather than at the end of each document's
//! pipeline. It reads each document's chunks and pages as the generate stage does, then
//! writes one cheat sheet with a part per document, one quiz shared out among them
//! (PDF, JSON, Moodle XML, GIFT) and one deck (JSON, CSV, Anki .apkg) into
//! `<data>/study/<id>/`, recording progress per document read.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::error::StageError;
use crate::generate::cheatsheet::{self, FigureInput, Part};
use crate::generate::course::{self, Document};
use crate::generate::{anki, flashcards, moodle, quiz, text};
use lectern_queue::storage::{Artifact, DocumentQuery, DocumentStatus, NewJob};

/// The job's stage name; it runs on the `generate` stage's queue.
pub const STAGE: &str = "study";
/// At most this many documents in one study set: the job embeds every sentence of each
/// (about 5 s for a 113-page manual on 2 cores) within the generate queue's timeout.
pub const MAX_DOCUMENTS: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Cheatsheet,
    Quiz,
    Flashcards,
}

/// What a caller asks for (`POST /v1/collections/{c}/study`, `lectern study`); what is
/// left out comes from `[generate]` in `jobs/pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default = "every_kind")]
    pub kinds: Vec<Kind>,
    /// Document ids in the collection; all of its processed documents when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<String>>,
    /// The cheat sheet's page budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards: Option<usize>,
    /// Orders the quiz's questions and choices; the same seed and documents give the same quiz.
    #[serde(default)]
    pub seed: u64,
    /// The cheat sheet's parts: one per topic (each sentence under the topic it is nearest
    /// to) instead of one per document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
}

fn every_kind() -> Vec<Kind> {
    vec![Kind::Cheatsheet, Kind::Quiz, Kind::Flashcards]
}

impl Request {
    /// The first thing wrong with the request, said for its caller.
    pub fn validate(&self) -> Result<(), String> {
        if self.kinds.is_empty() {
            return Err("kinds is empty: ask for cheatsheet, quiz and/or flashcards".into());
        }
        if let Some(docs) = &self.documents {
            if docs.is_empty() || docs.len() > MAX_DOCUMENTS {
                return Err(format!("documents must list 1 to {MAX_DOCUMENTS} ids"));
            }
            if docs.iter().collect::<std::collections::HashSet<_>>().len() < docs.len() {
                return Err("documents lists a document twice".into());
            }
        }
        if let Some(topics) = &self.topics {
            if topics.is_empty() || topics.len() > 12 {
                return Err("topics must list 1 to 12 topics".into());
            }
            if topics.iter().any(|t| t.trim().is_empty() || t.chars().count() > 200) {
                return Err("each topic must be 1 to 200 characters".into());
            }
        }
        let bad = |name: &str, range: &str| Err(format!("{name} must be {range}"));
        match (self.pages, self.questions, self.cards) {
            (Some(p), _, _) if !(1..=20).contains(&p) => bad("pages", "1 to 20"),
            (_, Some(q), _) if !(1..=200).contains(&q) => bad("questions", "1 to 200"),
            (_, _, Some(c)) if !(1..=1000).contains(&c) => bad("cards", "1 to 1000"),
            _ => Ok(()),
        }
    }
}

/// A study job's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub study_id: String,
}

/// The job that makes study set `study_id`, with the generate queue's defaults; `None`
/// when the pipeline has no generate stage (e.g. `jobs/text-layer.toml`).
pub fn job(pipeline: &PipelineConfig, study_id: &str) -> Option<NewJob> {
    let queue = pipeline.queue("generate")?;
    Some(NewJob {
        queue: "generate".into(),
        stage: STAGE.into(),
        document_id: None,
        payload: serde_json::to_value(Payload { study_id: study_id.into() }).expect("payload serialises"),
        priority: queue.priority,
        max_attempts: queue.max_attempts,
        run_at: None,
    })
}

/// The documents a study set covers: the ones asked for, each of which must be in the
/// collection and done, or every done document of the collection, oldest first.
async fn documents(
    ctx: &Context,
    collection: &str,
    request: &Request,
) -> Result<Vec<lectern_queue::storage::Document>, StageError> {
    if let Some(ids) = &request.documents {
        let mut out = Vec::new();
        for id in ids {
            let doc = ctx.store.document(id).await?.filter(|d| d.collection == collection);
            let doc =
                doc.ok_or_else(|| StageError::BadInput(format!("document {id} is not in collection {collection:?}")))?;
            if doc.status != DocumentStatus::Done {
                return Err(StageError::BadInput(format!(
                    "document {id} ({}) is {}, not done",
                    doc.filename,
                    doc.status.as_str()
                )));
            }
            out.push(doc);
        }
        return Ok(out);
    }
    // One more than the limit tells a collection that is too big.
    let query = DocumentQuery {
        collections: Some(vec![collection.to_string()]),
        status: Some(DocumentStatus::Done),
        doc_type: None,
        after: None,
        limit: MAX_DOCUMENTS as i64 + 1,
    };
    let out = ctx.store.list_documents(&query).await?;
    if out.len() > MAX_DOCUMENTS {
        return Err(StageError::BadInput(format!(
            "collection {collection:?} has over {MAX_DOCUMENTS} documents: choose some with `documents`"
        )));
    }
    if out.is_empty() {
        return Err(StageError::BadInput(format!("collection {collection:?} has no processed documents")));
    }
    Ok(out)
}

/// One document's material, read for the study set.
struct Loaded {
    id: String,
    name: String,
    material: text::Material,
    figures: Vec<FigureInput>,
}

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let id = payload.study_id.as_str();
    let set = ctx.store.study_set(id).await?.ok_or_else(|| StageError::BadInput("the study set is gone".into()))?;
    let request: Request = serde_json::from_value(set.request.clone())
        .map_err(|e| StageError::BadInput(format!("invalid study request: {e}")))?;
    request.validate().map_err(StageError::BadInput)?;
    let docs = documents(ctx, &set.collection, &request).await?;
    let total = docs.len() as i64 + 1;
    ctx.store.set_study_progress(id, 0, total).await?;
    let mut loaded = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let chunks = super::chunk::load(ctx, &doc.id).await?;
        let pages = ctx.load_pages(&doc.id).await?;
        let material = super::generate::material(ctx, &chunks, &pages).await?;
        let figures = ctx.store.figures(&doc.id).await?;
        let figures =
            super::generate::fetch_figures(ctx, super::generate::figure_inputs(&chunks, &figures, &pages, &material))
                .await?;
        loaded.push(Loaded { id: doc.id.clone(), name: doc.filename.clone(), material, figures });
        ctx.store.set_study_progress(id, i as i64 + 1, total).await?;
    }

    let (dir, key) = (ctx.settings.study_dir(id), crate::config::study_key(id));
    let prefix = key.clone();
    std::fs::create_dir_all(&dir).map_err(|e| StageError::transient("create study directory", e))?;
    let mut config = ctx.pipeline.generate.clone();
    config.pages = request.pages.unwrap_or(config.pages);
    let (questions, cards) = (request.questions.unwrap_or(config.questions), request.cards.unwrap_or(config.cards));
    let (title, study_id) = (set.collection.clone(), id.to_string());
    let topics = request.topics.clone().unwrap_or_default();
    let topic_vectors =
        if topics.is_empty() { Vec::new() } else { ctx.embedder().await?.embed(topics.clone()).await? };
    let artifacts = crate::engines::cpu::spawn_cpu(move || -> Result<Vec<Artifact>, StageError> {
        let documents: Vec<Document<'_>> = loaded
            .iter()
            .map(|l| Document { id: &l.id, part: Part { name: &l.name, material: &l.material, figures: &l.figures } })
            .collect();
        let mut outputs: Vec<(&str, &str, Vec<u8>)> = Vec::new();
        if request.kinds.contains(&Kind::Cheatsheet) {
            let by_topic = course::by_topic(&topic_vectors, &documents);
            let parts: Vec<Part<'_>> = if topics.is_empty() {
                documents.iter().map(|d| d.part).collect()
            } else {
                topics.iter().zip(&by_topic).map(|(t, m)| Part { name: t, material: m, figures: &[] }).collect()
            };
            let blocks = cheatsheet::plan_course(&title, &parts, &config);
            outputs.push(("cheatsheet.docx", cheatsheet::MEDIA_TYPE, cheatsheet::build(&blocks, &config)?));
        }
        if request.kinds.contains(&Kind::Quiz) {
            let quiz = course::quiz(&title, &documents, questions, request.seed);
            outputs.push(("quiz.pdf", quiz::MEDIA_TYPE, quiz::build(&quiz)?));
            let json = serde_json::to_vec_pretty(&quiz).map_err(|e| StageError::transient("write quiz", e))?;
            outputs.push(("quiz.json", "application/json", json));
            outputs.push(("quiz.moodle.xml", moodle::XML_MEDIA_TYPE, moodle::xml(&quiz).into_bytes()));
            outputs.push(("quiz.gift.txt", moodle::GIFT_MEDIA_TYPE, moodle::gift(&quiz).into_bytes()));
        }
        if request.kinds.contains(&Kind::Flashcards) {
            let now = chrono::Utc::now();
            let deck = course::cards(&study_id, &documents, cards, now);
            let media: HashMap<String, PathBuf> = documents
                .iter()
                .flat_map(|d| {
                    d.part
                        .figures
                        .iter()
                        .filter_map(move |f| Some((course::image_name(d.id, &f.path)?, PathBuf::from(&f.path))))
                })
                .collect();
            // Not the bare collection name: "default" would clash with Anki's own "Default" deck.
            let deck_name = format!("{title} (Lectern)");
            let apkg = anki::build(&deck_name, &deck, |name| media.get(name).cloned(), &dir, now)?;
            outputs.push(("flashcards.csv", flashcards::CSV_MEDIA_TYPE, flashcards::csv(&deck).into_bytes()));
            outputs.push(("flashcards.apkg", anki::MEDIA_TYPE, apkg));
            outputs.push(("flashcards.json", flashcards::MEDIA_TYPE, flashcards::build(deck, Vec::new())?));
        }
        super::generate::write_artifacts(&dir, &key, outputs)
    })
    .await??;
    for artifact in &artifacts {
        ctx.blobs.publish(&artifact.path).await?;
    }
    if ctx.store.study_set(id).await?.is_none() {
        // Deleted while it was being made: leave nothing behind.
        ctx.blobs.delete_prefix(&prefix).await?;
        return Ok(());
    }
    for artifact in &artifacts {
        ctx.store.put_study_artifact(id, artifact).await?;
    }
    ctx.store.set_study_progress(id, total, total).await?;
    Ok(())
}
