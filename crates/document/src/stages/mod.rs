//! The pipeline's stages, one module each, all run as `run(ctx, payload)`: [`ingest`],
//! [`render`], [`layout`], [`ocr`], [`chunk`], [`embed`], [`extract`] and [`generate`]. A stage reads
//! what the previous one wrote in the document's work directory
//! (`<data>/documents/<id>/`, see [`crate::model::workdir`]) and overwrites its own
//! outputs, so re-running a stage is idempotent. This module holds what every stage job
//! carries ([`Payload`]) and how stage jobs are made. [`study`] is not a stage of the
//! pipeline: it is the job that makes study material over a collection on request.

pub mod chunk;
pub mod embed;
pub mod extract;
pub mod generate;
pub mod ingest;
pub mod layout;
pub mod ocr;
pub mod render;
pub mod study;

use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::error::StageError;
use lectern_queue::storage::NewJob;

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
