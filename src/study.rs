//! Study use cases, shared by HTTP and CLI: study sets over a collection (request, status
//! with progress and artifacts, cancel, delete), flashcard reviews under the collection's
//! scheduler, the study queue of due cards, and a collection's settings.

use serde::Serialize;

use lectern_document::blob::BlobError;
use lectern_document::context::Context;
use lectern_document::schedule::{self, BadGrade};
use lectern_document::stages::study::{self, Request};
use lectern_queue::storage::{
    Artifact, CollectionSettings, Flashcard, JobState, Scheduler, StoreError, StudySet, now_ms,
};

/// A collection name as the index takes it (1–64 of a-z, 0-9, _ and -).
fn valid_collection(collection: &str) -> Result<(), StudyError> {
    lectern_document::index::table_name(collection).map(drop).map_err(|e| StudyError::Invalid(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Grade(#[from] BadGrade),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("remove study files: {0}")]
    Blob(#[from] BlobError),
}

/// A study set as callers see it: the request, where its job is, progress, and files.
#[derive(Debug, Serialize)]
pub struct StudyStatus {
    #[serde(flatten)]
    pub set: StudySet,
    /// The job's state: available (queued), running, done, failed, dead or cancelled.
    pub state: Option<JobState>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    pub artifacts: Vec<Artifact>,
}

/// Enqueues study material over `collection`; answers with the new set's id and job id.
pub async fn request(ctx: &Context, collection: &str, request: &Request) -> Result<(String, i64), StudyError> {
    request.validate().map_err(StudyError::Invalid)?;
    valid_collection(collection)?;
    let id = format!("s-{}", uuid::Uuid::now_v7().simple());
    let body = serde_json::to_value(request).expect("a study request serialises");
    let job = study::job(&ctx.pipeline, &id)
        .ok_or_else(|| StudyError::Invalid("this pipeline has no generate stage to make study material".into()))?;
    let job_id = ctx.store.insert_study_set(&id, collection, &body, &job).await?;
    Ok((id, job_id))
}

pub async fn status(ctx: &Context, id: &str) -> Result<StudyStatus, StudyError> {
    let set = ctx.store.study_set(id).await?.ok_or_else(|| StudyError::NotFound(format!("study set {id}")))?;
    let job = ctx.store.job(set.job_id).await?;
    Ok(StudyStatus {
        state: job.as_ref().map(|j| j.state),
        error: job.and_then(|j| j.error),
        artifacts: ctx.store.study_artifacts(id).await?,
        set,
    })
}

/// One of a study set's files.
pub async fn artifact(ctx: &Context, id: &str, name: &str) -> Result<Artifact, StudyError> {
    ctx.store
        .study_artifacts(id)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| StudyError::NotFound(format!("artifact {name} of study set {id}")))
}

/// Cancels the set's job if it waits, or asks its worker to stop; answers the job's state
/// after the call (a finished job stays as it was).
pub async fn cancel(ctx: &Context, id: &str) -> Result<Option<JobState>, StudyError> {
    let set = ctx.store.study_set(id).await?.ok_or_else(|| StudyError::NotFound(format!("study set {id}")))?;
    Ok(ctx.store.cancel_job(set.job_id).await?)
}

/// Cancels the set's job and removes its rows and files; false if there was no such set.
pub async fn delete(ctx: &Context, id: &str) -> Result<bool, StudyError> {
    let Some(set) = ctx.store.study_set(id).await? else { return Ok(false) };
    ctx.store.cancel_job(set.job_id).await?;
    let deleted = ctx.store.delete_study_set(id).await?;
    ctx.blobs.delete_prefix(&lectern_document::config::study_key(id)).await?;
    Ok(deleted)
}

/// A card after a review: its stored state under both schedulers, and when the
/// collection's scheduler wants it next.
#[derive(Debug, Serialize)]
pub struct Reviewed {
    #[serde(flatten)]
    pub card: Flashcard,
    pub scheduler: Scheduler,
    pub due: chrono::DateTime<chrono::Utc>,
}

/// Applies one review under the card's collection's scheduler: SM-2 takes a grade 0–5,
/// FSRS a rating 1–4 (again, hard, good, easy).
pub async fn review(ctx: &Context, id: &str, grade: i64) -> Result<Reviewed, StudyError> {
    let not_found = || StudyError::NotFound(format!("flashcard {id}"));
    let card = ctx.store.flashcard(id).await?.ok_or_else(not_found)?;
    let doc = ctx.store.document(&card.document_id).await?.ok_or_else(not_found)?;
    let settings = ctx.store.collection_settings(&doc.collection).await?;
    let card = schedule::review(&card, grade, &settings, chrono::Utc::now())?;
    let stored = match (&card.fsrs, settings.scheduler) {
        (Some(fsrs), Scheduler::Fsrs) => ctx.store.set_flashcard_fsrs(id, fsrs).await?,
        _ => ctx.store.set_flashcard_schedule(id, &card.sm2).await?,
    };
    if !stored {
        return Err(not_found());
    }
    Ok(Reviewed { due: schedule::due(&card, settings.scheduler), scheduler: settings.scheduler, card })
}

pub const MAX_DUE: i64 = 500;

/// The collection's cards due now under its scheduler, most overdue first.
pub async fn due(ctx: &Context, collection: &str, limit: Option<i64>) -> Result<Vec<Flashcard>, StudyError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_DUE).contains(&limit) {
        return Err(StudyError::Invalid(format!("limit must be 1 to {MAX_DUE}, not {limit}")));
    }
    let settings = ctx.store.collection_settings(collection).await?;
    Ok(ctx.store.due_flashcards(collection, settings.scheduler, now_ms(), limit).await?)
}

pub async fn settings(ctx: &Context, collection: &str) -> Result<CollectionSettings, StudyError> {
    Ok(ctx.store.collection_settings(collection).await?)
}

/// Sets the collection's scheduler (`sm2` or `fsrs`) and FSRS's desired retention.
pub async fn set_settings(ctx: &Context, collection: &str, settings: &CollectionSettings) -> Result<(), StudyError> {
    valid_collection(collection)?;
    if !(0.7..=0.99).contains(&settings.desired_retention) {
        return Err(StudyError::Invalid(format!(
            "desired_retention must be 0.7 to 0.99, not {}",
            settings.desired_retention
        )));
    }
    Ok(ctx.store.set_collection_settings(collection, settings).await?)
}
