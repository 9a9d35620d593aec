//! The HTTP API (axum). Handlers are thin: parse, call the store or pipeline, answer JSON.
//!
//! - `POST /v1/documents` — multipart upload (field `file`, optional `collection` before it
//!   or `?collection=`); streams to disk, answers 202 with the document and first job ids at
//!   once (413 over the size limit, 415 for a type Lectern cannot read).
//! - `DELETE /v1/documents/{id}` — cancel its jobs, remove its chunks from the index, its
//!   rows and its work directory.
//! - `GET /v1/documents/{id}/artifacts`, `…/artifacts/{name}` — list and download.
//! - `GET /v1/documents/{id}` — document status, its jobs, figures and artifacts.
//! - `POST /v1/documents/{id}/cancel` — cancel every unfinished job of a document.
//! - `GET /v1/jobs/{id}` — job status, stage, attempts, error;
//!   `POST /v1/jobs/{id}/cancel`, `POST /v1/jobs/{id}/retry`.
//! - `GET /v1/queues` — jobs per queue and state, age of the oldest waiting job.
//! - `POST /v1/search` — `{query, top_k, collection?, document_ids?, doc_type?, mode:
//!   vector|text|hybrid}` → chunks with document, page, bbox, heading path and score.
//! - `GET /v1/flashcards/{id}`, `POST /v1/flashcards/{id}/review` — `{grade: 0–5}` applies
//!   SM-2 and answers with the next due date.
//! - `GET /healthz` (alive), `GET /readyz` (store answers, models on disk), `GET /metrics`
//!   (Prometheus: jobs per queue and state, oldest waiting job, indexed chunks).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::context::Context;
use crate::pipeline::ingest::{self, UploadWriter};
use crate::{index, search, sniff};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

pub fn router(ctx: Arc<Context>) -> Router {
    let limit = ctx.settings.max_upload_bytes;
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/documents", post(upload))
        .route("/v1/documents/{id}", get(document).delete(delete_document))
        .route("/v1/documents/{id}/cancel", post(cancel_document))
        .route("/v1/documents/{id}/artifacts", get(artifacts))
        .route("/v1/documents/{id}/artifacts/{name}", get(artifact))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/retry", post(retry_job))
        .route("/v1/queues", get(queues))
        .route("/v1/flashcards/{id}", get(flashcard))
        .route("/v1/flashcards/{id}/review", post(review_flashcard))
        .route("/v1/search", post(search_handler))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ctx)
}

#[derive(Debug, Deserialize)]
struct UploadParams {
    collection: Option<String>,
}

/// Multipart upload: an optional `collection` text field (or `?collection=`), then `file`.
async fn upload(
    State(ctx): State<Arc<Context>>,
    Query(params): Query<UploadParams>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut collection = params.collection.unwrap_or_else(|| ingest::DEFAULT_COLLECTION.to_string());
    while let Some(mut field) = multipart.next_field().await.map_err(|e| ApiError::BadRequest(e.to_string()))? {
        if field.name() == Some("collection") {
            collection = field.text().await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
            continue;
        }
        if field.name() != Some("file") {
            continue;
        }
        index::table_name(&collection).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let filename = field.file_name().unwrap_or("upload").to_string();
        let mut writer = UploadWriter::create(&ctx.settings).await.map_err(internal)?;
        let mut head = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => {
                    if head.len() < 2048 {
                        head.extend_from_slice(&bytes[..bytes.len().min(2048 - head.len())]);
                    }
                    if let Err(e) = writer.write(&bytes).await {
                        writer.abort().await;
                        return Err(internal(e));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    writer.abort().await;
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        return Err(ApiError::TooLarge(ctx.settings.max_upload_bytes));
                    }
                    return Err(ApiError::BadRequest(format!("upload interrupted: {e}")));
                }
            }
        }
        // Empty uploads are accepted and fail on their job with the reason, like corrupt files.
        if !head.is_empty() && sniff::sniff(&head).is_none() {
            writer.abort().await;
            return Err(ApiError::UnsupportedType(format!(
                "unsupported file type: the content looks like {}; Lectern accepts PDF, PNG, JPEG and TIFF",
                sniff::describe(&head)
            )));
        }
        let stored = writer.finish().await.map_err(internal)?;
        let (document_id, job_id) = ingest::submit(ctx.store.as_ref(), &ctx.pipeline, &stored, &filename, &collection)
            .await
            .map_err(internal)?;
        let body =
            json!({ "document_id": document_id, "job_id": job_id, "sha256": stored.sha256, "collection": collection });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    Err(ApiError::BadRequest("multipart field \"file\" is missing".into()))
}

async fn artifacts(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ctx.store.document(&id).await.map_err(internal)?.is_none() {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    let list = ctx.store.artifacts(&id).await.map_err(internal)?;
    let list: Vec<_> = list
        .iter()
        .map(|a| {
            json!({ "name": a.name, "media_type": a.media_type, "size_bytes": a.size_bytes,
                         "url": format!("/v1/documents/{id}/artifacts/{}", a.name) })
        })
        .collect();
    Ok(Json(json!({ "artifacts": list })).into_response())
}

async fn artifact(
    State(ctx): State<Arc<Context>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let list = ctx.store.artifacts(&id).await.map_err(internal)?;
    let a = list.iter().find(|a| a.name == name).ok_or_else(|| ApiError::NotFound(format!("artifact {name}")))?;
    let bytes = tokio::fs::read(&a.path).await.map_err(internal)?;
    let disposition = format!("attachment; filename=\"{}\"", a.name);
    Ok(([(header::CONTENT_TYPE, a.media_type.clone()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

/// Ready when the job store answers and the libraries and models are on disk.
async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    let database = ctx.store.queue_stats(crate::storage::now_ms()).await.map(|_| ()).map_err(|e| e.to_string());
    let s = &ctx.settings;
    let files =
        [s.pdfium_library(), s.onnxruntime_library(), s.layout_model(), s.embedding_model_dir().join("model.onnx")];
    let missing: Vec<String> = files.iter().filter(|f| !f.exists()).map(|f| f.display().to_string()).collect();
    let ready = database.is_ok() && missing.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "missing_models": missing,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus text format: jobs per queue and state, oldest waiting job, indexed chunks.
async fn metrics(State(ctx): State<Arc<Context>>) -> Result<Response, ApiError> {
    use std::fmt::Write;
    let stats = ctx.store.queue_stats(crate::storage::now_ms()).await.map_err(internal)?;
    let mut out = String::from("# HELP lectern_jobs Jobs by queue and state.\n# TYPE lectern_jobs gauge\n");
    for q in &stats {
        for (state, n) in [
            ("available", q.available),
            ("running", q.running),
            ("done", q.done),
            ("failed", q.failed),
            ("dead", q.dead),
            ("cancelled", q.cancelled),
        ] {
            let _ = writeln!(out, "lectern_jobs{{queue=\"{}\",state=\"{state}\"}} {n}", q.queue);
        }
    }
    out.push_str("# HELP lectern_queue_oldest_available_seconds Age of the oldest job waiting to run.\n");
    out.push_str("# TYPE lectern_queue_oldest_available_seconds gauge\n");
    for q in &stats {
        let age = q.oldest_available_ms.unwrap_or(0) as f64 / 1000.0;
        let _ = writeln!(out, "lectern_queue_oldest_available_seconds{{queue=\"{}\"}} {age}", q.queue);
    }
    if let Ok(index) = ctx.index().await {
        out.push_str("# HELP lectern_index_chunks Chunks in a collection's LanceDB table.\n");
        out.push_str("# TYPE lectern_index_chunks gauge\n");
        for collection in index.collections().await.unwrap_or_default() {
            if let Ok(n) = index.count(&collection, None).await {
                let _ = writeln!(out, "lectern_index_chunks{{collection=\"{collection}\"}} {n}");
            }
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn job(State(ctx): State<Arc<Context>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let job = ctx.store.job(id).await.map_err(internal)?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    Ok(Json(job).into_response())
}

async fn document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let status = crate::status::document_status(&ctx, &id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("document {id}")))?;
    Ok(Json(status).into_response())
}

async fn cancel_job(State(ctx): State<Arc<Context>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let state =
        ctx.store.cancel_job(id).await.map_err(internal)?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    Ok(Json(json!({ "id": id, "state": state })).into_response())
}

async fn retry_job(State(ctx): State<Arc<Context>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    if !ctx.store.retry_job(id).await.map_err(internal)? {
        return Err(ApiError::BadRequest(format!("job {id} is not failed, dead or cancelled")));
    }
    Ok(Json(json!({ "id": id, "state": "available" })).into_response())
}

async fn delete_document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if !crate::status::delete_document(&ctx, &id).await.map_err(internal)? {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    Ok(Json(json!({ "id": id, "deleted": true })).into_response())
}

async fn cancel_document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ctx.store.document(&id).await.map_err(internal)?.is_none() {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    let jobs = ctx.store.cancel_document(&id).await.map_err(internal)?;
    Ok(Json(json!({ "id": id, "status": "cancelled", "jobs_stopped": jobs })).into_response())
}

async fn queues(State(ctx): State<Arc<Context>>) -> Result<Response, ApiError> {
    let stats = ctx.store.queue_stats(crate::storage::now_ms()).await.map_err(internal)?;
    Ok(Json(json!({ "queues": stats })).into_response())
}

async fn flashcard(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let card = ctx
        .store
        .flashcard(&id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("flashcard {id}")))?;
    Ok(Json(card).into_response())
}

#[derive(Debug, Deserialize)]
struct ReviewRequest {
    grade: i64,
}

async fn review_flashcard(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<String>,
    Json(req): Json<ReviewRequest>,
) -> Result<Response, ApiError> {
    let card = crate::status::review_flashcard(&ctx, &id, req.grade).await.map_err(|e| match e {
        crate::status::ReviewError::NotFound => ApiError::NotFound(format!("flashcard {id}")),
        crate::status::ReviewError::Grade(e) => ApiError::BadRequest(e.to_string()),
        crate::status::ReviewError::Store(e) => internal(e),
    })?;
    Ok(Json(card).into_response())
}

async fn search_handler(
    State(ctx): State<Arc<Context>>,
    Json(req): Json<search::SearchRequest>,
) -> Result<Response, ApiError> {
    let hits = search::search(&ctx, &req).await.map_err(|e| match e {
        search::SearchError::Invalid(m) => ApiError::BadRequest(m),
        e => internal(e),
    })?;
    Ok(Json(json!({ "mode": req.mode, "hits": hits })).into_response())
}
