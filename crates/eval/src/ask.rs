//! `ask`: indexes the documents of a question set into the `eval` collection, asks every
//! question, and reports how often the sentence that answers it is the top answer or among
//! the top 3, how often out-of-scope questions are answered "not found", and the latency.
//! Questions are asked with no threshold, so the report also shows what each "not found"
//! threshold would give; `--sweep` repeats it for other weights of [`ask::Scoring`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::Deserialize;

use lectern_document::ask::{self, Answer, AskRequest, Scoring};
use lectern_document::context::Context;

use crate::{COLLECTION, EvalDocument, index_documents};

#[derive(Debug, Deserialize)]
struct AskSet {
    document: Vec<EvalDocument>,
    question: Vec<Question>,
    out_of_scope: Vec<OutOfScope>,
}

#[derive(Debug, Deserialize)]
struct Question {
    document: String,
    query: String,
    /// Words of the sentence that answers it.
    answer: String,
}

#[derive(Debug, Deserialize)]
struct OutOfScope {
    query: String,
}

pub async fn run(ctx: Arc<Context>, questions: &Path, corpus: &Path, sweep: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(questions).with_context(|| format!("read {}", questions.display()))?;
    let set: AskSet = toml::from_str(&text).with_context(|| format!("parse {}", questions.display()))?;
    let (ctx, ids) = index_documents(&ctx, &set.document, corpus).await?;

    let default = Scoring::default();
    let run = evaluate(&ctx, &set, &ids, default).await?;
    println!("\n{} questions, {} out of scope", run.scope.len(), run.outside.len());
    let ceiling = run.scope.iter().filter(|o| o.in_passages).count();
    println!("answer sentence in the retrieved passages (the ceiling): {}", pct(ceiling, run.scope.len()));
    println!("{:>10} {:>8} {:>8} {:>14}", "threshold", "top-1", "top-3", "not found (OOS)");
    let mut t = 0.40;
    while t < 0.90 {
        let (a, b, c) = run.at(t);
        let mark = if (t - default.not_found_below).abs() < 0.005 { "  <- default" } else { "" };
        println!("{t:>10.2} {a:>8} {b:>8} {c:>14}{mark}");
        t += 0.02;
    }
    let (a, b, c) = run.at(default.not_found_below);
    println!("\nat the default {default:?}: top-1 {a}, top-3 {b}, out of scope not found {c}");
    let mut latencies = run.latencies.clone();
    latencies.sort_by(f64::total_cmp);
    println!(
        "latency p50 {:.0} ms, p90 {:.0} ms over {} questions",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
        latencies.len()
    );
    println!("\nnot the top answer:");
    for m in &run.misses {
        println!("  {m}");
    }
    println!("\nout of scope, best score:");
    let mut outside = run.outside.clone();
    outside.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (score, query, answer) in outside.iter().take(8) {
        println!("  {score:.3} {query}\n      got: {answer}");
    }

    if sweep {
        println!(
            "\nweights: top-1 and top-3 with no threshold; the least threshold that answers 90% of out-of-scope questions \"not found\", and top-1/top-3 there"
        );
        println!(
            "{:>6} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
            "words", "passage", "top-1", "top-3", "threshold", "top-1", "top-3"
        );
        for word_weight in [0.35] {
            for passage_weight in [0.0, 0.05, 0.1, 0.2] {
                let scoring = Scoring { word_weight, passage_weight, not_found_below: f32::MIN };
                let run = evaluate(&ctx, &set, &ids, scoring).await?;
                let (a, b, _) = run.at(f32::MIN);
                let mut t = 0.3;
                while run.rejected(t) < 0.9 && t < 1.5 {
                    t += 0.01;
                }
                let (c, d, _) = run.at(t);
                println!("{word_weight:>6.2} {passage_weight:>8.2} {a:>8} {b:>8} {t:>10.2} {c:>8} {d:>8}");
            }
        }
    }
    Ok(())
}

/// One question asked with no threshold.
struct Outcome {
    best: f32,
    /// Rank of the first cited sentence that holds the answer, among the top 3.
    rank: Option<usize>,
    /// The answer is in a retrieved passage of the right document.
    in_passages: bool,
}

struct Run {
    scope: Vec<Outcome>,
    outside: Vec<(f32, String, String)>,
    latencies: Vec<f64>,
    misses: Vec<String>,
}

impl Run {
    /// Top-1, top-3 and out-of-scope "not found" at `threshold`.
    fn at(&self, threshold: f32) -> (String, String, String) {
        let top1 = self.scope.iter().filter(|o| o.best >= threshold && o.rank == Some(0)).count();
        let top3 = self.scope.iter().filter(|o| o.best >= threshold && o.rank.is_some()).count();
        let rejected = self.outside.iter().filter(|(s, ..)| *s < threshold).count();
        (pct(top1, self.scope.len()), pct(top3, self.scope.len()), pct(rejected, self.outside.len()))
    }

    fn rejected(&self, threshold: f32) -> f64 {
        self.outside.iter().filter(|(s, ..)| *s < threshold).count() as f64 / self.outside.len().max(1) as f64
    }
}

fn pct(n: usize, of: usize) -> String {
    format!("{:.1}%", 100.0 * n as f64 / of.max(1) as f64)
}

async fn evaluate(
    ctx: &Context,
    set: &AskSet,
    ids: &BTreeMap<String, String>,
    scoring: Scoring,
) -> anyhow::Result<Run> {
    let scoring = Scoring { not_found_below: f32::MIN, ..scoring };
    let mut run = Run { scope: Vec::new(), outside: Vec::new(), latencies: Vec::new(), misses: Vec::new() };
    for q in &set.question {
        let id = ids.get(&q.document).with_context(|| format!("unknown document key {}", q.document))?;
        let answer = ask_once(ctx, ids, &q.query, scoring, &mut run.latencies).await?;
        let want = normalize(&q.answer);
        let rank = answer
            .citations
            .iter()
            .position(|c| &c.document_id == id && c.sentence.as_deref().is_some_and(|s| normalize(s).contains(&want)));
        let in_passages =
            answer.passages.iter().any(|p| &p.hit.document_id == id && normalize(&p.hit.text).contains(&want));
        if rank != Some(0) {
            run.misses.push(format!(
                "{} (rank {rank:?}, in passages {in_passages}): {}\n      got: {}",
                q.document, q.query, answer.answer
            ));
        }
        run.scope.push(Outcome { best: best(&answer), rank, in_passages });
    }
    for q in &set.out_of_scope {
        let answer = ask_once(ctx, ids, &q.query, scoring, &mut run.latencies).await?;
        run.outside.push((best(&answer), q.query.clone(), answer.answer));
    }
    Ok(run)
}

/// Asks over the documents just indexed (not copies left in the collection by an earlier run).
async fn ask_once(
    ctx: &Context,
    ids: &BTreeMap<String, String>,
    query: &str,
    scoring: Scoring,
    latencies: &mut Vec<f64>,
) -> anyhow::Result<Answer> {
    let mut req = AskRequest::new(query);
    req.collection = COLLECTION.into();
    req.documents = Some(ids.values().cloned().collect());
    let started = Instant::now();
    let answer = ask::ask_with(ctx, &req, scoring, &mut |_| {}).await?;
    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    Ok(answer)
}

fn best(answer: &Answer) -> f32 {
    answer.citations.first().and_then(|c| c.score).unwrap_or(f32::MIN)
}

/// Lower-case letters and digits, one space between words: text layers and `pdftotext`
/// differ in punctuation, ligatures and line breaks.
fn normalize(text: &str) -> String {
    let kept: String = text.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}
