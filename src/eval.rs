//! Quality measurements run by `lectern eval …` on real documents.
//!
//! `retrieval`: indexes the documents of a question set into the `eval` collection (the
//! pipeline without its generate stage), then asks every question in vector, text and hybrid
//! mode and reports recall@k (the expected page among the top k) and MRR.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::context::Context;
use crate::index::Mode;
use crate::search::{SearchRequest, search};
use crate::{pipeline, shutdown};

#[derive(Debug, Deserialize)]
struct QuestionSet {
    document: Vec<EvalDocument>,
    question: Vec<Question>,
}

#[derive(Debug, Deserialize)]
struct EvalDocument {
    key: String,
    path: String,
}

#[derive(Debug, Deserialize)]
struct Question {
    document: String,
    pages: Vec<i32>,
    kind: String,
    query: String,
}

const COLLECTION: &str = "eval";

pub async fn retrieval(ctx: Arc<Context>, questions: &Path, corpus: &Path, k: usize) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(questions).with_context(|| format!("read {}", questions.display()))?;
    let set: QuestionSet = toml::from_str(&text).with_context(|| format!("parse {}", questions.display()))?;

    // Index the documents with the pipeline up to embed.
    let mut config = ctx.pipeline.clone();
    config.stages.retain(|s| s != "generate");
    let ctx = Arc::new(Context::new(ctx.settings.clone(), ctx.store.clone(), config));
    let started = Instant::now();
    let mut ids = BTreeMap::new();
    for doc in &set.document {
        let path = corpus.join(&doc.path);
        let (id, _) = pipeline::ingest::submit_file_to(&ctx, &path, COLLECTION)
            .await
            .with_context(|| format!("submit {}", path.display()))?;
        ids.insert(doc.key.clone(), id);
    }
    let (trigger, stop) = shutdown::channel();
    let specs = ctx
        .pipeline
        .stages
        .iter()
        .map(|s| crate::engine::QueueSpec { queue: s.clone(), concurrency: ctx.pipeline.queues[s].concurrency })
        .collect();
    let workers = tokio::spawn(pipeline::run_workers(ctx.clone(), specs, stop));
    for (key, id) in &ids {
        loop {
            let doc = ctx.store.document(id).await?.context("document vanished")?;
            if doc.is_finished() {
                if doc.status != "done" {
                    bail!("{key} did not index: {} {}", doc.status, doc.error.unwrap_or_default());
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    trigger.trigger();
    workers.await?;
    println!("indexed {} documents in {:.1} s", ids.len(), started.elapsed().as_secs_f64());

    println!("\n{} questions, recall@{k} and MRR@{k}:", set.question.len());
    println!("{:<8} {:>9} {:>7} {:>12} {:>10}", "mode", "recall", "MRR", "paraphrase", "keyword");
    for mode in [Mode::Vector, Mode::Text, Mode::Hybrid] {
        let mut found = 0;
        let mut rr = 0.0;
        let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut misses = Vec::new();
        for q in &set.question {
            let id = ids.get(&q.document).with_context(|| format!("unknown document key {}", q.document))?;
            let mut req = SearchRequest::new(q.query.clone(), k, mode);
            req.collection = COLLECTION.into();
            let hits = search(&ctx, &req).await?;
            let on_page = |h: &crate::index::Hit| h.spans.iter().any(|s| q.pages.contains(&(s.page as i32)));
            let rank = hits.iter().position(|h| &h.document_id == id && on_page(h));
            let entry = by_kind.entry(q.kind.as_str()).or_default();
            entry.1 += 1;
            if let Some(r) = rank {
                found += 1;
                entry.0 += 1;
                rr += 1.0 / (r + 1) as f64;
            } else {
                misses.push(format!("{} p{:?}: {}", q.document, q.pages, q.query));
            }
        }
        let n = set.question.len().max(1);
        let kind = |name: &str| by_kind.get(name).map(|(f, t)| format!("{f}/{t}")).unwrap_or_default();
        println!(
            "{:<8} {:>9} {:>7.3} {:>12} {:>10}",
            format!("{mode:?}").to_lowercase(),
            format!("{:.1}%", 100.0 * found as f64 / n as f64),
            rr / n as f64,
            kind("paraphrase"),
            kind("keyword")
        );
        for m in misses {
            println!("         miss: {m}");
        }
    }
    Ok(())
}
