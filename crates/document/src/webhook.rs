//! Webhooks: when a document uploaded with a `callback_url` becomes done or failed, the
//! store enqueues a delivery job on the `webhook` queue in the same transaction (so no
//! outcome is missed), and a worker POSTs the document's status there, signed with
//! HMAC-SHA256. A delivery that fails (network error, non-2xx answer) is retried with the
//! queue's backoff like any job; after `max_attempts` it is dead and shown as such.
//!
//! Receivers check `X-Lectern-Signature: sha256=<hex HMAC-SHA256(secret, body)>` and may
//! use `X-Lectern-Delivery` (the job id) to drop repeats.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::error::StageError;
use lectern_queue::engine::{Handler, JobError, Outcome};
use lectern_queue::storage::{Job, NewJob};

/// The queue (and job stage) of deliveries.
pub const QUEUE: &str = "webhook";

/// A delivery job's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub document_id: String,
    pub url: String,
}

/// Checks a callback URL: absolute http(s) with a host.
pub fn validate_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("callback_url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("callback_url {url:?} must be an http:// or https:// URL with a host"));
    }
    Ok(())
}

/// The delivery job the store enqueues when the document finishes. It carries no
/// document id, so it never changes the document's status.
pub fn finish_job(pipeline: &PipelineConfig, document_id: &str, url: &str) -> NewJob {
    let queue = pipeline.queue(QUEUE).expect("validated pipeline has a webhook queue");
    let payload = Delivery { document_id: document_id.to_string(), url: url.to_string() };
    NewJob {
        queue: QUEUE.to_string(),
        stage: QUEUE.to_string(),
        document_id: None,
        payload: serde_json::to_value(payload).expect("delivery serialises"),
        priority: queue.priority,
        max_attempts: queue.max_attempts,
        run_at: None,
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lectern-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client builds")
    })
}

/// The engine's handler for the `webhook` queue.
pub struct WebhookHandler {
    pub ctx: Arc<Context>,
}

#[async_trait]
impl Handler for WebhookHandler {
    async fn run(&self, job: &Job) -> Result<Outcome, JobError> {
        Ok(deliver(&self.ctx, job).await?)
    }
}

/// Runs one delivery job: POST the document's final status to its callback URL.
pub async fn deliver(ctx: &Context, job: &Job) -> Result<Outcome, StageError> {
    let delivery: Delivery = serde_json::from_value(job.payload.clone())
        .map_err(|e| StageError::BadInput(format!("invalid webhook payload: {e}")))?;
    let secret = ctx.settings.webhook_secret.as_deref().ok_or_else(|| {
        StageError::Transient("no webhook secret configured (LECTERN_WEBHOOK_SECRET) on this worker".into())
    })?;
    let Some(doc) = ctx.store.document(&delivery.document_id).await? else {
        tracing::info!(doc = %delivery.document_id, "document deleted before its webhook; nothing sent");
        return Ok(Outcome::default());
    };
    let body = json!({
        "event": format!("document.{}", doc.status),
        "delivery": job.id,
        "sent_at": chrono::Utc::now().to_rfc3339(),
        "document": {
            "id": doc.id, "status": doc.status, "error": doc.error, "filename": doc.filename,
            "collection": doc.collection, "pages": doc.pages, "doc_type": doc.doc_type,
        },
    })
    .to_string();
    let response = client()
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Lectern-Event", format!("document.{}", doc.status))
        .header("X-Lectern-Delivery", job.id.to_string())
        .header("X-Lectern-Signature", sign(secret.as_bytes(), body.as_bytes()))
        .body(body)
        .send()
        .await
        .map_err(|e| StageError::Transient(format!("webhook to {} failed: {e}", delivery.url)))?;
    if !response.status().is_success() {
        return Err(StageError::Transient(format!("webhook to {} answered {}", delivery.url, response.status())));
    }
    tracing::info!(doc = %doc.id, job = job.id, "webhook delivered");
    Ok(Outcome::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(validate_url("https://example.org/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/x").is_ok());
        assert!(validate_url("file:///etc/passwd").is_err());
        assert!(validate_url("not a url").is_err());
    }
}
