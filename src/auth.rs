//! API tokens and per-token limits.
//!
//! A token is `lct_` + 64 hex digits, shown once when created; the store keeps only its
//! sha256. Each token is scoped to collections (`*` for all). The [`Limiter`] bounds each
//! token's requests per minute (a token bucket) and its concurrent uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use lectern_queue::storage::{ApiToken, now_ms};

pub const PREFIX: &str = "lct_";

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token: the secret to hand out once, and the record to store.
pub fn new_token(name: &str, collections: &[String]) -> (String, ApiToken) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let collections = if collections.is_empty() { vec!["*".to_string()] } else { collections.to_vec() };
    let record = ApiToken {
        id: uuid::Uuid::now_v7().simple().to_string()[..12].to_string(),
        name: name.to_string(),
        hash: hash(&secret),
        collections,
        created_at: now_ms(),
        revoked_at: None,
    };
    (secret, record)
}

/// Limits per token, in this process.
pub struct Limiter {
    per_minute: u32,
    uploads: usize,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limiter {
    pub fn new(per_minute: u32, concurrent_uploads: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            uploads: concurrent_uploads.max(1),
            buckets: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the token's bucket, or says how long until one is free.
    pub fn request(&self, token: &str) -> Result<(), Duration> {
        let rate = self.per_minute as f64 / 60.0;
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let now = Instant::now();
        let (tokens, last) = buckets.entry(token.to_string()).or_insert((self.per_minute as f64, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(self.per_minute as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// A slot for one upload, held until the permit drops; `None` when all are taken.
    pub fn upload(&self, token: &str) -> Option<OwnedSemaphorePermit> {
        let sem = self
            .slots
            .lock()
            .expect("limiter lock")
            .entry(token.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.uploads)))
            .clone();
        sem.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, ra) = new_token("ci", &[]);
        let (b, _) = new_token("ci", &["papers".into()]);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64 && a != b);
        assert_eq!(ra.hash, hash(&a));
        assert!(!ra.hash.contains(&a[PREFIX.len()..]));
        assert!(ra.allows("anything"));
    }

    #[test]
    fn bucket_refuses_past_the_rate_and_says_when() {
        let limiter = Limiter::new(3, 1);
        assert!((0..3).all(|_| limiter.request("t").is_ok()));
        let wait = limiter.request("t").unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.request("other").is_ok(), "per token");
        let held = limiter.upload("t").unwrap();
        assert!(limiter.upload("t").is_none());
        drop(held);
        assert!(limiter.upload("t").is_some());
    }
}
