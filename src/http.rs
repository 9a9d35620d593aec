//! The HTTP API (axum). Handlers are thin: parse, call the store or pipeline, answer JSON.
//! Browsers on other origins may call it when `serve --cors-origin` allows them.
//! Every route but `/healthz` and `/readyz` needs a bearer token (`lectern tokens create`;
//! `serve --no-auth` turns this off), limited per token in requests per minute (429 with
//! `Retry-After`) and concurrent uploads, and scoped to its collections.
//!
//! - `POST /v1/documents` — multipart upload (field `file`; before it, or as query
//!   parameters, optional `collection`, `priority`, `artifacts`, `callback_url` and
//!   `reprocess`); streams to disk, answers 202 with the document and first job ids at once
//!   (413 over the size limit, 415 for a type Lectern cannot read); the same content again
//!   answers 200 with the existing document. A `callback_url` gets a signed webhook when
//!   the document finishes ([`lectern_document::webhook`]).
//! - `GET /v1/documents?collection=&status=&doc_type=&limit=&cursor=` — documents page by
//!   page (stable cursor), `GET /v1/collections` — documents per type and chunks per
//!   collection, `DELETE /v1/collections/{name}` — every document in it ([`crate::collections`]).
//! - `DELETE /v1/documents/{id}` — cancel its jobs, remove its chunks from the index, its
//!   rows and its work directory.
//! - `GET /v1/documents/{id}/artifacts`, `…/artifacts/{name}` — list and download.
//! - `GET /v1/documents/{id}/content?format=markdown|json|text` — the document's content,
//!   streamed ([`crate::export`]); `GET /v1/documents/{id}/figures/{name}` — a figure it links.
//! - `GET /v1/documents/{id}` — document status, its jobs, figures, artifacts and fields.
//! - `GET /v1/documents/{id}/fields` — the fields its type's schema found (`fields.json`:
//!   value, page, box, source, confidence, problems; rule checks; `review_needed`).
//! - `POST /v1/documents/{id}/cancel` — cancel every unfinished job of a document.
//! - `GET /v1/documents/{id}/events` — live progress (server-sent events `job`, `document`,
//!   then `end` when the document has finished).
//! - `GET /v1/jobs/{id}` — job status, stage, attempts, error;
//!   `POST /v1/jobs/{id}/cancel`, `POST /v1/jobs/{id}/retry`.
//! - `GET /v1/queues` — jobs per queue and state, age of the oldest waiting job.
//! - `POST /v1/search` — `{query, top_k, collection?, document_ids?, doc_type?, mode:
//!   vector|text|hybrid}` → chunks with document, file name, page, bbox, heading path and score.
//! - `POST /v1/ask` — `{question, collection?, documents?, top_k?}` → an answer with its
//!   citations and the passages it rests on ([`lectern_document::ask`]); with `Accept:
//!   text/event-stream`, server-sent events `passages`, `delta` (the LLM's text as it is
//!   written), then `answer` (or `error`).
//! - `GET /v1/flashcards/{id}`, `POST /v1/flashcards/{id}/review` — `{grade}` applies the
//!   collection's scheduler (SM-2: 0–5; FSRS: 1–4) and answers with the next due date;
//!   `GET /v1/collections/{name}/flashcards/due?limit=` — the study queue;
//!   `GET`/`PUT /v1/collections/{name}/settings` — `{scheduler: sm2|fsrs, desired_retention}`.
//! - `POST /v1/collections/{name}/study` — `{kinds?, documents?, pages?, questions?, cards?,
//!   seed?}` → 202 with a study set id: a job on the generate queue makes a cheat sheet, quiz
//!   (PDF, JSON, Moodle XML, GIFT) and deck (JSON, CSV, Anki .apkg) over the collection;
//!   `GET /v1/study/{id}` (state, progress, files), `…/artifacts/{name}`, `POST …/cancel`,
//!   `DELETE /v1/study/{id}` ([`crate::study`]).
//! - `GET /openapi.json` — the OpenAPI 3.1 description of all of this.
//! - `GET /` — the operator's dashboard (open `/?token=…` once; a session cookie follows).
//! - `GET /healthz` (alive), `GET /readyz` (store answers, models on disk), `GET /metrics`
//!   (Prometheus: jobs per queue and state, oldest waiting job, indexed chunks).
//!
//! Connections come through [`connections::GuardedListener`]: per-client and total caps, and
//! a connection that makes no progress is closed (slow-loris).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

pub mod connections;
mod dashboard;

use crate::auth::Limiter;
use crate::collections::{ListError, ListRequest};
use crate::export::ExportError;
use crate::study::{self, StudyError};
use crate::upload::{Upload, UploadError, Uploaded};
use lectern_document::blob::BlobError;
use lectern_document::context::Context;
use lectern_document::export::Format;
use lectern_document::stages::ingest;
use lectern_document::{ask, search};
use lectern_queue::storage::{ApiToken, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("a bearer token is required (Authorization: Bearer lct_…)")]
    Unauthorized,
    #[error("this token may not use collection {0:?}")]
    Forbidden(String),
    #[error("too many requests for this token; retry in {0} s")]
    TooMany(u64),
    #[error("the service cannot reach its job store or object store; retry shortly ({0})")]
    Unavailable(String),
    #[error("the server's disk is full; retry once space is freed")]
    DiskFull,
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_disk_full() {
            ApiError::DiskFull
        } else if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            internal(e)
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull { ApiError::DiskFull } else { internal(e) }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Invalid(reason) => ApiError::BadRequest(reason),
            UploadError::UnsupportedType(reason) => ApiError::UnsupportedType(reason),
            UploadError::Io(e) => e.into(),
            UploadError::Blob(e) => e.into(),
            UploadError::Store(e) => e.into(),
        }
    }
}

impl From<crate::status::StatusError> for ApiError {
    fn from(e: crate::status::StatusError) -> Self {
        match e {
            crate::status::StatusError::Store(e) => e.into(),
            crate::status::StatusError::Fields(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            BlobError::NotFound(what) => ApiError::NotFound(what),
            BlobError::Io(e) => e.into(),
            other => internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            ApiError::TooMany(secs) => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            ApiError::Unavailable(_) | ApiError::DiskFull => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_OUTAGE_SECS));
            }
            _ => {}
        }
        response
    }
}

impl From<search::SearchError> for ApiError {
    fn from(e: search::SearchError) -> Self {
        match e {
            search::SearchError::Invalid(reason) => ApiError::BadRequest(reason),
            search::SearchError::Store(e) => e.into(),
            other => internal(other),
        }
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Invalid(reason) => ApiError::BadRequest(reason),
            ListError::Forbidden(collection) => ApiError::Forbidden(collection),
            ListError::Store(e) => e.into(),
            other => internal(other),
        }
    }
}

impl From<StudyError> for ApiError {
    fn from(e: StudyError) -> Self {
        match e {
            StudyError::Invalid(reason) => ApiError::BadRequest(reason),
            StudyError::Grade(e) => ApiError::BadRequest(e.to_string()),
            StudyError::NotFound(what) => ApiError::NotFound(what),
            StudyError::Store(e) => e.into(),
            StudyError::Blob(e) => e.into(),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NotFound(id) => ApiError::NotFound(format!("document {id}")),
            ExportError::NotReady { .. } | ExportError::NoPages { .. } => ApiError::Conflict(e.to_string()),
            ExportError::Store(e) => e.into(),
            other => internal(other),
        }
    }
}

impl From<crate::status::PagesError> for ApiError {
    fn from(e: crate::status::PagesError) -> Self {
        match e {
            crate::status::PagesError::Store(e) => e.into(),
            other => internal(other),
        }
    }
}

impl From<crate::status::DeleteError> for ApiError {
    fn from(e: crate::status::DeleteError) -> Self {
        match e {
            crate::status::DeleteError::Store(e) => e.into(),
            crate::status::DeleteError::Blob(e) => e.into(),
            other => internal(other),
        }
    }
}

/// What `Retry-After` says while the job store is down or the disk is full.
const RETRY_AFTER_OUTAGE_SECS: u64 = 5;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

struct Guard {
    ctx: Arc<Context>,
    limiter: Limiter,
}

/// Who is calling: the token, or `None` when the server runs with `--no-auth`.
#[derive(Clone)]
pub struct Caller(Option<ApiToken>);

impl Caller {
    /// The collections a scoped token may use; `None` for every collection.
    fn scope(&self) -> Option<&[String]> {
        self.0.as_ref().filter(|t| !t.allows("*")).map(|t| t.collections.as_slice())
    }

    fn check(&self, collection: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some(t) if !t.allows(collection) => Err(ApiError::Forbidden(collection.to_string())),
            _ => Ok(()),
        }
    }
}

/// Authenticates the bearer token, applies its rate and upload limits, and keeps a scoped
/// token away from documents (and their jobs and cards) of other collections.
async fn require_token(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let ctx = &guard.ctx;
    let from_query = (req.uri().path() == "/")
        .then(|| req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))))
        .flatten()
        .map(str::to_string);
    let secret = bearer(&req).or_else(|| session_cookie(&req)).or(from_query.clone());
    let caller = if ctx.settings.auth_required {
        let secret = secret.as_deref().ok_or(ApiError::Unauthorized)?;
        let token = ctx.store.token_by_hash(&crate::auth::hash(secret)).await?;
        Caller(Some(token.ok_or(ApiError::Unauthorized)?))
    } else {
        Caller(None)
    };
    let key = caller.0.as_ref().map(|t| t.id.clone()).unwrap_or_default();
    guard.limiter.request(&key).map_err(|wait| ApiError::TooMany(wait.as_secs().max(1)))?;
    let _upload = if req.method() == axum::http::Method::POST && req.uri().path() == "/v1/documents" {
        Some(guard.limiter.upload(&key).ok_or(ApiError::TooMany(1))?)
    } else {
        None
    };
    if let Some(token) = caller.0.as_ref().filter(|t| !t.allows("*")) {
        // Not found, naming only what the caller asked for: a job's or a card's document
        // belongs to the collection it cannot see.
        let path = req.uri().path().to_string();
        let hidden = || ApiError::NotFound(path.clone());
        match owner(ctx, &path).await? {
            Owner::Document(document) => match ctx.store.document(&document).await? {
                Some(doc) if !token.allows(&doc.collection) => return Err(hidden()),
                _ => {}
            },
            Owner::Collection(collection) if !token.allows(&collection) => return Err(hidden()),
            Owner::Collection(_) => {}
            Owner::NoCollection => return Err(hidden()),
            Owner::NotAResource => {}
        }
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    if let Some(secret) = from_query.filter(|_| ctx.settings.auth_required) {
        // The dashboard opened with ?token=: its buttons use this cookie from now on.
        let cookie = format!("{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

const SESSION_COOKIE: &str = "lectern_token";

fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim().to_string())
}

fn session_cookie(req: &Request) -> Option<String> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('=').map(str::to_string))
    })
}

/// Whose a `/v1/documents/{id}…`, `/v1/jobs/{id}…`, `/v1/flashcards/{id}…` or
/// `/v1/study/{id}…` path is.
enum Owner {
    /// A document, a job of one, or a card of one: that document's collection decides.
    Document(String),
    /// A study set, or its job: its collection decides.
    Collection(String),
    /// A job of no document (a webhook delivery): only unscoped tokens see it.
    NoCollection,
    /// Not one of those paths, or nothing there (the handler answers 404).
    NotAResource,
}

/// A path segment as axum hands it to a handler: `%XX` escapes decoded (`None` when the
/// result is not UTF-8, which axum refuses too).
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn owner(ctx: &Context, path: &str) -> Result<Owner, ApiError> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some("v1"), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(Owner::NotAResource);
    };
    // Look up what the handler will see: `/v1/study/%73-…` is `s-…`.
    let Some(id) = percent_decoded(id) else { return Ok(Owner::NotAResource) };
    let id = id.as_str();
    Ok(match kind {
        "documents" => Owner::Document(id.to_string()),
        "jobs" => match id.parse::<i64>() {
            Ok(n) => match ctx.store.job(n).await? {
                Some(job) => match (job.document_id.clone(), study_of(&job)) {
                    (Some(document), _) => Owner::Document(document),
                    (None, Some(study)) => match ctx.store.study_set(&study).await? {
                        Some(set) => Owner::Collection(set.collection),
                        None => Owner::NoCollection,
                    },
                    (None, None) => Owner::NoCollection,
                },
                None => Owner::NotAResource,
            },
            Err(_) => Owner::NotAResource,
        },
        "flashcards" => ctx.store.flashcard(id).await?.map_or(Owner::NotAResource, |c| Owner::Document(c.document_id)),
        "study" => ctx.store.study_set(id).await?.map_or(Owner::NotAResource, |s| Owner::Collection(s.collection)),
        _ => Owner::NotAResource,
    })
}

/// The study set a study job makes.
fn study_of(job: &lectern_queue::storage::Job) -> Option<String> {
    (job.stage == lectern_document::stages::study::STAGE)
        .then(|| job.payload.get("study_id")?.as_str().map(str::to_string))
        .flatten()
}

pub fn router(ctx: Arc<Context>) -> Router {
    let guard = Arc::new(Guard {
        limiter: Limiter::new(ctx.settings.rate_per_minute, ctx.settings.concurrent_uploads),
        ctx: ctx.clone(),
    });
    let public = Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz));
    let origins = Arc::new(ctx.settings.cors_origins.clone());
    protected(ctx.clone())
        .layer(middleware::from_fn_with_state(guard, require_token))
        .merge(public.with_state(ctx))
        .layer(middleware::from_fn_with_state(origins, cors))
}

/// CORS for the configured origins only (`serve --cors-origin`): a preflight from one is
/// answered here, before authentication; its other requests get the allow headers. Any
/// other origin gets no CORS headers, so browsers keep its pages out.
async fn cors(State(origins): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    let allowed = req.headers().get(header::ORIGIN).filter(|o| origins.iter().any(|a| a.as_bytes() == o.as_bytes()));
    let Some(origin) = allowed.cloned() else { return next.run(req).await };
    let preflight = req.method() == axum::http::Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, header::HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, header::HeaderValue::from_static("authorization, content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, header::HeaderValue::from_static("600"));
        r
    } else {
        let mut r = next.run(req).await;
        r.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, header::HeaderValue::from_static("retry-after"));
        r
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, header::HeaderValue::from_static("origin"));
    response
}

/// Every route that needs a token.
fn protected(ctx: Arc<Context>) -> Router {
    let limit = ctx.settings.max_upload_bytes;
    Router::new()
        .route("/", get(dashboard::page))
        .route("/metrics", get(metrics))
        .route("/v1/documents", get(list_documents).post(upload))
        .route("/v1/collections", get(collections))
        .route("/v1/collections/{name}", delete(delete_collection))
        .route("/v1/collections/{name}/settings", get(collection_settings).put(set_collection_settings))
        .route("/v1/collections/{name}/flashcards/due", get(due_flashcards))
        .route("/v1/collections/{name}/study", post(request_study))
        .route("/v1/study/{id}", get(study_status).delete(delete_study))
        .route("/v1/study/{id}/cancel", post(cancel_study))
        .route("/v1/study/{id}/artifacts/{name}", get(study_artifact))
        .route("/v1/documents/{id}", get(document).delete(delete_document))
        .route("/v1/documents/{id}/cancel", post(cancel_document))
        .route("/v1/documents/{id}/events", get(document_events))
        .route("/v1/documents/{id}/pages", get(pages))
        .route("/v1/documents/{id}/content", get(content))
        .route("/v1/documents/{id}/figures/{name}", get(figure))
        .route("/v1/documents/{id}/artifacts", get(artifacts))
        .route("/v1/documents/{id}/fields", get(fields))
        .route("/v1/documents/{id}/artifacts/{name}", get(artifact))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/retry", post(retry_job))
        .route("/v1/queues", get(queues))
        .route("/v1/flashcards/{id}", get(flashcard))
        .route("/v1/flashcards/{id}/review", post(review_flashcard))
        .route("/v1/search", post(search_handler))
        .route("/v1/ask", post(ask_handler))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ctx)
}

#[derive(Debug, Default, Deserialize)]
struct UploadParams {
    collection: Option<String>,
    #[serde(default)]
    reprocess: bool,
    priority: Option<i32>,
    /// Comma-separated artifact names.
    artifacts: Option<String>,
    callback_url: Option<String>,
}

impl UploadParams {
    const FIELDS: [&str; 5] = ["collection", "reprocess", "priority", "artifacts", "callback_url"];

    /// Takes the multipart text field `name` (one of [`Self::FIELDS`]).
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        match name {
            "collection" => self.collection = Some(value),
            "reprocess" => self.reprocess = matches!(value.trim(), "true" | "1" | "yes"),
            "priority" => {
                let n = value
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("priority {value:?} is not an integer")))?;
                self.priority = Some(n);
            }
            "artifacts" => self.artifacts = Some(value),
            "callback_url" => self.callback_url = Some(value),
            _ => {}
        }
        Ok(())
    }

    fn options(&self) -> ingest::UploadOptions {
        ingest::UploadOptions {
            collection: self.collection.clone().unwrap_or_else(|| ingest::DEFAULT_COLLECTION.to_string()),
            priority: self.priority,
            artifacts: self
                .artifacts
                .as_ref()
                .map(|a| a.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()),
            callback_url: self.callback_url.clone().filter(|u| !u.trim().is_empty()),
        }
    }
}

/// Multipart upload: optional text fields (or query parameters) `collection`, `priority`,
/// `artifacts` (comma-separated), `callback_url` and `reprocess`, then `file`. Content
/// already in the collection (and not failed or cancelled) answers 200 with that document
/// instead of running again, unless `reprocess`.
async fn upload(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Query(mut params): Query<UploadParams>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    while let Some(mut field) = multipart.next_field().await.map_err(|e| ApiError::BadRequest(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        if name != "file" {
            if UploadParams::FIELDS.contains(&name.as_str()) {
                let value = field.text().await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
                params.set(&name, value)?;
            }
            continue;
        }
        let collection = params.options().collection;
        let filename = field.file_name().unwrap_or("upload").to_string();
        let mut upload = Upload::begin(&ctx, &filename, params.options(), params.reprocess).await?;
        if let Err(e) = caller.check(&collection) {
            upload.abort().await;
            return Err(e);
        }
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => {
                    if let Err(e) = upload.write(&bytes).await {
                        upload.abort().await;
                        return Err(e.into());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    upload.abort().await;
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        return Err(ApiError::TooLarge(ctx.settings.max_upload_bytes));
                    }
                    return Err(ApiError::BadRequest(format!("upload interrupted: {e}")));
                }
            }
        }
        return Ok(match upload.finish().await? {
            Uploaded::Duplicate { document, sha256 } => {
                let body = json!({
                    "document_id": document.id, "job_id": null, "sha256": sha256,
                    "collection": collection, "duplicate": true, "status": document.status,
                });
                (StatusCode::OK, Json(body)).into_response()
            }
            Uploaded::New { document_id, job_id, sha256 } => {
                let body = json!({ "document_id": document_id, "job_id": job_id, "sha256": sha256,
                                   "collection": collection });
                (StatusCode::ACCEPTED, Json(body)).into_response()
            }
        });
    }
    Err(ApiError::BadRequest("multipart field \"file\" is missing".into()))
}

async fn pages(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let pages =
        crate::status::document_pages(&ctx, &id).await?.ok_or_else(|| ApiError::NotFound(format!("document {id}")))?;
    Ok(Json(json!({ "pages": pages })).into_response())
}

/// `GET /v1/documents?collection=&status=&doc_type=&limit=&cursor=`: a page of documents,
/// oldest first, and the cursor of the next page.
async fn list_documents(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Query(req): Query<ListRequest>,
) -> Result<Response, ApiError> {
    let listing = crate::collections::list_documents(&ctx, &req, caller.scope()).await?;
    Ok(Json(listing).into_response())
}

async fn collections(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let list = crate::collections::collections(&ctx, caller.scope()).await?;
    Ok(Json(json!({ "collections": list })).into_response())
}

async fn delete_collection(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = crate::collections::delete_collection(&ctx, &name, caller.scope()).await?;
    Ok(Json(json!({ "collection": name, "deleted_documents": deleted })).into_response())
}

#[derive(Debug, Deserialize)]
struct ContentParams {
    format: Option<String>,
}

/// The export, written on a blocking thread into a channel the response body reads, so a
/// long document streams in bounded memory.
async fn content(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<String>,
    Query(params): Query<ContentParams>,
) -> Result<Response, ApiError> {
    let format: Format = params.format.as_deref().unwrap_or("markdown").parse().map_err(ApiError::BadRequest)?;
    let export = crate::export::prepare(&ctx, &id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let failed = tx.clone();
    let figure_base = format!("/v1/documents/{id}/figures/");
    tokio::spawn(async move {
        let out = std::io::BufWriter::with_capacity(64 << 10, ChannelWriter(tx));
        if let Err(e) = export.write(format, figure_base, out).await {
            tracing::warn!(document = %id, "export failed: {e}");
            let _ = failed.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }));
    Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
}

/// A `Write` that hands what it is given to an async receiver (from a blocking thread).
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A figure crop, by the file name the export links (only the document's own figures).
async fn figure(
    State(ctx): State<Arc<Context>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let figures = ctx.store.figures(&id).await?;
    let figure = figures
        .iter()
        .find(|f| std::path::Path::new(&f.path).file_name().is_some_and(|n| *n == *name))
        .ok_or_else(|| ApiError::NotFound(format!("figure {name}")))?;
    let bytes = tokio::fs::read(ctx.blobs.fetch_immutable(&figure.path).await?).await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}

async fn artifacts(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ctx.store.document(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    let list = ctx.store.artifacts(&id).await?;
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
    let list = ctx.store.artifacts(&id).await?;
    let a = list.iter().find(|a| a.name == name).ok_or_else(|| ApiError::NotFound(format!("artifact {name}")))?;
    download(&ctx, a).await
}

/// An artifact's file as an attachment.
async fn download(ctx: &Context, a: &lectern_queue::storage::Artifact) -> Result<Response, ApiError> {
    let bytes = tokio::fs::read(ctx.blobs.fetch(&a.path).await?).await?;
    let disposition = format!("attachment; filename=\"{}\"", a.name);
    Ok(([(header::CONTENT_TYPE, a.media_type.clone()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

/// The OpenAPI description of these routes (`tests/http.rs` checks every route is in it).
const OPENAPI: &str = include_str!("http/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Ready when the job store answers and the libraries and models are on disk.
async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    let database = ctx.store.queue_stats(lectern_queue::storage::now_ms()).await.map(|_| ()).map_err(|e| e.to_string());
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
    let stats = ctx.store.queue_stats(lectern_queue::storage::now_ms()).await?;
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
    out.push_str(
        "# HELP lectern_stage_duration_seconds Run time of finished jobs per stage (jobs within retention).\n",
    );
    out.push_str("# TYPE lectern_stage_duration_seconds histogram\n");
    for d in ctx.store.stage_durations().await? {
        for (le, n) in lectern_queue::storage::DURATION_BUCKETS_MS.iter().zip(&d.buckets) {
            let _ = writeln!(
                out,
                "lectern_stage_duration_seconds_bucket{{stage=\"{}\",le=\"{}\"}} {n}",
                d.stage,
                *le as f64 / 1000.0
            );
        }
        let _ = writeln!(out, "lectern_stage_duration_seconds_bucket{{stage=\"{}\",le=\"+Inf\"}} {}", d.stage, d.count);
        let _ =
            writeln!(out, "lectern_stage_duration_seconds_sum{{stage=\"{}\"}} {}", d.stage, d.sum_ms as f64 / 1000.0);
        let _ = writeln!(out, "lectern_stage_duration_seconds_count{{stage=\"{}\"}} {}", d.stage, d.count);
    }
    out.push_str("# HELP lectern_pages_done_total Pages through render, layout and OCR (rate() gives pages/s).\n");
    out.push_str("# TYPE lectern_pages_done_total counter\n");
    let _ = writeln!(out, "lectern_pages_done_total {}", ctx.store.pages_done().await?);
    let (batches, rows) = lectern_document::engines::embedder::batch_sizes();
    out.push_str("# HELP lectern_embedding_batch_rows Rows per embedding inference in this process.\n");
    out.push_str("# TYPE lectern_embedding_batch_rows histogram\n");
    let mut cumulative = 0;
    for (le, n) in lectern_document::engines::embedder::BATCH_BUCKETS.iter().zip(batches) {
        cumulative += n;
        let le = if *le == usize::MAX { "+Inf".to_string() } else { le.to_string() };
        let _ = writeln!(out, "lectern_embedding_batch_rows_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "lectern_embedding_batch_rows_sum {rows}");
    let _ = writeln!(out, "lectern_embedding_batch_rows_count {cumulative}");
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
    let job = ctx.store.job(id).await?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    Ok(Json(job).into_response())
}

async fn document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let status =
        crate::status::document_status(&ctx, &id).await?.ok_or_else(|| ApiError::NotFound(format!("document {id}")))?;
    Ok(Json(status).into_response())
}

/// The fields its type's schema found; 404 for a document with none (no schema for its
/// type, or not extracted yet).
async fn fields(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (document, fields) =
        crate::status::document_fields(&ctx, &id).await?.ok_or_else(|| ApiError::NotFound(format!("document {id}")))?;
    let fields = fields.ok_or_else(|| {
        let doc_type = document.doc_type.as_deref().unwrap_or("not classified yet");
        ApiError::NotFound(format!("fields of document {id} (type {doc_type}: no schema, or not extracted yet)"))
    })?;
    Ok(Json(fields).into_response())
}

async fn cancel_job(State(ctx): State<Arc<Context>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let state = ctx.store.cancel_job(id).await?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    Ok(Json(json!({ "id": id, "state": state })).into_response())
}

async fn retry_job(State(ctx): State<Arc<Context>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    if !ctx.store.retry_job(id).await? {
        return Err(ApiError::BadRequest(format!("job {id} is not failed, dead or cancelled")));
    }
    Ok(Json(json!({ "id": id, "state": "available" })).into_response())
}

async fn delete_document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if !crate::status::delete_document(&ctx, &id).await? {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    Ok(Json(json!({ "id": id, "deleted": true })).into_response())
}

/// Server-sent events: `job` and `document` changes in the order they are seen, then `end`
/// once the document has finished.
async fn document_events(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ctx.store.document(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    struct Poll {
        ctx: Arc<Context>,
        id: String,
        seen: std::collections::HashMap<String, crate::status::ProgressEvent>,
        ended: bool,
        first: bool,
    }
    let start = Poll { ctx, id, seen: Default::default(), ended: false, first: true };
    let stream = futures::stream::unfold(start, |mut p| async move {
        if p.ended {
            return None;
        }
        if !p.first {
            tokio::time::sleep(crate::status::PROGRESS_POLL).await;
        }
        p.first = false;
        let batch = match crate::status::progress_since(&p.ctx, &p.id, &mut p.seen).await {
            Ok((events, finished)) => {
                let mut out: Vec<Event> = events
                    .iter()
                    .map(|e| {
                        let kind = match e {
                            crate::status::ProgressEvent::Job { .. } => "job",
                            crate::status::ProgressEvent::Document { .. } => "document",
                        };
                        Event::default().event(kind).json_data(e).expect("events serialise")
                    })
                    .collect();
                if finished {
                    out.push(Event::default().event("end").data(""));
                    p.ended = true;
                }
                out
            }
            Err(e) => {
                p.ended = true;
                vec![Event::default().event("error").data(e.to_string())]
            }
        };
        Some((futures::stream::iter(batch.into_iter().map(Ok::<_, std::convert::Infallible>)), p))
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

async fn cancel_document(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ctx.store.document(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("document {id}")));
    }
    let jobs = ctx.store.cancel_document(&id).await?;
    Ok(Json(json!({ "id": id, "status": "cancelled", "jobs_stopped": jobs })).into_response())
}

async fn queues(State(ctx): State<Arc<Context>>) -> Result<Response, ApiError> {
    let stats = ctx.store.queue_stats(lectern_queue::storage::now_ms()).await?;
    Ok(Json(json!({ "queues": stats })).into_response())
}

async fn flashcard(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let card = ctx.store.flashcard(&id).await?.ok_or_else(|| ApiError::NotFound(format!("flashcard {id}")))?;
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
    Ok(Json(study::review(&ctx, &id, req.grade).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct DueParams {
    limit: Option<i64>,
}

async fn due_flashcards(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<DueParams>,
) -> Result<Response, ApiError> {
    caller.check(&name)?;
    let cards = study::due(&ctx, &name, params.limit).await?;
    Ok(Json(json!({ "collection": name, "cards": cards })).into_response())
}

async fn collection_settings(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.check(&name)?;
    Ok(Json(study::settings(&ctx, &name).await?).into_response())
}

async fn set_collection_settings(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(settings): Json<lectern_queue::storage::CollectionSettings>,
) -> Result<Response, ApiError> {
    caller.check(&name)?;
    study::set_settings(&ctx, &name, &settings).await?;
    Ok(Json(settings).into_response())
}

async fn request_study(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(req): Json<lectern_document::stages::study::Request>,
) -> Result<Response, ApiError> {
    caller.check(&name)?;
    let (id, job_id) = study::request(&ctx, &name, &req).await?;
    let body = json!({ "study_id": id, "job_id": job_id, "status_url": format!("/v1/study/{id}") });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn study_status(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(study::status(&ctx, &id).await?).into_response())
}

async fn cancel_study(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = study::cancel(&ctx, &id).await?;
    Ok(Json(json!({ "study_id": id, "state": state })).into_response())
}

async fn delete_study(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if !study::delete(&ctx, &id).await? {
        return Err(ApiError::NotFound(format!("study set {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn study_artifact(
    State(ctx): State<Arc<Context>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let a = study::artifact(&ctx, &id, &name).await?;
    download(&ctx, &a).await
}

async fn search_handler(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<search::SearchRequest>,
) -> Result<Response, ApiError> {
    caller.check(&req.collection)?;
    let hits = search::search(&ctx, &req).await?;
    Ok(Json(json!({ "mode": req.mode, "hits": hits })).into_response())
}

async fn ask_handler(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    Json(req): Json<ask::AskRequest>,
) -> Result<Response, ApiError> {
    caller.check(&req.collection)?;
    req.validate()?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !accept.contains("text/event-stream") {
        let answer = ask::ask(&ctx, &req, &mut |_| {}).await?;
        return Ok(Json(answer).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        let events = tx.clone();
        let mut progress = move |p: ask::Progress| {
            let event = match p {
                ask::Progress::Passages(passages) => Event::default().event("passages").json_data(passages),
                ask::Progress::Delta(text) => Event::default().event("delta").json_data(json!({ "text": text })),
            };
            let _ = events.send(event.expect("events serialise"));
        };
        let last = match ask::ask(&ctx, &req, &mut progress).await {
            Ok(answer) => Event::default().event("answer").json_data(answer).expect("answers serialise"),
            Err(e) => Event::default().event("error").data(e.to_string()),
        };
        let _ = tx.send(last);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
