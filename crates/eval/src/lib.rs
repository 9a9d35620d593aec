//! Quality measurements on real documents, run by the `lectern-eval` binary (not part of
//! the server: `lectern` never links this crate).
//!
//! `study`: processes files end to end, checks their quiz and flashcards against the
//! pages they cite, and renders previews.
//!
//! `ocr` ([`ocr`]): OCR decisions over the corpus and OCR error rate on born-digital pages.
//! `figures` ([`figures`]): figure recall on hand-counted corpus pages.
//!
//! `study-terms` ([`study_terms`]): quiz answers and flashcard fronts against the author's
//! own key terms (index, keywords); common-word blanks, front matter, malformed fronts.
//!
//! `ask` ([`ask`]): answers with citations over a question set, calibrating "not found".
//!
//! `fuzz` ([`fuzz`]): mutation fuzzing of the parsers Lectern wrote (`scripts/fuzz.sh`).
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

use lectern_document::context::Context;
use lectern_document::generate;
use lectern_document::index::Mode;
use lectern_document::model::workdir;
use lectern_document::pipeline;
use lectern_document::search::{SearchRequest, search};
use lectern_document::stages::ingest;
use lectern_queue::shutdown;
use lectern_queue::storage::DocumentStatus;

pub mod ask;
pub mod figures;
pub mod fuzz;
pub mod ocr;
pub mod study_terms;

#[derive(Debug, Deserialize)]
struct QuestionSet {
    document: Vec<EvalDocument>,
    question: Vec<Question>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EvalDocument {
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
    let (ctx, ids) = index_documents(&ctx, &set.document, corpus).await?;

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
            // Only the documents just indexed, not copies an earlier run left in the collection.
            req.document_ids = Some(ids.values().cloned().collect());
            let hits: Vec<_> = search(&ctx, &req).await?.into_iter().map(|h| h.hit).collect();
            let on_page = |h: &lectern_document::index::Hit| h.spans.iter().any(|s| q.pages.contains(&(s.page as i32)));
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

/// Indexes `documents` into the `eval` collection with the pipeline up to embed; answers
/// that pipeline's context and the document ids by key.
async fn index_documents(
    ctx: &Context,
    documents: &[EvalDocument],
    corpus: &Path,
) -> anyhow::Result<(Arc<Context>, BTreeMap<String, String>)> {
    let mut config = ctx.pipeline.clone();
    config.stages.retain(|s| s != "generate");
    let ctx = Arc::new(Context::new(ctx.settings.clone(), ctx.store.clone(), config));
    let started = Instant::now();
    let mut ids = BTreeMap::new();
    for doc in documents {
        let path = corpus.join(&doc.path);
        let (id, _) = ingest::submit_file_to(&ctx, &path, COLLECTION)
            .await
            .with_context(|| format!("submit {}", path.display()))?;
        ids.insert(doc.key.clone(), id);
    }
    run_to_end(&ctx, &ids).await?;
    println!("indexed {} documents in {:.1} s", ids.len(), started.elapsed().as_secs_f64());
    Ok((ctx, ids))
}

/// Runs worker pools for every stage of `ctx`'s pipeline until all `ids` have finished;
/// fails if one did not end `done`.
async fn run_to_end(ctx: &Arc<Context>, ids: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let (trigger, stop) = shutdown::channel();
    let workers = tokio::spawn(pipeline::run_workers(ctx.clone(), ctx.pipeline.stage_specs(), stop));
    let mut failed = None;
    for (key, id) in ids {
        loop {
            let doc = ctx.store.document(id).await?.context("document vanished")?;
            if doc.is_finished() {
                if doc.status != DocumentStatus::Done {
                    failed = Some(format!("{key}: {} {}", doc.status, doc.error.unwrap_or_default()));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    trigger.trigger();
    workers.await?;
    match failed {
        Some(f) => bail!("a document did not finish: {f}"),
        None => Ok(()),
    }
}

/// `lectern eval study`: processes each file end to end, checks its study material against
/// its pages ([`generate::check`]), and renders previews to look at: the quiz's
/// pages, and the cheat sheet's pages through LibreOffice when `soffice` is installed (which
/// also measures its real page count). Fails when a check fails.
pub async fn study(ctx: Arc<Context>, files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    let mut ids = BTreeMap::new();
    for file in files {
        let (id, _) = ingest::submit_file(&ctx, file).await.with_context(|| format!("submit {}", file.display()))?;
        ids.insert(file.display().to_string(), id);
    }
    let started = Instant::now();
    run_to_end(&ctx, &ids).await?;
    println!("processed {} documents in {:.1} s\n", ids.len(), started.elapsed().as_secs_f64());
    let mut ok = true;
    for (name, id) in &ids {
        let work = ctx.workdir(id);
        let dir = work.artifacts_dir();
        let quiz: generate::quiz::Quiz = workdir::read_json(&dir.join("quiz.json"))?;
        let deck: generate::flashcards::Deck = workdir::read_json(&dir.join("flashcards.json"))?;
        let pages = work.load_pages()?;
        let mut problems = generate::check::check(&quiz, &deck, &pages);
        let sheet = generate::check::cheatsheet(&dir.join("cheatsheet.docx"), &ctx.pipeline.generate)
            .map_err(anyhow::Error::msg)?;
        problems.extend(sheet.problems.iter().map(|p| format!("cheat sheet: {p}")));
        let count = |k: generate::quiz::Kind| quiz.questions.iter().filter(|q| q.kind == k).count();
        let cards = |k: &str| deck.cards.iter().filter(|c| c.kind == k).count();
        use generate::quiz::Kind;
        println!("{name}  (document {id}, {} pages)", pages.len());
        println!(
            "  quiz: {} questions ({} multiple choice, {} cloze, {} true/false){}",
            quiz.questions.len(),
            count(Kind::MultipleChoice),
            count(Kind::Cloze),
            count(Kind::TrueFalse),
            if quiz.skipped.is_empty() { String::new() } else { format!("; skipped: {}", quiz.skipped.join("; ")) }
        );
        println!(
            "  flashcards: {} ({} definitions, {} key points, {} terms)",
            deck.cards.len(),
            cards("definition"),
            cards("key_points"),
            cards("term")
        );
        println!(
            "  cheat sheet: {} headings, {} bullets, {} pictures (page setup, columns, fonts, styles read back)",
            sheet.headings, sheet.bullets, sheet.pictures
        );
        let pdfium = ctx.pdfium().await?;
        let preview = dir.join("preview");
        std::fs::create_dir_all(&preview)?;
        let n = pdfium.preview(dir.join("quiz.pdf"), preview.join("quiz"), 60.0).await?;
        print!("  previews in {}: quiz {n} pages", preview.display());
        match generate::check::docx_to_pdf(&dir.join("cheatsheet.docx"), &preview) {
            Some(pdf) => {
                let n = pdfium.preview(pdf, preview.join("cheatsheet"), 60.0).await?;
                println!(", cheat sheet {n} pages (LibreOffice; budget {})", ctx.pipeline.generate.pages);
            }
            None => println!(", cheat sheet not rendered (no soffice)"),
        }
        for q in quiz.questions.iter().take(3) {
            println!("  e.g. Q{} [{:?}] {} → {}", q.number, q.kind, q.prompt, q.answer);
        }
        if problems.is_empty() {
            println!("  checks: all passed");
        } else {
            ok = false;
            for p in problems {
                println!("  FAILED: {p}");
            }
        }
        println!();
    }
    Ok(ok)
}
