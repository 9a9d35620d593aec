//! The job store conformance suite, split by concern (insert, claim, lease, lifecycle,
//! control, outputs, flashcards, study sets, listener, migration). Every backend runs all of it: see `backend_suite!` at the
//! bottom — SQLite on a temporary file, PostgreSQL on a fresh database of the server
//! started by `scripts/pg.sh` (`LECTERN_TEST_PG_URL`).

use std::sync::Arc;
use std::time::Duration;

use lectern_queue::storage::{
    Artifact, Completion, DocumentQuery, DocumentStatus, Failure, FanIn, Figure, Heartbeat, Job, JobState, NewDocument,
    NewJob, Store, now_ms,
};

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
    NewDocument {
        id: id.into(),
        sha256: "ab".repeat(32),
        filename: "f.pdf".into(),
        size_bytes: 10,
        collection: "default".into(),
        artifacts: None,
        callback_url: None,
        finish_job: None,
    }
}

fn done(job: &Job, worker: &str, next: Vec<NewJob>) -> Completion {
    Completion { job: job.clone(), worker: worker.into(), next, fan_in: None }
}

async fn claim_one(store: &Store, queue: &str, worker: &str, now: i64) -> Option<Job> {
    store.claim(queue, worker, 1, now, now + 10_000).await.unwrap().pop()
}

pub mod insert {
    use super::*;

    pub async fn document_and_first_job_are_stored_together(store: Arc<Store>) {
        let id = store.insert_document(&doc("d1"), &job("ingest", Some("d1"), 0)).await.unwrap();
        let stored = store.job(id).await.unwrap().unwrap();
        assert_eq!(stored.state, JobState::Available);
        assert_eq!(stored.document_id.as_deref(), Some("d1"));
        assert_eq!(stored.payload["document_id"], "d1");
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.stage.as_deref(), d.pages_done), ("queued", Some("ingest"), 0));
    }

    pub async fn a_failed_insert_leaves_nothing(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("ingest", Some("d1"), 0)).await.unwrap();
        assert!(store.insert_document(&doc("d1"), &job("other", Some("d1"), 0)).await.is_err());
        assert!(claim_one(store.as_ref(), "other", "w", now_ms()).await.is_none());
    }

    pub async fn bulk_insert_keeps_order(store: Arc<Store>) {
        let jobs: Vec<NewJob> = (0..1200).map(|i| job("bulk", None, i % 3)).collect();
        let ids = store.insert_jobs(&jobs).await.unwrap();
        assert_eq!(ids.len(), 1200);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(store.job(ids[5]).await.unwrap().unwrap().priority, 2);
    }
}

pub mod claim {
    use super::*;

    pub async fn priority_then_fifo(store: Arc<Store>) {
        let low = store.insert_jobs(&[job("q", None, 0)]).await.unwrap()[0];
        let high = store.insert_jobs(&[job("q", None, 5)]).await.unwrap()[0];
        let low2 = store.insert_jobs(&[job("q", None, 0)]).await.unwrap()[0];
        let other_queue = store.insert_jobs(&[job("elsewhere", None, 9)]).await.unwrap()[0];
        let now = now_ms();
        let mut order = Vec::new();
        while let Some(j) = claim_one(store.as_ref(), "q", "w", now).await {
            assert_eq!((j.state, j.attempt, j.locked_by.as_deref()), (JobState::Running, 1, Some("w")));
            order.push(j.id);
        }
        assert_eq!(order, [high, low, low2]);
        assert!(!order.contains(&other_queue));
    }

    pub async fn batches_come_in_claim_order(store: Arc<Store>) {
        let ids = store
            .insert_jobs(&[job("q", None, 0), job("q", None, 1), job("q", None, 0), job("q", None, 0)])
            .await
            .unwrap();
        let now = now_ms();
        let batch = store.claim("q", "w", 3, now, now + 10_000).await.unwrap();
        assert_eq!(batch.iter().map(|j| j.id).collect::<Vec<_>>(), [ids[1], ids[0], ids[2]]);
        assert_eq!(store.claim("q", "w", 3, now, now + 10_000).await.unwrap().len(), 1);
    }

    pub async fn delayed_jobs_wait_for_run_at(store: Arc<Store>) {
        let now = now_ms();
        let mut later = job("q", None, 0);
        later.run_at = Some(now + 60_000);
        store.insert_jobs(&[later]).await.unwrap();
        assert!(claim_one(store.as_ref(), "q", "w", now).await.is_none());
        assert!(claim_one(store.as_ref(), "q", "w", now + 60_001).await.is_some());
    }

    pub async fn concurrent_claims_never_share_a_job(store: Arc<Store>) {
        store.insert_jobs(&(0..400).map(|_| job("q", None, 0)).collect::<Vec<_>>()).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let now = now_ms();
                    let got = store.claim("q", &format!("w{w}"), 7, now, now + 60_000).await.unwrap();
                    if got.is_empty() {
                        break mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!((n, all.len()), (400, 400));
    }
}

pub mod lease {
    use super::*;

    pub async fn expired_lease_returns_job_and_fences_the_old_worker(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let now = now_ms();
        let first = store.claim("q", "old", 1, now, now + 100).await.unwrap().pop().unwrap();
        assert!(store.claim("q", "new", 1, now + 50, now + 1000).await.unwrap().is_empty(), "lease still valid");
        let second = store.claim("q", "new", 1, now + 200, now + 10_000).await.unwrap().pop().unwrap();
        assert_eq!((second.id, second.attempt), (first.id, 2));
        assert_eq!(store.heartbeat(&first, "old", now + 5000).await.unwrap(), Heartbeat::Lost);
        assert_eq!(store.complete(&[done(&first, "old", vec![job("next", Some("d1"), 0)])]).await.unwrap(), [false]);
        assert!(claim_one(store.as_ref(), "next", "x", now_ms()).await.is_none(), "a fenced completion adds nothing");
        assert_eq!(store.heartbeat(&second, "new", now + 20_000).await.unwrap(), Heartbeat::Held);
        assert_eq!(store.complete(&[done(&second, "new", vec![])]).await.unwrap(), [true]);
        assert_eq!(store.job(first.id).await.unwrap().unwrap().state, JobState::Done);
    }

    pub async fn release_does_not_charge_an_attempt(store: Arc<Store>) {
        store.insert_jobs(&[job("q", None, 0)]).await.unwrap();
        let j = claim_one(store.as_ref(), "q", "w", now_ms()).await.unwrap();
        assert!(store.release(&j, "w").await.unwrap());
        let again = claim_one(store.as_ref(), "q", "w2", now_ms()).await.unwrap();
        assert_eq!((again.id, again.attempt), (j.id, 1));
    }
}

pub mod lifecycle {
    use super::*;

    pub async fn complete_enqueues_next_stage_atomically(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("a", Some("d1"), 0)).await.unwrap();
        let a = claim_one(store.as_ref(), "a", "w", now_ms()).await.unwrap();
        assert_eq!(store.document("d1").await.unwrap().unwrap().status.as_str(), "running");
        assert_eq!(store.complete(&[done(&a, "w", vec![job("b", Some("d1"), 0)])]).await.unwrap(), [true]);
        let b = claim_one(store.as_ref(), "b", "w", now_ms()).await.expect("next stage enqueued");
        assert_eq!(store.complete(&[done(&b, "w", vec![])]).await.unwrap(), [true]);
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.stage.as_deref()), ("done", Some("b")));
        let jobs = store.jobs_for_document("d1").await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.state).collect::<Vec<_>>(), [JobState::Done, JobState::Done]);
    }

    pub async fn fan_in_enqueues_next_exactly_once(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("ingest", Some("d1"), 0)).await.unwrap();
        store.set_document_info("d1", "application/pdf", 10).await.unwrap();
        let ingest = claim_one(store.as_ref(), "ingest", "w", now_ms()).await.unwrap();
        let parts: Vec<NewJob> = (0..3).map(|_| job("page", Some("d1"), 0)).collect();
        store.complete(&[done(&ingest, "w", parts)]).await.unwrap();
        let now = now_ms();
        let parts = store.claim("page", "w", 10, now, now + 10_000).await.unwrap();
        assert_eq!(parts.len(), 3);
        let fan_in = |j: &Job, pages| Completion {
            job: j.clone(),
            worker: "w".into(),
            next: vec![],
            fan_in: Some(FanIn { pages, next: job("chunk", Some("d1"), 0) }),
        };
        // Two parts in one batch, the last alone: only the last one enqueues chunk.
        assert_eq!(store.complete(&[fan_in(&parts[0], 4), fan_in(&parts[1], 4)]).await.unwrap(), [true, true]);
        assert!(claim_one(store.as_ref(), "chunk", "w", now_ms()).await.is_none());
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.pages_done), ("running", 8));
        assert_eq!(store.complete(&[fan_in(&parts[2], 2)]).await.unwrap(), [true]);
        // A late duplicate completion of the same part is fenced and adds nothing.
        assert_eq!(store.complete(&[fan_in(&parts[2], 2)]).await.unwrap(), [false]);
        let now = now_ms();
        assert_eq!(store.claim("chunk", "w", 10, now, now + 10_000).await.unwrap().len(), 1);
        assert_eq!(store.document("d1").await.unwrap().unwrap().pages_done, 10);
    }

    pub async fn retries_then_dead_with_last_error(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let now = now_ms();
        let j = claim_one(store.as_ref(), "q", "w", now).await.unwrap();
        assert!(store.fail(&j, "w", "disk hiccup", Failure::Retry { at: now + 5000 }).await.unwrap());
        let stored = store.job(j.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.run_at, stored.error.as_deref()),
            (JobState::Available, now + 5000, Some("disk hiccup"))
        );
        assert!(claim_one(store.as_ref(), "q", "w", now).await.is_none(), "backoff is respected");
        let j = claim_one(store.as_ref(), "q", "w", now + 5000).await.unwrap();
        assert_eq!(j.attempt, 2);
        // max_attempts = 2: the second failure makes the job dead even when a retry is asked.
        assert!(store.fail(&j, "w", "disk hiccup again", Failure::Retry { at: now + 9000 }).await.unwrap());
        let dead = store.job(j.id).await.unwrap().unwrap();
        assert_eq!((dead.state, dead.error.as_deref()), (JobState::Dead, Some("disk hiccup again")));
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!(d.status.as_str(), "failed");
        assert!(d.error.unwrap().contains("disk hiccup again"));
        // Revive it.
        assert!(store.retry_job(j.id).await.unwrap());
        let revived = claim_one(store.as_ref(), "q", "w", now_ms()).await.unwrap();
        assert_eq!((revived.id, revived.attempt), (j.id, 1));
        assert_eq!(store.document("d1").await.unwrap().unwrap().status.as_str(), "running");
        assert!(!store.retry_job(j.id).await.unwrap(), "a running job cannot be retried");
    }

    pub async fn permanent_failure_does_not_retry(store: Arc<Store>) {
        store.insert_jobs(&[job("q", None, 0)]).await.unwrap();
        let now = now_ms();
        let j = claim_one(store.as_ref(), "q", "w", now).await.unwrap();
        assert!(store.fail(&j, "w", "not a PDF", Failure::Permanent).await.unwrap());
        let stored = store.job(j.id).await.unwrap().unwrap();
        assert_eq!((stored.state, stored.attempt), (JobState::Failed, 1));
        assert!(claim_one(store.as_ref(), "q", "w", now + 1_000_000).await.is_none());
    }

    pub async fn finish_job_follows_done_and_final_failure(store: Arc<Store>) {
        let with_hook = |id: &str| NewDocument {
            artifacts: Some(vec!["quiz".into()]),
            callback_url: Some("http://127.0.0.1:9/hook".into()),
            finish_job: Some(job("hook", None, 0)),
            ..doc(id)
        };
        store.insert_document(&with_hook("d1"), &job("a", Some("d1"), 0)).await.unwrap();
        store.insert_document(&with_hook("d2"), &job("a", Some("d2"), 0)).await.unwrap();
        let d = store.document("d1").await.unwrap().unwrap();
        assert_eq!(d.artifacts, Some(vec!["quiz".to_string()]));
        assert_eq!(d.callback_url.as_deref(), Some("http://127.0.0.1:9/hook"));
        let now = now_ms();
        let mut claimed = store.claim("a", "w", 2, now, now + 10_000).await.unwrap();
        let (a2, a1) = (claimed.pop().unwrap(), claimed.pop().unwrap());
        // A stage with a follow-up does not finish the document: no hook yet.
        store.complete(&[done(&a1, "w", vec![job("b", Some("d1"), 0)])]).await.unwrap();
        assert!(claim_one(store.as_ref(), "hook", "w", now_ms()).await.is_none());
        // A retried failure is not final either.
        assert!(store.fail(&a2, "w", "hiccup", Failure::Retry { at: now }).await.unwrap());
        assert!(claim_one(store.as_ref(), "hook", "w", now_ms()).await.is_none());
        let b1 = claim_one(store.as_ref(), "b", "w", now_ms()).await.unwrap();
        store.complete(&[done(&b1, "w", vec![])]).await.unwrap();
        assert!(claim_one(store.as_ref(), "hook", "w", now_ms()).await.is_some(), "done enqueues the hook");
        let a2 = claim_one(store.as_ref(), "a", "w", now_ms()).await.unwrap();
        assert!(store.fail(&a2, "w", "broken", Failure::Permanent).await.unwrap());
        assert!(claim_one(store.as_ref(), "hook", "w", now_ms()).await.is_some(), "failure enqueues the hook");
        assert!(claim_one(store.as_ref(), "hook", "w", now_ms()).await.is_none(), "exactly one hook each");
    }

    pub async fn cleanup_removes_old_finished_jobs_only(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        store.insert_jobs(&[job("q", None, 0), job("q", None, 0)]).await.unwrap();
        let a = claim_one(store.as_ref(), "q", "w", now_ms()).await.unwrap();
        store.complete(&[done(&a, "w", vec![])]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.cleanup(now_ms()).await.unwrap(), 1);
        assert!(store.job(a.id).await.unwrap().is_none());
        assert_eq!(store.document("d1").await.unwrap().unwrap().status.as_str(), "done", "document keeps its status");
        assert_eq!(store.queue_stats(now_ms()).await.unwrap()[0].available, 2);
    }
}

pub mod control {
    use super::*;

    pub async fn cancel_queued_and_running(store: Arc<Store>) {
        let queued = store.insert_jobs(&[job("q", None, 0)]).await.unwrap()[0];
        assert_eq!(store.cancel_job(queued).await.unwrap(), Some(JobState::Cancelled));
        assert!(claim_one(store.as_ref(), "q", "w", now_ms()).await.is_none());
        assert_eq!(store.cancel_job(999_999).await.unwrap(), None);

        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let running = claim_one(store.as_ref(), "q", "w", now_ms()).await.unwrap();
        assert_eq!(store.cancel_job(running.id).await.unwrap(), Some(JobState::Running));
        assert_eq!(store.heartbeat(&running, "w", now_ms() + 10_000).await.unwrap(), Heartbeat::CancelRequested);
        assert!(store.confirm_cancel(&running, "w").await.unwrap());
        assert_eq!(store.job(running.id).await.unwrap().unwrap().state, JobState::Cancelled);
        assert_eq!(store.document("d1").await.unwrap().unwrap().status.as_str(), "cancelled");
    }

    pub async fn cancel_document_stops_everything_and_enqueues_nothing(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("a", Some("d1"), 0)).await.unwrap();
        let a = claim_one(store.as_ref(), "a", "w", now_ms()).await.unwrap();
        store.insert_jobs(&[job("b", Some("d1"), 0)]).await.unwrap();
        assert_eq!(store.cancel_document("d1").await.unwrap(), 2);
        assert!(claim_one(store.as_ref(), "b", "w", now_ms()).await.is_none(), "queued job cancelled");
        // The running job finishes before noticing: its follow-up is not enqueued.
        assert_eq!(store.complete(&[done(&a, "w", vec![job("c", Some("d1"), 0)])]).await.unwrap(), [true]);
        assert!(claim_one(store.as_ref(), "c", "w", now_ms()).await.is_none());
        assert_eq!(store.document("d1").await.unwrap().unwrap().status.as_str(), "cancelled");
    }

    pub async fn queue_stats_count_states(store: Arc<Store>) {
        store.insert_jobs(&[job("q", None, 0), job("q", None, 0), job("r", None, 0)]).await.unwrap();
        let j = claim_one(store.as_ref(), "q", "w", now_ms()).await.unwrap();
        store.fail(&j, "w", "bad", Failure::Permanent).await.unwrap();
        let stats = store.queue_stats(now_ms() + 10).await.unwrap();
        let q = stats.iter().find(|s| s.queue == "q").unwrap();
        assert_eq!((q.available, q.failed, q.running), (1, 1, 0));
        assert!(q.oldest_available_ms.unwrap() >= 10);
        assert_eq!(stats.iter().find(|s| s.queue == "r").unwrap().available, 1);
    }
}

pub mod outputs {
    use super::*;

    pub async fn figures_and_artifacts_replace_not_duplicate(store: Arc<Store>) {
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

    pub async fn collection_classification_and_language_are_kept(store: Arc<Store>) {
        let mut d = doc("d1");
        d.collection = "lectures".into();
        store.insert_document(&d, &job("q", Some("d1"), 0)).await.unwrap();
        let stored = store.document("d1").await.unwrap().unwrap();
        assert_eq!((stored.collection.as_str(), stored.doc_type.as_deref()), ("lectures", None));
        store.set_classification("d1", "paper", 0.42).await.unwrap();
        let stored = store.document("d1").await.unwrap().unwrap();
        assert_eq!(stored.doc_type.as_deref(), Some("paper"));
        assert!((stored.doc_type_score.unwrap() - 0.42).abs() < 1e-9);
        assert_eq!(stored.language, None);
        store.set_language("d1", "fra").await.unwrap();
        let stored = store.document("d1").await.unwrap().unwrap();
        assert_eq!((stored.language.as_deref(), stored.doc_type.as_deref()), (Some("fra"), Some("paper")));
    }

    pub async fn duplicates_are_found_by_content_and_collection(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let sha = "ab".repeat(32);
        assert_eq!(store.find_duplicate(&sha, "default").await.unwrap().unwrap().id, "d1");
        assert!(store.find_duplicate(&sha, "elsewhere").await.unwrap().is_none());
        assert!(store.find_duplicate(&"cd".repeat(32), "default").await.unwrap().is_none());
        store.cancel_document("d1").await.unwrap();
        assert!(store.find_duplicate(&sha, "default").await.unwrap().is_none(), "cancelled documents do not count");
        store.insert_document(&doc("d2"), &job("q", Some("d2"), 0)).await.unwrap();
        let recent: Vec<String> = store.recent_documents(5).await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(recent, ["d2", "d1"], "newest first");
    }

    pub async fn listing_pages_by_keyset_with_filters(store: Arc<Store>) {
        for (id, collection) in
            [("d1", "default"), ("d2", "lectures"), ("d3", "default"), ("d4", "lectures"), ("d5", "default")]
        {
            let mut d = doc(id);
            d.collection = collection.into();
            store.insert_document(&d, &job("q", Some(id), 0)).await.unwrap();
        }
        store.set_classification("d2", "paper", 0.5).await.unwrap();
        store.cancel_document("d3").await.unwrap();
        let all = DocumentQuery { collections: None, status: None, doc_type: None, after: None, limit: 2 };

        // Page by page; an upload in between never shifts what was already listed.
        let mut seen = Vec::new();
        let mut query = all.clone();
        loop {
            let page = store.list_documents(&query).await.unwrap();
            if page.is_empty() {
                break;
            }
            if seen.is_empty() {
                store.insert_document(&doc("d9"), &job("q", Some("d9"), 0)).await.unwrap();
            }
            let last = page.last().unwrap();
            query.after = Some((last.created_at, last.id.clone()));
            seen.extend(page.into_iter().map(|d| d.id));
        }
        assert_eq!(seen, ["d1", "d2", "d3", "d4", "d5", "d9"]);

        let ids = |docs: Vec<lectern_queue::storage::Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let lectures = DocumentQuery { collections: Some(vec!["lectures".into()]), limit: 10, ..all.clone() };
        assert_eq!(ids(store.list_documents(&lectures).await.unwrap()), ["d2", "d4"]);
        let two =
            DocumentQuery { collections: Some(vec!["lectures".into(), "default".into()]), limit: 10, ..all.clone() };
        assert_eq!(store.list_documents(&two).await.unwrap().len(), 6);
        let none = DocumentQuery { collections: Some(vec![]), limit: 10, ..all.clone() };
        assert!(store.list_documents(&none).await.unwrap().is_empty());
        let cancelled = DocumentQuery { status: Some(DocumentStatus::Cancelled), limit: 10, ..all.clone() };
        assert_eq!(ids(store.list_documents(&cancelled).await.unwrap()), ["d3"]);
        let papers = DocumentQuery { doc_type: Some("paper".into()), limit: 10, ..all };
        assert_eq!(ids(store.list_documents(&papers).await.unwrap()), ["d2"]);

        let counts = store.collection_counts().await.unwrap();
        let count = |c: &str, t: Option<&str>| {
            counts.iter().find(|n| n.collection == c && n.doc_type.as_deref() == t).map(|n| n.documents)
        };
        assert_eq!(
            (count("default", None), count("lectures", None), count("lectures", Some("paper"))),
            (Some(4), Some(1), Some(1))
        );
    }

    /// 100,000 documents listed 1,000 at a time while another task keeps uploading: every
    /// one is listed exactly once, whatever the uploads do to the table meanwhile.
    pub async fn listing_100k_documents_while_uploads_continue(store: Arc<Store>) {
        const N: usize = 100_000;
        const WRITERS: usize = 8;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in (w..N).step_by(WRITERS) {
                        let id = format!("d{i:06}");
                        store.insert_document(&doc(&id), &job("q", Some(&id), 0)).await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let uploader = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("late{n:06}");
                    store.insert_document(&doc(&id), &job("q", Some(&id), 0)).await.unwrap();
                    n += 1;
                }
                n
            })
        };
        let mut seen = std::collections::HashSet::new();
        let mut query = DocumentQuery { collections: None, status: None, doc_type: None, after: None, limit: 1000 };
        let mut pages = 0;
        loop {
            let page = store.list_documents(&query).await.unwrap();
            let Some(last) = page.last() else { break };
            query.after = Some((last.created_at, last.id.clone()));
            for d in page {
                assert!(seen.insert(d.id.clone()), "{} listed twice", d.id);
            }
            pages += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let late = uploader.await.unwrap();
        assert!(late > 0, "uploads went on during the listing");
        assert!(pages > N / 1000, "{pages} pages");
        let missing = (0..N).map(|i| format!("d{i:06}")).filter(|id| !seen.contains(id)).count();
        assert_eq!(missing, 0, "documents never listed");
        assert!(seen.iter().all(|id| id.starts_with('d') || id.starts_with("late")));
    }

    pub async fn delete_document_removes_everything_of_it(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        store.insert_document(&doc("d2"), &job("q", Some("d2"), 0)).await.unwrap();
        let fig = Figure { page: 1, idx: 0, label: "figure".into(), score: 0.9, bbox: [0.0; 4], path: "f.png".into() };
        store.replace_figures("d1", 1, std::slice::from_ref(&fig)).await.unwrap();
        let art = Artifact {
            name: "quiz.pdf".into(),
            path: "/q".into(),
            media_type: "application/pdf".into(),
            size_bytes: 1,
        };
        store.put_artifact("d1", &art).await.unwrap();
        assert!(store.delete_document("d1").await.unwrap());
        assert!(store.document("d1").await.unwrap().is_none());
        assert!(store.jobs_for_document("d1").await.unwrap().is_empty());
        assert!(store.figures("d1").await.unwrap().is_empty());
        assert!(store.artifacts("d1").await.unwrap().is_empty());
        assert!(!store.delete_document("d1").await.unwrap());
        assert!(store.document("d2").await.unwrap().is_some(), "other documents stay");
        assert_eq!(store.jobs_for_document("d2").await.unwrap().len(), 1);
    }
}

pub mod flashcards {
    use super::*;
    use lectern_queue::storage::{CollectionSettings, Flashcard, Fsrs, Scheduler, Sm2};

    pub async fn replace_and_reschedule(store: Arc<Store>) {
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        let now = chrono::DateTime::from_timestamp_millis(now_ms()).unwrap();
        let card = |n: u32| Flashcard {
            id: format!("d1-c{n:03}"),
            document_id: "d1".into(),
            front: format!("front {n}"),
            back: "back".into(),
            page: 2,
            sm2: Sm2 { ease: 2.5, interval_days: 0, repetitions: 0, due: now },
            fsrs: None,
        };
        store.replace_flashcards("d1", &[card(1), card(2)]).await.unwrap();
        store.replace_flashcards("d1", &[card(1)]).await.unwrap();
        assert!(store.flashcard("d1-c002").await.unwrap().is_none(), "replaced, not added");
        assert_eq!(store.flashcard("d1-c001").await.unwrap().unwrap(), card(1));
        let next = Sm2 { ease: 2.6, interval_days: 1, repetitions: 1, due: now + chrono::Duration::days(1) };
        assert!(store.set_flashcard_schedule("d1-c001", &next).await.unwrap());
        assert_eq!(store.flashcard("d1-c001").await.unwrap().unwrap().sm2, next);
        assert!(!store.set_flashcard_schedule("nope", &next).await.unwrap());
    }

    /// FSRS state is kept beside SM-2's; the study queue reads the collection's
    /// scheduler's due date (a card FSRS never saw is due when it was made).
    pub async fn fsrs_state_settings_and_due_queue(store: Arc<Store>) {
        let mut other = doc("d2");
        other.collection = "other".into();
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        store.insert_document(&other, &job("q", Some("d2"), 0)).await.unwrap();
        let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let now = now_ms();
        let card = |id: &str, document: &str, due: i64| Flashcard {
            id: id.into(),
            document_id: document.into(),
            front: format!("front {id}"),
            back: "back".into(),
            page: 1,
            sm2: Sm2 { ease: 2.5, interval_days: 0, repetitions: 0, due: at(due) },
            fsrs: None,
        };
        let (a, b, c) = (card("a", "d1", now - 2_000), card("b", "d1", now - 1_000), card("c", "d1", now + 86_400_000));
        store.replace_flashcards("d1", &[a.clone(), b.clone(), c.clone()]).await.unwrap();
        store.replace_flashcards("d2", &[card("x", "d2", now - 5_000)]).await.unwrap();
        let ids = |cards: Vec<Flashcard>| cards.into_iter().map(|c| c.id).collect::<Vec<_>>();

        assert_eq!(store.collection_settings("default").await.unwrap(), CollectionSettings::default());
        let due = store.due_flashcards("default", Scheduler::Sm2, now, 10).await.unwrap();
        assert_eq!(ids(due), ["a", "b"], "most overdue first, only this collection, not the future card");
        assert_eq!(ids(store.due_flashcards("default", Scheduler::Sm2, now, 1).await.unwrap()), ["a"]);

        let fsrs = Fsrs {
            stability: 2.3065,
            difficulty: 2.118,
            interval_days: 2,
            reviewed_at: at(now),
            due: at(now + 2 * 86_400_000),
        };
        assert!(store.set_flashcard_fsrs("a", &fsrs).await.unwrap());
        assert!(!store.set_flashcard_fsrs("nope", &fsrs).await.unwrap());
        let stored = store.flashcard("a").await.unwrap().unwrap();
        assert_eq!((stored.fsrs.as_ref(), &stored.sm2), (Some(&fsrs), &a.sm2), "SM-2 state untouched");
        assert_eq!(ids(store.due_flashcards("default", Scheduler::Fsrs, now, 10).await.unwrap()), ["b"]);
        assert_eq!(ids(store.due_flashcards("default", Scheduler::Sm2, now, 10).await.unwrap()), ["a", "b"]);

        let settings = CollectionSettings { scheduler: Scheduler::Fsrs, desired_retention: 0.85 };
        store.set_collection_settings("default", &settings).await.unwrap();
        store.set_collection_settings("default", &settings).await.unwrap();
        assert_eq!(store.collection_settings("default").await.unwrap(), settings);
        assert_eq!(store.collection_settings("other").await.unwrap(), CollectionSettings::default());
        store.delete_collection_settings("default").await.unwrap();
        assert_eq!(store.collection_settings("default").await.unwrap(), CollectionSettings::default());
    }
}

pub mod study {
    use super::*;

    /// A study set and its job are stored together; its artifacts replace, not duplicate;
    /// the janitor keeps its job (the set's status) and deleting the set removes all of it.
    pub async fn study_set_lifecycle(store: Arc<Store>) {
        let request = serde_json::json!({"kinds": ["quiz"], "seed": 7});
        let job_id = store.insert_study_set("s1", "course", &request, &job("generate", None, 0)).await.unwrap();
        let set = store.study_set("s1").await.unwrap().unwrap();
        assert_eq!((set.collection.as_str(), &set.request, set.job_id), ("course", &request, job_id));
        assert_eq!(store.job(job_id).await.unwrap().unwrap().state, JobState::Available);
        store.set_study_progress("s1", 2, 4).await.unwrap();
        let set = store.study_set("s1").await.unwrap().unwrap();
        assert_eq!((set.steps_done, set.steps_total), (2, 4));

        let artifact = |size| Artifact {
            name: "quiz.pdf".into(),
            path: "/x/quiz.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: size,
        };
        store.put_study_artifact("s1", &artifact(1)).await.unwrap();
        store.put_study_artifact("s1", &artifact(2)).await.unwrap();
        assert_eq!(store.study_artifacts("s1").await.unwrap(), [artifact(2)]);

        let t = now_ms();
        let claimed = claim_one(&store, "generate", "w", t).await.unwrap();
        store.complete(&[done(&claimed, "w", vec![])]).await.unwrap();
        store.cleanup(now_ms() + 60_000).await.unwrap();
        assert!(store.job(job_id).await.unwrap().is_some(), "the janitor keeps a study set's job");

        store.insert_study_set("s2", "other", &request, &job("generate", None, 0)).await.unwrap();
        let names = |sets: Vec<lectern_queue::storage::StudySet>| sets.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(names(store.study_sets("course").await.unwrap()), ["s1"]);
        assert!(store.delete_study_set("s1").await.unwrap());
        assert!(!store.delete_study_set("s1").await.unwrap());
        assert!(store.study_set("s1").await.unwrap().is_none());
        assert!(store.study_artifacts("s1").await.unwrap().is_empty());
        assert!(store.job(job_id).await.unwrap().is_none(), "its job goes with it");
        assert!(store.study_set("s2").await.unwrap().is_some(), "other sets stay");
    }
}

pub mod listener {
    use super::*;

    pub async fn inserts_wake_idle_workers(store: Arc<Store>) {
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_jobs("wake").await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.insert_jobs(&[job("wake", None, 0)]).await.unwrap();
        tokio::time::timeout(Duration::from_millis(500), waiter).await.expect("woken within 500 ms").unwrap();
    }
}

pub mod migration {
    use super::*;

    /// Opening a database again runs no migration twice and keeps what it holds.
    pub async fn reopening_keeps_rows(url: Option<String>, dir: &std::path::Path) {
        let store = lectern_queue::storage::open(url.as_deref(), dir).await.unwrap();
        store.insert_document(&doc("d1"), &job("q", Some("d1"), 0)).await.unwrap();
        drop(store);
        let store = lectern_queue::storage::open(url.as_deref(), dir).await.unwrap();
        assert!(store.document("d1").await.unwrap().is_some(), "the document survives a reopen");
        assert_eq!(store.jobs_for_document("d1").await.unwrap().len(), 1);
    }
}

/// Instantiates every conformance test for one backend.
macro_rules! backend_suite {
    ($backend:ident, $open:path, $url:path) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident, $path:path) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let dir = tempfile::tempdir().unwrap();
                        let store: Arc<Store> = $open(dir.path()).await;
                        $path(store).await;
                    }
                };
            }
            case!(insert_document_and_first_job, insert::document_and_first_job_are_stored_together);
            case!(insert_rolls_back, insert::a_failed_insert_leaves_nothing);
            case!(insert_bulk, insert::bulk_insert_keeps_order);
            case!(claim_priority_then_fifo, claim::priority_then_fifo);
            case!(claim_batches, claim::batches_come_in_claim_order);
            case!(claim_delayed, claim::delayed_jobs_wait_for_run_at);
            case!(claim_concurrent, claim::concurrent_claims_never_share_a_job);
            case!(lease_expiry_and_fencing, lease::expired_lease_returns_job_and_fences_the_old_worker);
            case!(lease_release, lease::release_does_not_charge_an_attempt);
            case!(lifecycle_next_stage, lifecycle::complete_enqueues_next_stage_atomically);
            case!(lifecycle_fan_in, lifecycle::fan_in_enqueues_next_exactly_once);
            case!(lifecycle_retries_and_dead, lifecycle::retries_then_dead_with_last_error);
            case!(lifecycle_permanent, lifecycle::permanent_failure_does_not_retry);
            case!(lifecycle_cleanup, lifecycle::cleanup_removes_old_finished_jobs_only);
            case!(lifecycle_finish_job, lifecycle::finish_job_follows_done_and_final_failure);
            case!(control_cancel, control::cancel_queued_and_running);
            case!(control_cancel_document, control::cancel_document_stops_everything_and_enqueues_nothing);
            case!(control_queue_stats, control::queue_stats_count_states);
            case!(outputs_replace, outputs::figures_and_artifacts_replace_not_duplicate);
            case!(outputs_classification, outputs::collection_classification_and_language_are_kept);
            case!(outputs_delete_document, outputs::delete_document_removes_everything_of_it);
            case!(outputs_duplicates, outputs::duplicates_are_found_by_content_and_collection);
            case!(outputs_listing, outputs::listing_pages_by_keyset_with_filters);
            case!(outputs_listing_100k, outputs::listing_100k_documents_while_uploads_continue);
            case!(listener_wakes, listener::inserts_wake_idle_workers);
            case!(flashcards_schedule, flashcards::replace_and_reschedule);
            case!(flashcards_fsrs_and_due, flashcards::fsrs_state_settings_and_due_queue);
            case!(study_set_lifecycle, study::study_set_lifecycle);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn migration_reopen() {
                let dir = tempfile::tempdir().unwrap();
                migration::reopening_keeps_rows($url().await, dir.path()).await;
            }
        }
    };
}

async fn open_sqlite(dir: &std::path::Path) -> Arc<Store> {
    lectern_queue::storage::open(None, dir).await.unwrap()
}

async fn open_postgres(_dir: &std::path::Path) -> Arc<Store> {
    let url = crate::fresh_pg_database().await;
    lectern_queue::storage::open(Some(&url), _dir).await.unwrap()
}

/// The database URL of a fresh database: none for SQLite (a file in the test's directory).
async fn sqlite_url() -> Option<String> {
    None
}

async fn postgres_url() -> Option<String> {
    Some(crate::fresh_pg_database().await)
}

backend_suite!(sqlite, open_sqlite, sqlite_url);
backend_suite!(postgres, open_postgres, postgres_url);
