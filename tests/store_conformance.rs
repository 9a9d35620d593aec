//! The job store conformance suite, split by concern (insert, read, claim order, leases,
//! fencing, retries, lifecycle). Every backend runs all of it: see `backend_suite!` at
//! the bottom.

use std::sync::Arc;

use lectern::storage::{Artifact, Failure, Figure, JobState, JobStore, NewDocument, NewJob};

fn job(queue: &str, doc: Option<&str>, priority: i32) -> NewJob {
    NewJob {
        queue: queue.into(),
        stage: queue.into(),
        document_id: doc.map(Into::into),
        payload: serde_json::json!({ "document_id": doc.unwrap_or("none") }),
        priority,
        max_attempts: 2,
        run_at: None,
    }
}

fn doc(id: &str) -> NewDocument {
    NewDocument { id: id.into(), sha256: "ab".repeat(32), filename: "f.pdf".into(), size_bytes: 10 }
}

pub mod insert {
    use super::*;

    pub async fn document_and_first_job_are_stored_together(store: Arc<dyn JobStore>) {
        let id = store.insert_document(&doc("d1"), &job("ingest", Some("d1"), 0)).await.unwrap();
        let stored = store.job(id).await.unwrap().unwrap();
        assert_eq!(stored.state, JobState::Available);
        assert_eq!(stored.document_id.as_deref(), Some("d1"));
        assert_eq!(stored.payload["document_id"], "d1");
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.stage.as_deref()), ("queued", Some("ingest")));
    }

    pub async fn a_failed_insert_leaves_nothing(store: Arc<dyn JobStore>) {
        store.insert_document(&doc("d1"), &job("ingest", Some("d1"), 0)).await.unwrap();
        // Same document id again: the transaction must roll back the job too.
        assert!(store.insert_document(&doc("d1"), &job("other", Some("d1"), 0)).await.is_err());
        let now = lectern::storage::now_ms();
        assert!(store.claim("other", "w", now, now + 1000).await.unwrap().is_none());
    }
}

pub mod claim {
    use super::*;

    pub async fn priority_then_fifo(store: Arc<dyn JobStore>) {
        let low = store.insert_job(&job("q", None, 0)).await.unwrap();
        let high = store.insert_job(&job("q", None, 5)).await.unwrap();
        let low2 = store.insert_job(&job("q", None, 0)).await.unwrap();
        let other_queue = store.insert_job(&job("elsewhere", None, 9)).await.unwrap();
        let now = lectern::storage::now_ms();
        let mut order = Vec::new();
        while let Some(j) = store.claim("q", "w", now, now + 10_000).await.unwrap() {
            assert_eq!(j.state, JobState::Running);
            assert_eq!(j.attempt, 1);
            order.push(j.id);
        }
        assert_eq!(order, [high, low, low2]);
        assert!(!order.contains(&other_queue));
    }

    pub async fn delayed_jobs_wait_for_run_at(store: Arc<dyn JobStore>) {
        let now = lectern::storage::now_ms();
        let mut later = job("q", None, 0);
        later.run_at = Some(now + 60_000);
        store.insert_job(&later).await.unwrap();
        assert!(store.claim("q", "w", now, now + 1000).await.unwrap().is_none());
        assert!(store.claim("q", "w", now + 60_001, now + 61_000).await.unwrap().is_some());
    }

    pub async fn concurrent_claims_never_share_a_job(store: Arc<dyn JobStore>) {
        for _ in 0..200 {
            store.insert_job(&job("q", None, 0)).await.unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let now = lectern::storage::now_ms();
                while let Some(j) = store.claim("q", &format!("w{w}"), now, now + 60_000).await.unwrap() {
                    mine.push(j.id);
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!((n, all.len()), (200, 200));
    }
}

pub mod lease {
    use super::*;

    pub async fn expired_lease_returns_job_and_fences_the_old_worker(store: Arc<dyn JobStore>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let now = lectern::storage::now_ms();
        let first = store.claim("q", "old", now, now + 100).await.unwrap().unwrap();
        assert!(store.claim("q", "new", now + 50, now + 1000).await.unwrap().is_none(), "lease still valid");
        let second = store.claim("q", "new", now + 200, now + 10_000).await.unwrap().unwrap();
        assert_eq!((second.id, second.attempt), (first.id, 2));
        // The old worker's late heartbeat and completion are rejected.
        assert!(!store.heartbeat(&first, "old", now + 5000).await.unwrap());
        assert!(!store.complete(&first, "old", None).await.unwrap());
        assert!(store.heartbeat(&second, "new", now + 20_000).await.unwrap());
        assert!(store.complete(&second, "new", None).await.unwrap());
        assert_eq!(store.job(first.id).await.unwrap().unwrap().state, JobState::Done);
    }
}

pub mod lifecycle {
    use super::*;

    pub async fn complete_enqueues_next_stage_atomically(store: Arc<dyn JobStore>) {
        store.insert_document(&doc("d1"), &job("a", Some("d1"), 0)).await.unwrap();
        let now = lectern::storage::now_ms();
        let a = store.claim("a", "w", now, now + 10_000).await.unwrap().unwrap();
        assert_eq!(store.document("d1").await.unwrap().unwrap().status, "running");
        assert!(store.complete(&a, "w", Some(&job("b", Some("d1"), 0))).await.unwrap());
        let now = lectern::storage::now_ms();
        let b = store.claim("b", "w", now, now + 10_000).await.unwrap().expect("next stage enqueued");
        assert!(store.complete(&b, "w", None).await.unwrap());
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.stage.as_deref()), ("done", Some("b")));
        let jobs = store.jobs_for_document("d1").await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.state).collect::<Vec<_>>(), [JobState::Done, JobState::Done]);
    }

    pub async fn retries_then_fails_with_reason(store: Arc<dyn JobStore>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let now = lectern::storage::now_ms();
        let j = store.claim("q", "w", now, now + 10_000).await.unwrap().unwrap();
        assert!(store.fail(&j, "w", "disk hiccup", Failure::Retry { at: now + 5000 }).await.unwrap());
        let stored = store.job(j.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.run_at, stored.error.as_deref()),
            (JobState::Available, now + 5000, Some("disk hiccup"))
        );
        assert!(store.claim("q", "w", now, now + 10_000).await.unwrap().is_none(), "backoff is respected");
        let j = store.claim("q", "w", now + 5000, now + 15_000).await.unwrap().unwrap();
        assert_eq!(j.attempt, 2);
        // max_attempts = 2: a second failure is final even when a retry is asked for.
        assert!(store.fail(&j, "w", "disk hiccup again", Failure::Retry { at: now + 9000 }).await.unwrap());
        assert_eq!(store.job(j.id).await.unwrap().unwrap().state, JobState::Failed);
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!(d.status, "failed");
        assert!(d.error.unwrap().contains("disk hiccup again"));
    }

    pub async fn permanent_failure_does_not_retry(store: Arc<dyn JobStore>) {
        store.insert_job(&job("q", None, 0)).await.unwrap();
        let now = lectern::storage::now_ms();
        let j = store.claim("q", "w", now, now + 10_000).await.unwrap().unwrap();
        assert!(store.fail(&j, "w", "not a PDF", Failure::Permanent).await.unwrap());
        let stored = store.job(j.id).await.unwrap().unwrap();
        assert_eq!((stored.state, stored.attempt), (JobState::Failed, 1));
        assert!(store.claim("q", "w", now + 1_000_000, now + 2_000_000).await.unwrap().is_none());
    }
}

pub mod outputs {
    use super::*;

    pub async fn figures_and_artifacts_replace_not_duplicate(store: Arc<dyn JobStore>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let fig = |idx| Figure {
            page: 2,
            idx,
            label: "figure".into(),
            score: 0.9,
            bbox: [1.0, 2.0, 3.0, 4.0],
            path: format!("f{idx}.png"),
        };
        store.replace_figures("d1", 2, &[fig(0), fig(1)]).await.unwrap();
        store.replace_figures("d1", 2, &[fig(0)]).await.unwrap();
        assert_eq!(store.figures("d1").await.unwrap(), [fig(0)]);
        let art = |size| Artifact {
            name: "quiz.pdf".into(),
            path: "/x/quiz.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: size,
        };
        store.put_artifact("d1", &art(1)).await.unwrap();
        store.put_artifact("d1", &art(2)).await.unwrap();
        assert_eq!(store.artifacts("d1").await.unwrap(), [art(2)]);
    }
}

/// Instantiates every conformance test for one backend.
macro_rules! backend_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident, $path:path) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let dir = tempfile::tempdir().unwrap();
                        let store: Arc<dyn JobStore> = $open(dir.path()).await;
                        $path(store).await;
                    }
                };
            }
            case!(insert_document_and_first_job, insert::document_and_first_job_are_stored_together);
            case!(insert_rolls_back, insert::a_failed_insert_leaves_nothing);
            case!(claim_priority_then_fifo, claim::priority_then_fifo);
            case!(claim_delayed, claim::delayed_jobs_wait_for_run_at);
            case!(claim_concurrent, claim::concurrent_claims_never_share_a_job);
            case!(lease_expiry_and_fencing, lease::expired_lease_returns_job_and_fences_the_old_worker);
            case!(lifecycle_next_stage, lifecycle::complete_enqueues_next_stage_atomically);
            case!(lifecycle_retries, lifecycle::retries_then_fails_with_reason);
            case!(lifecycle_permanent, lifecycle::permanent_failure_does_not_retry);
            case!(outputs_replace, outputs::figures_and_artifacts_replace_not_duplicate);
        }
    };
}

async fn open_sqlite(dir: &std::path::Path) -> Arc<dyn JobStore> {
    lectern::storage::open(None, dir).await.unwrap()
}

backend_suite!(sqlite, open_sqlite);
