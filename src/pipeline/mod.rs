//! The document pipeline: one module per stage, each run as a job on its own queue.
//!
//! Stages hand data to each other through the document's work directory
//! (`<data>/documents/<id>/`, see [`workdir`]): every stage reads what the previous one
//! wrote and overwrites its own outputs, so re-running a stage is idempotent.

pub mod chunk;
pub mod embed;
pub mod generate;
pub mod ingest;
pub mod language;
pub mod layout;
pub mod ocr;
pub mod office;
pub mod raster;
pub mod reading_order;
pub mod render;
pub mod workdir;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::engine::{Handler, Outcome};
use crate::storage::{FanIn, Job, NewJob, StoreError};

/// Pipeline stages, in the order `jobs/pipeline.toml` normally lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Render,
    Layout,
    Ocr,
    Chunk,
    Embed,
    Generate,
}

impl Stage {
    pub const ALL: [Stage; 7] =
        [Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr, Stage::Chunk, Stage::Embed, Stage::Generate];

    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|stage| stage.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Render => "render",
            Stage::Layout => "layout",
            Stage::Ocr => "ocr",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Generate => "generate",
        }
    }
}

/// Why a stage failed. The message is what users see on the job and the document.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The input itself is unusable (corrupt, encrypted, empty, wrong type): retrying
    /// cannot help, so the job fails at once.
    #[error("{0}")]
    BadInput(String),
    /// Anything else (I/O, database, a model failing to load): retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl StageError {
    pub fn transient(context: &str, err: impl std::fmt::Display) -> Self {
        StageError::Transient(format!("{context}: {err}"))
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        StageError::Transient(e.to_string())
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> Self {
        StageError::Transient(format!("I/O error: {e}"))
    }
}

impl From<tokio::task::JoinError> for StageError {
    fn from(e: tokio::task::JoinError) -> Self {
        StageError::Transient(format!("stage task panicked or was cancelled: {e}"))
    }
}

/// A stage job's payload (`jobs/payload.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub document_id: String,
    /// First and last page (1-based, inclusive) for per-page stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<[u32; 2]>,
    /// Priority given at upload; carried to every stage job of the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl Payload {
    pub fn document(document_id: &str) -> Self {
        Self { document_id: document_id.to_string(), pages: None, priority: None }
    }

    /// The page range to work on; the whole document when none is given.
    pub fn page_range(&self, pages_in_document: u32) -> std::ops::RangeInclusive<u32> {
        match self.pages {
            Some([first, last]) => first..=last.min(pages_in_document),
            None => 1..=pages_in_document,
        }
    }
}

/// The pages a per-page stage works on: the payload's range within the document's page count.
pub async fn page_range(ctx: &Context, payload: &Payload) -> Result<std::ops::RangeInclusive<u32>, StageError> {
    let pages = ctx.store.document(&payload.document_id).await?.and_then(|d| d.pages).unwrap_or(1) as u32;
    Ok(payload.page_range(pages))
}

/// A job for `stage` on its own queue, with that queue's defaults.
pub fn job_for(pipeline: &PipelineConfig, stage: &str, payload: &Payload) -> NewJob {
    let queue = pipeline.queue(stage).expect("validated pipeline has a queue per stage");
    NewJob {
        queue: stage.to_string(),
        stage: stage.to_string(),
        document_id: Some(payload.document_id.clone()),
        payload: serde_json::to_value(payload).expect("payload serialises"),
        priority: payload.priority.unwrap_or(queue.priority),
        max_attempts: queue.max_attempts,
        run_at: None,
    }
}

/// Splits `pages` into ranges of `per_job` pages.
pub fn page_ranges(pages: u32, per_job: u32) -> Vec<[u32; 2]> {
    (0..pages.div_ceil(per_job)).map(|i| [i * per_job + 1, ((i + 1) * per_job).min(pages)]).collect()
}

/// The engine's handler for document jobs: run the stage, then say what follows it —
/// fan out into page ranges, continue a range, fan back in, or the next document stage.
/// Webhook deliveries go to [`crate::webhook::deliver`].
pub struct PipelineHandler {
    pub ctx: Arc<Context>,
}

#[async_trait]
impl Handler for PipelineHandler {
    async fn run(&self, job: &Job) -> Result<Outcome, StageError> {
        if job.stage == crate::webhook::QUEUE {
            return crate::webhook::deliver(&self.ctx, job).await;
        }
        let stage =
            Stage::parse(&job.stage).ok_or_else(|| StageError::BadInput(format!("unknown stage {:?}", job.stage)))?;
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| StageError::BadInput(format!("invalid job payload: {e}")))?;
        run_stage(&self.ctx, stage, &payload).await?;
        follow_ups(&self.ctx, stage, &payload).await
    }
}

/// Runs worker pools for `specs` on the pipeline until `shutdown`.
pub async fn run_workers(ctx: Arc<Context>, specs: Vec<crate::engine::QueueSpec>, shutdown: crate::shutdown::Shutdown) {
    let config = ctx.engine_config();
    let store = ctx.store.clone();
    crate::engine::run(store, Arc::new(PipelineHandler { ctx }), config, specs, shutdown).await
}

async fn follow_ups(ctx: &Context, stage: Stage, payload: &Payload) -> Result<Outcome, StageError> {
    let pipeline = &ctx.pipeline;
    let Some(next) = pipeline.next_stage(stage.name()) else { return Ok(Outcome::default()) };
    let doc = Payload { pages: None, ..payload.clone() };
    Ok(match (pipeline.is_per_page(stage.name()), pipeline.is_per_page(next)) {
        (false, true) => {
            let pages = ctx
                .store
                .document(&payload.document_id)
                .await?
                .and_then(|d| d.pages)
                .ok_or_else(|| StageError::Transient("page count unknown".into()))?;
            let next_jobs = page_ranges(pages as u32, pipeline.fan_out.pages_per_job)
                .into_iter()
                .map(|range| job_for(pipeline, next, &Payload { pages: Some(range), ..doc.clone() }))
                .collect();
            Outcome { next: next_jobs, fan_in: None }
        }
        (true, true) => Outcome { next: vec![job_for(pipeline, next, payload)], fan_in: None },
        (true, false) => {
            let [first, last] = payload.pages.unwrap_or([1, 1]);
            Outcome {
                next: Vec::new(),
                fan_in: Some(FanIn { pages: (last - first + 1) as i64, next: job_for(pipeline, next, &doc) }),
            }
        }
        (false, false) => Outcome { next: vec![job_for(pipeline, next, &doc)], fan_in: None },
    })
}

/// Runs one stage for one document (or one page range of it).
pub async fn run_stage(ctx: &Context, stage: Stage, payload: &Payload) -> Result<(), StageError> {
    let id = payload.document_id.as_str();
    match stage {
        Stage::Ingest => ingest::run(ctx, id).await,
        Stage::Render => render::run(ctx, payload).await,
        Stage::Layout => layout::run(ctx, payload).await,
        Stage::Ocr => ocr::run(ctx, payload).await,
        Stage::Chunk => chunk::run(ctx, id).await,
        Stage::Embed => embed::run(ctx, id).await,
        Stage::Generate => generate::run(ctx, id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_split_into_ranges() {
        assert_eq!(page_ranges(10, 4), [[1, 4], [5, 8], [9, 10]]);
        assert_eq!(page_ranges(1, 4), [[1, 1]]);
        assert_eq!(page_ranges(3, 1), [[1, 1], [2, 2], [3, 3]]);
        let p = Payload { document_id: "d".into(), pages: Some([5, 8]), priority: None };
        assert_eq!(p.page_range(6), 5..=6);
        assert_eq!(Payload::document("d").page_range(3), 1..=3);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::json!({"document_id": "d", "pages": [5, 8]}));
    }
}
