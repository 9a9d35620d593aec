//! A course's study set: study material over a collection of three corpus documents (a
//! manual, a two-column paper, a slide deck; the fixtures when `../shared/corpus` is
//! absent), as `POST /v1/collections/{c}/study` makes it.
//!
//! - `study job`: the whole study job (read every document's chunks and pages, embed and
//!   rank their sentences, plan and write cheat sheet, quiz, deck and exports) in this
//!   process, median of `--runs`; baseline, same run: the per-document generate stage on
//!   the same three documents, summed — what the three documents' own material costs.
//! - `worker`: the same study set made by a separate `lectern worker --queue generate`
//!   process (ONNX Runtime threads 2, as above): wall time from request to done, split
//!   into the wait until the worker claims it (its start-up) and the run, and the worker's
//!   peak RSS (`VmHWM`).
//! - checks on the worker's set: the cheat sheet's pages in LibreOffice against its budget,
//!   sentences repeated on it, documents with a part, questions and cards; the quiz's
//!   per-document checks (answer on its cited page, no duplicates, valid distractors); the
//!   .apkg read back by Python's sqlite3 (notes and cards against the deck), and imported
//!   into an empty collection by Anki's own importer (`benches/anki_import.py`, the `anki`
//!   package) when `LECTERN_PEERS_PYTHON` names the peers' venv.
//!
//! ```text
//! make bench-course
//! cargo bench --profile dev --workspace --bench course -- [--runs 3]
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/measure.rs"]
mod measure;

use measure::{median, peak_rss_mib};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lectern_document::config::{GenerateConfig, PipelineConfig, Settings, Stage};
use lectern_document::context::Context;
use lectern_document::generate::{check, flashcards::Deck, quiz::Quiz};
use lectern_document::model::workdir::{Page, read_json};
use lectern_document::pipeline::run_stage;
use lectern_document::stages::study::{self, Kind, Request};
use lectern_document::stages::{Payload, ingest};
use lectern_queue::storage::{DocumentStatus, JobState};

const DOCUMENTS: [&str; 3] =
    ["pdf_text/R-intro.pdf", "pdf_text/elsarticle-elstest-5p.pdf", "pdf_text/beamer-conference-talk.pdf"];
const FIXTURES: [&str; 3] = ["fixtures/paper.pdf", "fixtures/columns.pdf", "fixtures/scan.pdf"];

#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    repeat: args::Repeat,
}

/// `lectern worker` on `data_dir` with `args` (every queue when empty), logging to `log`.
fn start_worker(data_dir: &Path, log: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lectern"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--onnx-threads", "2", "worker"])
        .args(args)
        .env("OMP_THREAD_LIMIT", "1")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
        .spawn()
        .expect("start lectern worker")
}

fn stop(worker: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
    let _ = worker.wait();
}

fn request() -> Request {
    Request {
        kinds: vec![Kind::Cheatsheet, Kind::Quiz, Kind::Flashcards],
        documents: None,
        pages: None,
        questions: Some(15),
        cards: Some(40),
        seed: 1,
        topics: None,
    }
}

fn main() {
    let runs = args::parse::<Args>().repeat.runs;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(runs));
}

async fn run(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.onnx_threads = 2;
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let ctx = Context::new(settings, store, PipelineConfig::builtin());
    let corpus = Path::new("../shared/corpus");
    let files: Vec<PathBuf> = if corpus.exists() {
        DOCUMENTS.iter().map(|p| corpus.join(p)).collect()
    } else {
        FIXTURES.iter().map(PathBuf::from).collect()
    };
    // The documents go through the pipeline in a worker process, as uploads would.
    let mut ids = Vec::new();
    for path in &files {
        ids.push(ingest::submit_file(&ctx, path).await.unwrap().0);
    }
    let log = dir.path().join("worker.log");
    let mut pipeline = start_worker(dir.path(), &log, &[]);
    let started = Instant::now();
    for id in &ids {
        loop {
            let doc = ctx.store.document(id).await.unwrap().unwrap();
            if doc.is_finished() {
                assert_eq!(doc.status, DocumentStatus::Done, "{doc:?}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "documents not processed in 30 min");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    stop(&mut pipeline);
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    println!("course: {}\n", names.join(", "));

    // The study job in this process, against the per-document generate stages.
    let (mut study_ms, mut generate_ms) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let id = format!("bench-{}", uuid::Uuid::now_v7().simple());
        let body = serde_json::to_value(request()).unwrap();
        ctx.store.insert_study_set(&id, "default", &body, &study::job(&ctx.pipeline, &id).unwrap()).await.unwrap();
        let t = Instant::now();
        study::run(&ctx, &study::Payload { study_id: id.clone() }).await.unwrap();
        study_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Run here, not by a worker: its job must not wait for the worker below.
        ctx.store.delete_study_set(&id).await.unwrap();
        let t = Instant::now();
        for doc in &ids {
            run_stage(&ctx, Stage::Generate, &Payload::document(doc)).await.unwrap();
        }
        generate_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (study_ms, generate_ms) = (median(study_ms), median(generate_ms));
    println!("median of {runs} runs, ONNX Runtime threads 2 (ms)");
    println!("{:<44} {:>9}", "study job over the three documents", format!("{study_ms:.0}"));
    println!("{:<44} {:>9}", "baseline: generate stage of each, summed", format!("{generate_ms:.0}"));
    println!("{:<44} {:>8.2}×\n", "ratio", study_ms / generate_ms);

    // The same request made by a worker process: wall time and its peak memory.
    let mut worker = start_worker(dir.path(), &log, &["--queue", "generate", "--concurrency", "1"]);
    let id = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let body = serde_json::to_value(request()).unwrap();
    let started = Instant::now();
    let job =
        ctx.store.insert_study_set(&id, "default", &body, &study::job(&ctx.pipeline, &id).unwrap()).await.unwrap();
    let mut peak = 0.0f64;
    loop {
        peak = peak.max(peak_rss_mib(worker.id()).unwrap_or(0.0));
        let state = ctx.store.job(job).await.unwrap().unwrap().state;
        if !matches!(state, JobState::Available | JobState::Running) {
            assert_eq!(state, JobState::Done, "see {}", log.display());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the worker took over 15 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    peak = peak.max(peak_rss_mib(worker.id()).unwrap_or(0.0));
    stop(&mut worker);
    let done = ctx.store.job(job).await.unwrap().unwrap();
    let (claimed, ran) = match (done.started_at, done.finished_at) {
        (Some(s), Some(f)) => ((s - done.created_at) as f64 / 1000.0, (f - s) as f64 / 1000.0),
        _ => (f64::NAN, f64::NAN),
    };
    println!(
        "worker process (lectern worker --queue generate): {wall:.1} s from request to done \
         (last attempt, {} of {}, claimed after {claimed:.1} s, ran {ran:.1} s), peak RSS {peak:.0} MiB (goal < 1024)",
        done.attempt, done.max_attempts
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in log_text.lines().filter(|l| l.contains("job failed") || l.contains("retry")).take(3) {
        println!("  worker log: {line}");
    }
    println!();

    // Checks on the worker's set.
    let artifacts = ctx.store.study_artifacts(&id).await.unwrap();
    let file = |name: &str| ctx.blobs.path(&artifacts.iter().find(|a| a.name == name).unwrap().path);
    let quiz: Quiz = read_json(&file("quiz.json")).unwrap();
    let deck: Deck = read_json(&file("flashcards.json")).unwrap();
    let mut pages: HashMap<String, Vec<Page>> = HashMap::new();
    for doc in &ids {
        pages.insert(doc.clone(), ctx.workdir(doc).load_pages().unwrap());
    }
    let by_name: HashMap<&str, &str> = names.iter().map(String::as_str).zip(ids.iter().map(String::as_str)).collect();
    let problems = check::check_with(
        &quiz,
        &deck,
        |q| pages.get(q.document_id.as_deref()?).map(Vec::as_slice),
        |c| pages.get(*by_name.get(c.document.as_deref()?)?).map(Vec::as_slice),
    );
    let docx = file("cheatsheet.docx");
    let mut xml = String::new();
    zip::ZipArchive::new(std::fs::File::open(&docx).unwrap())
        .unwrap()
        .by_name("word/document.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    let paragraphs: Vec<String> = roxmltree::Document::parse(&xml)
        .unwrap()
        .descendants()
        .filter(|n| n.tag_name().name() == "p")
        .map(|p| p.descendants().filter(|n| n.tag_name().name() == "t").filter_map(|t| t.text()).collect())
        .collect();
    let bullets: Vec<&String> = paragraphs.iter().filter(|p| p.starts_with("• ")).collect();
    let repeated = bullets.len() - bullets.iter().collect::<HashSet<_>>().len();
    let budget = GenerateConfig::default().pages;
    let rendered = match check::docx_to_pdf(&docx, dir.path()) {
        Some(pdf) => {
            let pdfium = ctx.pdfium().await.unwrap();
            let n = pdfium
                .run(move |p| {
                    lectern_document::engines::pdfium::page_count(&lectern_document::engines::pdfium::open_pdf(
                        p, &pdf,
                    )?)
                })
                .await
                .unwrap();
            n.to_string()
        }
        None => "? (no soffice)".into(),
    };
    println!(
        "cheat sheet: {rendered} pages in LibreOffice (budget {budget}), {} sentences, {repeated} repeated",
        bullets.len()
    );
    println!("{:<34} {:>5} {:>9} {:>6}", "document", "part", "questions", "cards");
    for (name, doc) in names.iter().zip(&ids) {
        let part = paragraphs.iter().any(|p| p == name);
        let questions = quiz.questions.iter().filter(|q| q.document_id.as_deref() == Some(doc.as_str())).count();
        let cards = deck.cards.iter().filter(|c| c.document.as_deref() == Some(name.as_str())).count();
        println!("{name:<34} {:>5} {questions:>9} {cards:>6}", if part { "yes" } else { "NO" });
    }
    let kinds: Vec<String> = ["easy", "medium", "hard"]
        .iter()
        .map(|d| format!("{d} {}", quiz.questions.iter().filter(|q| q.difficulty.as_deref() == Some(d)).count()))
        .collect();
    println!("quiz: {} questions ({}), checks: {problems:?}", quiz.questions.len(), kinds.join(", "));
    let out =
        Command::new("python3").arg("tests/end_to_end/read_apkg.py").arg(file("flashcards.apkg")).output().unwrap();
    let anki: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    println!(
        "deck: {} cards ({} figure); .apkg read by Python's sqlite3: {} notes, {} cards, {} media files",
        deck.cards.len(),
        deck.cards.iter().filter(|c| c.kind == "figure").count(),
        anki["notes"].as_array().map_or(0, Vec::len),
        anki["cards"].as_array().map_or(0, Vec::len),
        anki["media"].as_object().map_or(0, |m| m.len())
    );
    // Anki's own importer, when the peers' venv is given (make bench-course does).
    match std::env::var("LECTERN_PEERS_PYTHON") {
        Ok(python) => {
            let out = Command::new(python).arg("benches/anki_import.py").arg(file("flashcards.apkg")).output().unwrap();
            let report = String::from_utf8_lossy(if out.status.success() { &out.stdout } else { &out.stderr });
            println!("imported by Anki's own importer (anki 26.9.3): {}", report.trim());
        }
        Err(_) => println!("Anki's importer not run: set LECTERN_PEERS_PYTHON=$(scripts/peers.sh)"),
    }
}
