//! Generation time per document: the generate stage's parts, timed separately on real
//! documents of three kinds (a manual, a two-column paper, a slide deck; the fixture paper
//! when `../shared/corpus` is absent), median over runs:
//!
//! - `material`: sentences, sections and key terms from the chunks, their embeddings, and
//!   the centrality ranking;
//! - `plan`: cheat-sheet plan, quiz questions and flashcards ([`stages::generate::study_set`]);
//! - `write`: the .docx, the quiz PDF and the JSON files;
//! - `stage`: the whole generate stage as a worker runs it (includes the store writes);
//! - baseline, same run: the embed stage on the same document, to read generation's cost
//!   against the indexing it builds on.
//!
//! ```text
//! make bench-generate
//! cargo bench --profile dev --bench generate -- [--runs 3]
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/measure.rs"]
mod measure;

use measure::median;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lectern_document::config::Stage;
use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_document::generate::{cheatsheet, flashcards, quiz};
use lectern_document::pipeline::run_stage;
use lectern_document::stages::{self, Payload, chunk, ingest};

const DOCUMENTS: [(&str, &str); 3] = [
    ("manual", "pdf_text/R-intro.pdf"),
    ("paper", "pdf_text/elsarticle-elstest-5p.pdf"),
    ("slides", "pdf_text/beamer-conference-talk.pdf"),
];

/// Generation time per document, by part.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    repeat: args::Repeat,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(args::parse::<Args>().repeat.runs));
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (f64, T) {
    let t = Instant::now();
    let out = f.await;
    (t.elapsed().as_secs_f64() * 1000.0, out)
}

async fn run(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.onnx_threads = 2;
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let ctx = Context::new(settings, store, PipelineConfig::builtin());
    let corpus = Path::new("../shared/corpus");
    let documents: Vec<(&str, PathBuf)> = if corpus.exists() {
        DOCUMENTS.iter().map(|(kind, p)| (*kind, corpus.join(p))).collect()
    } else {
        vec![("paper", PathBuf::from("fixtures/paper.pdf"))]
    };
    let config = ctx.pipeline.generate.clone();
    println!("generation time per document, median of {runs} runs, ONNX Runtime threads 2 (ms)\n");
    println!(
        "{:<7} {:<34} {:>5} {:>6} {:>9} {:>7} {:>7} {:>8} {:>10} {:>8}",
        "kind", "document", "pages", "chunks", "material", "plan", "write", "stage", "embed(base)", "ratio"
    );
    for (kind, path) in documents {
        let id = ingest::submit_file(&ctx, &path).await.unwrap().0;
        for stage in Stage::ALL.into_iter().filter(|s| *s != Stage::Generate) {
            run_stage(&ctx, stage, &Payload::document(&id)).await.unwrap();
        }
        let chunks = chunk::load(&ctx, &id).await.unwrap();
        let figures = ctx.store.figures(&id).await.unwrap();
        let page_data = ctx.workdir(&id).load_pages().unwrap();
        let pages = page_data.len();
        let (mut material_ms, mut plan_ms, mut write_ms, mut stage_ms, mut embed_ms) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (ms, material) = timed(stages::generate::material(&ctx, &chunks, &page_data)).await;
            let material = material.unwrap();
            material_ms.push(ms);

            let t = Instant::now();
            let inputs = stages::generate::fetch_figures(
                &ctx,
                stages::generate::figure_inputs(&chunks, &figures, &page_data, &material),
            )
            .await
            .unwrap();
            let set = stages::generate::study_set(
                &id,
                "bench",
                &material,
                &inputs,
                &Default::default(),
                &config,
                chrono::Utc::now(),
            );
            plan_ms.push(t.elapsed().as_secs_f64() * 1000.0);

            let t = Instant::now();
            let docx = cheatsheet::build(&set.blocks, &config).unwrap();
            let pdf = quiz::build(&set.quiz).unwrap();
            let json = serde_json::to_vec_pretty(&set.quiz).unwrap();
            let deck = flashcards::build(set.cards, material.skipped.lines()).unwrap();
            std::hint::black_box((docx.len(), pdf.len(), json.len(), deck.len()));
            write_ms.push(t.elapsed().as_secs_f64() * 1000.0);

            let (ms, out) = timed(run_stage(&ctx, Stage::Generate, &Payload::document(&id))).await;
            out.unwrap();
            stage_ms.push(ms);
            let (ms, out) = timed(run_stage(&ctx, Stage::Embed, &Payload::document(&id))).await;
            out.unwrap();
            embed_ms.push(ms);
        }
        let (stage, embed) = (median(stage_ms), median(embed_ms));
        println!(
            "{:<7} {:<34} {:>5} {:>6} {:>9.0} {:>7.0} {:>7.0} {:>8.0} {:>10.0} {:>7.2}×",
            kind,
            path.file_name().unwrap().to_string_lossy(),
            pages,
            chunks.len(),
            median(material_ms),
            median(plan_ms),
            median(write_ms),
            stage,
            embed,
            stage / embed
        );
    }
    println!("\nratio: the whole generate stage over the embed stage on the same document, same run.");
}
