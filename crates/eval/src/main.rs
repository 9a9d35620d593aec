//! `lectern-eval`: quality measurements on real documents (see the crate docs). Takes the
//! same global options as `lectern` (`--data-dir`, `--models-dir`, …).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "lectern-eval", version, about = "Quality measurements of Lectern on real documents")]
struct Cli {
    #[command(flatten)]
    global: lectern::cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Process files, check their quiz and flashcards against the cited pages (answers on
    /// the page, no duplicates, distinct distractors) and render previews to look at.
    Study {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Study material against the author's key terms (book index, paper keywords): term
    /// precision, common-word blanks, items from front or back matter, malformed fronts.
    StudyTerms {
        #[arg(long, default_value = "benches/quality/study_terms.toml")]
        set: PathBuf,
        /// Directory the set's document paths are relative to.
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
    },
    /// Recall@k of vector, text and hybrid search over a question set.
    Retrieval {
        /// Question set (TOML: documents and questions with expected pages).
        #[arg(long, default_value = "benches/quality/retrieval_questions.toml")]
        questions: PathBuf,
        /// Directory the question set's document paths are relative to.
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
        #[arg(long, default_value_t = 5)]
        k: usize,
    },
    /// Extractive answers over a question set: answer sentence in the top 1 and top 3,
    /// out-of-scope questions answered "not found", latency; per "not found" threshold.
    Ask {
        /// Question set (TOML: documents, questions with words of the answering sentence,
        /// out-of-scope questions).
        #[arg(long, default_value = "benches/quality/ask_questions.toml")]
        questions: PathBuf,
        /// Directory the question set's document paths are relative to.
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
        /// Also try other weights of the sentence scoring.
        #[arg(long)]
        sweep: bool,
    },
    /// Figure recall on corpus pages whose figures were counted by hand.
    Figures {
        #[arg(long, default_value = "benches/quality/figures.toml")]
        truth: PathBuf,
        /// Directory the truth file's paths are relative to.
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
    },
    /// OCR decisions on every PDF of a corpus (against its manifest's has_text_layer) and
    /// OCR character error rate on born-digital pages rendered to images.
    Ocr {
        /// Directory with manifest.tsv.
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
        /// Born-digital pages per document to OCR for the error rate.
        #[arg(long, default_value_t = 3)]
        pages: usize,
        /// Write each page's reference and OCR text (as compared) into this directory.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Mutation fuzzing of one of Lectern's parsers (sniff, docx, pptx, image, page-json,
    /// citations, sentences); panics and slow inputs are saved in `--out`.
    Fuzz {
        target: String,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value = "fuzz")]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { lectern::cli::prepare_process()? };
    let cli = Cli::parse();
    lectern::cli::init_logs(cli.global.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ok = runtime.block_on(run(cli))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Fuzz { target, seconds, out, seed } = &cli.command {
        let (target, seconds, out, seed) = (target.clone(), *seconds, out.join(target), *seed);
        let (_, panics, slow) =
            tokio::task::spawn_blocking(move || lectern_eval::fuzz::run(&target, seconds, &out, seed)).await??;
        return Ok(panics == 0 && slow == 0);
    }
    let ctx = cli.global.context(cli.global.settings()).await?;
    match cli.command {
        Command::Study { files } => lectern_eval::study(ctx, &files).await,
        Command::StudyTerms { set, corpus } => lectern_eval::study_terms::run(ctx, &set, &corpus).await,
        Command::Retrieval { questions, corpus, k } => {
            lectern_eval::retrieval(ctx, &questions, &corpus, k).await.map(|_| true)
        }
        Command::Ask { questions, corpus, sweep } => {
            lectern_eval::ask::run(ctx, &questions, &corpus, sweep).await.map(|_| true)
        }
        Command::Figures { truth, corpus } => lectern_eval::figures::run(ctx, &truth, &corpus).await.map(|_| true),
        Command::Ocr { corpus, pages, dump } => {
            lectern_eval::ocr::run(ctx, &corpus, pages.max(1), dump.as_deref()).await.map(|_| true)
        }
        Command::Fuzz { .. } => unreachable!("run above"),
    }
}
