//! Webhooks: when a document uploaded with a `callback_url` becomes done or failed, the
//! store enqueues a delivery job on the `webhook` queue in the same transaction (so no
//! outcome is missed), and a worker POSTs the document's status there, signed with
//! HMAC-SHA256. A delivery that fails (network error, non-2xx answer) is retried with the
//! queue's backoff like any job; after `max_attempts` it is dead and shown as such.
//!
//! Receivers check `X-Lectern-Signature: sha256=<hex HMAC-SHA256(secret, body)>` and may
//! use `X-Lectern-Delivery` (the job id) to drop repeats.
//!
//! Callbacks cannot be aimed inside the network (SSRF): a callback URL whose host resolves
//! to a loopback, private, link-local (cloud metadata), shared or non-unicast address is
//! refused unless the operator's allow-list (`LECTERN_WEBHOOK_ALLOW`) names it, at upload and
//! again at delivery; the delivery then connects to the addresses it checked, so a DNS answer
//! that changes in between cannot redirect it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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

/// The addresses `url` reaches, each checked against internal ranges and `allow` (entries:
/// an IP address, a CIDR block such as `10.0.0.0/8`, or a host name).
pub async fn resolve_allowed(url: &str, allow: &[String]) -> Result<Vec<SocketAddr>, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("callback_url {url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("callback_url host {host} does not resolve: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("callback_url host {host} has no addresses"));
    }
    if allow.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Ok(addrs);
    }
    for addr in &addrs {
        if let Some(kind) = internal(addr.ip())
            && !allow.iter().any(|a| allows(a, addr.ip()))
        {
            return Err(format!(
                "callback_url {host} resolves to {}, {kind}: callbacks into the network are refused unless LECTERN_WEBHOOK_ALLOW names them",
                addr.ip()
            ));
        }
    }
    Ok(addrs)
}

/// What kind of internal address `ip` is, or `None` for a public unicast address.
fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address (where cloud metadata services answer)")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if a == 0 || v4.is_broadcast() || v4.is_multicast() || a >= 240 {
                Some("not a unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                internal(IpAddr::V4(v4))
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a unique local (private) address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

/// Whether allow-list entry `entry` (an address or a CIDR block) covers `ip`.
fn allows(entry: &str, ip: IpAddr) -> bool {
    let (net, bits) = match entry.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (entry, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else { return false };
    let to_bits = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let ((net, width), (ip, ip_width)) = (to_bits(net), to_bits(ip));
    let bits = bits.unwrap_or(width).min(width);
    width == ip_width && (bits == 0 || (net ^ ip) >> (width - bits) == 0)
}

/// A client for one delivery that connects only to `addrs`, the addresses just checked.
fn client(url: &str, addrs: &[SocketAddr]) -> Result<reqwest::Client, StageError> {
    let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lectern-webhook/", env!("CARGO_PKG_VERSION")))
        .resolve_to_addrs(&host, addrs)
        .build()
        .map_err(|e| StageError::transient("build the webhook client", e))
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
    let fields = crate::stages::extract::load(ctx, &ctx.store.artifacts(&doc.id).await?).await?;
    let body = json!({
        "event": format!("document.{}", doc.status),
        "delivery": job.id,
        "sent_at": chrono::Utc::now().to_rfc3339(),
        "document": {
            "id": doc.id, "status": doc.status, "error": doc.error, "filename": doc.filename,
            "collection": doc.collection, "pages": doc.pages, "doc_type": doc.doc_type,
        },
        "fields": fields,
    })
    .to_string();
    // Checked again: the name may resolve elsewhere now than at upload.
    let addrs = resolve_allowed(&delivery.url, &ctx.settings.webhook_allow).await.map_err(StageError::BadInput)?;
    let response = client(&delivery.url, &addrs)?
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

    #[tokio::test]
    async fn callbacks_into_the_network_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[fd00:ec2::254]/x",
            "http://[::ffff:127.0.0.1]/x",
        ] {
            let refused = resolve_allowed(url, &[]).await.unwrap_err();
            assert!(refused.contains("refused unless LECTERN_WEBHOOK_ALLOW"), "{url}: {refused}");
        }
        assert!(resolve_allowed("http://93.184.215.14/x", &[]).await.is_ok(), "public address");
        let allow = ["127.0.0.1".to_string(), "10.0.0.0/8".to_string(), "fd00::/8".to_string()];
        for url in ["http://127.0.0.1:9/x", "http://10.200.0.1/x", "http://[fd00:ec2::254]/x"] {
            assert!(resolve_allowed(url, &allow).await.is_ok(), "{url} is allowed");
        }
        assert!(resolve_allowed("http://192.168.0.1/x", &allow).await.is_err());
        assert!(resolve_allowed("http://11.0.0.1/x", &["10.0.0.0/8".into()]).await.is_ok());
    }

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
