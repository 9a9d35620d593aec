//! The engine's handlers: [`PipelineHandler`] runs a stage job, then says what follows it
//! — fan out into page ranges, continue a range, fan back in, or the next document stage
//! (`jobs/pipeline.toml`); the `webhook` queue goes to [`crate::webhook::WebhookHandler`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Stage;
use crate::context::Context;
use crate::error::StageError;
use crate::stages::{self, Payload, job_for, page_ranges};
use lectern_queue::engine::{Handler, Handlers, JobError, Outcome};
use lectern_queue::storage::{FanIn, Job};

/// The engine's handler for document jobs: run the stage, then say what follows it —
/// fan out into page ranges, continue a range, fan back in, or the next document stage.
/// Study jobs (stage `study` on the generate queue) run alone.
pub struct PipelineHandler {
    pub ctx: Arc<Context>,
}

#[async_trait]
impl Handler for PipelineHandler {
    async fn run(&self, job: &Job) -> Result<Outcome, JobError> {
        if job.stage == stages::study::STAGE {
            let payload: stages::study::Payload = serde_json::from_value(job.payload.clone())
                .map_err(|e| JobError::Fail(format!("invalid study payload: {e}")))?;
            stages::study::run(&self.ctx, &payload).await?;
            return Ok(Outcome::default());
        }
        let stage = Stage::parse(&job.stage).ok_or_else(|| JobError::Fail(format!("unknown stage {:?}", job.stage)))?;
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fail(format!("invalid job payload: {e}")))?;
        run_stage(&self.ctx, stage, &payload).await?;
        Ok(follow_ups(&self.ctx, stage, &payload).await?)
    }
}

/// Every queue's handler: the pipeline's stages, and webhook deliveries.
pub fn handlers(ctx: &Arc<Context>) -> Handlers {
    let stages: Arc<dyn Handler> = Arc::new(PipelineHandler { ctx: ctx.clone() });
    let handlers = ctx.pipeline.stages.iter().fold(Handlers::new(), |h, stage| h.on(stage, stages.clone()));
    handlers.on(crate::config::WEBHOOK_QUEUE, Arc::new(crate::webhook::WebhookHandler { ctx: ctx.clone() }))
}

/// Runs worker pools for `specs` on the pipeline until `shutdown`, then stops the
/// processes they kept.
pub async fn run_workers(
    ctx: Arc<Context>,
    specs: Vec<lectern_queue::engine::QueueSpec>,
    shutdown: lectern_queue::shutdown::Shutdown,
) {
    let config = ctx.engine_config();
    let store = ctx.store.clone();
    let trim = tokio::spawn(crate::housekeeping::trim_cache(ctx.clone(), shutdown.clone()));
    lectern_queue::engine::run(store, handlers(&ctx), config, specs, shutdown).await;
    let _ = trim.await;
    ctx.close().await;
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
    match stage {
        Stage::Ingest => stages::ingest::run(ctx, payload).await,
        Stage::Render => stages::render::run(ctx, payload).await,
        Stage::Layout => stages::layout::run(ctx, payload).await,
        Stage::Ocr => stages::ocr::run(ctx, payload).await,
        Stage::Chunk => stages::chunk::run(ctx, payload).await,
        Stage::Embed => stages::embed::run(ctx, payload).await,
        Stage::Extract => stages::extract::run(ctx, payload).await,
        Stage::Generate => stages::generate::run(ctx, payload).await,
    }
}
