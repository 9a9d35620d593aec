//! The command line (clap). Thin: parse flags, build the [`Context`], call into the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::collections::{self, ListRequest};
use crate::upload::{self, Uploaded};
use crate::{http, status, study};
use lectern_document::blob::Remote;
use lectern_document::config::{PipelineConfig, Settings, read_config_file};
use lectern_document::context::Context;
use lectern_document::index::Mode;
use lectern_document::model::workdir::TextSource;
use lectern_document::stages::ingest;
use lectern_document::stages::study::{Kind as StudyKind, Request as StudyRequest};
use lectern_document::{ask, export, housekeeping, pipeline, search};
use lectern_queue::engine::QueueSpec;
use lectern_queue::storage::{DocumentStatus, JobState, Scheduler};
use lectern_queue::{shutdown, storage};

#[derive(Debug, Parser)]
#[command(name = "lectern", version, about = "Turns documents into searchable knowledge and study material")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (also `lectern-eval`'s): where data, database and models
/// are, and how the pipeline runs.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Directory for the SQLite file, uploads, figures, LanceDB and artifacts.
    #[arg(long, global = true, env = "LECTERN_DATA_DIR", default_value = "./lectern-data")]
    pub data_dir: PathBuf,
    /// Object store for every file and the LanceDB tables: s3://bucket[/prefix] on any
    /// S3-compatible server, with endpoint, region and credentials from the AWS_* variables
    /// (or the settings file's s3_* keys). The data directory is then only this host's cache.
    /// Default: everything in the data directory.
    #[arg(long, global = true, env = "LECTERN_STORE")]
    pub store: Option<String>,
    /// Job store URL (sqlite:…). Default: the embedded SQLite file in the data directory.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory holding libraries and models fetched by scripts/setup.sh.
    #[arg(long, global = true, env = "LECTERN_MODELS_DIR", default_value = "models/cache")]
    pub models_dir: PathBuf,
    /// Pipeline definition; default: jobs/pipeline.toml as built in.
    #[arg(long, global = true, env = "LECTERN_PIPELINE")]
    pub pipeline: Option<PathBuf>,
    /// Threads ONNX Runtime uses per inference (layout, embedding).
    #[arg(long, global = true, env = "LECTERN_ONNX_THREADS", default_value_t = 1)]
    pub onnx_threads: usize,
    /// Embedding model: a directory under the models directory (see models/manifest.toml).
    #[arg(long, global = true, env = "LECTERN_EMBEDDING_MODEL", default_value = "minilm")]
    pub embedding_model: String,
    /// Tesseract languages, e.g. eng or eng+fra: the first OCR pass, and all OCR when
    /// language detection is off.
    #[arg(long, global = true, env = "LECTERN_OCR_LANG", default_value = "eng")]
    pub ocr_lang: String,
    /// Detect each document's language (text layer or first OCR pass) and OCR it with that
    /// language's tesseract data when installed.
    #[arg(long, global = true, env = "LECTERN_OCR_DETECT_LANG", default_value_t = true, action = clap::ArgAction::Set)]
    pub ocr_detect_lang: bool,
    /// Seconds a claimed job is held without a heartbeat before another worker may take it.
    #[arg(long, global = true, env = "LECTERN_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// On shutdown, seconds running jobs may take to finish before they are released.
    #[arg(long, global = true, env = "LECTERN_GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// Largest accepted upload in MiB (HTTP answers 413 above it).
    #[arg(long, global = true, env = "LECTERN_MAX_UPLOAD_MB", default_value_t = 512)]
    pub max_upload_mb: usize,
    /// Hours finished jobs are kept before workers delete them (0: keep forever).
    #[arg(long, global = true, env = "LECTERN_RETENTION_HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// With --store, the most MiB this host's cache of the store may hold; files of the
    /// least recently used documents go first, never ones used in the last 15 minutes.
    #[arg(long, global = true, env = "LECTERN_CACHE_MAX_MB", default_value_t = 4096)]
    pub cache_max_mb: u64,
    /// Minutes between `serve`'s sweeps of orphan files older than an hour (0: never;
    /// `lectern sweep` does one by hand).
    #[arg(long, global = true, env = "LECTERN_SWEEP_EVERY_MINS", default_value_t = 60)]
    pub sweep_every_mins: u64,
    /// Flush each upload to disk (fsync) before answering it. Default: on with PostgreSQL,
    /// whose commits are durable; off with SQLite, whose WAL runs at synchronous=NORMAL.
    #[arg(long, global = true, env = "LECTERN_SYNC_UPLOADS", action = clap::ArgAction::Set)]
    pub sync_uploads: Option<bool>,
    /// Key that signs webhooks (HMAC-SHA256); needed to accept uploads with a callback_url
    /// and by workers serving the webhook queue.
    #[arg(long, global = true, env = "LECTERN_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Internal hosts webhook callbacks may reach, comma-separated: addresses, CIDR blocks
    /// (10.0.0.0/8) or host names. Loopback, private and link-local targets are refused
    /// otherwise.
    #[arg(long, global = true, env = "LECTERN_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,
    /// TOML file with any of the settings above (snake_case keys, e.g. data_dir = "/srv/lectern");
    /// flags and environment variables win over it.
    #[arg(long, global = true, env = "LECTERN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: text, or one JSON object per line (filter with RUST_LOG).
    #[arg(long, global = true, env = "LECTERN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Global {
    /// Settings from these options (`serve`'s own options are set by `serve`).
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::new(&self.data_dir);
        settings.database_url = self.database_url.clone();
        settings.models_dir = self.models_dir.clone();
        settings.onnx_threads = self.onnx_threads.max(1);
        settings.ocr_languages = self.ocr_lang.clone();
        settings.ocr_detect_language = self.ocr_detect_lang;
        settings.embedding_model = self.embedding_model.clone();
        settings.lease = Duration::from_secs(self.lease_secs.max(1));
        settings.grace = Duration::from_secs(self.grace_secs);
        settings.max_upload_bytes = self.max_upload_mb << 20;
        settings.retention = (self.retention_hours > 0).then(|| Duration::from_secs(self.retention_hours * 3600));
        settings.cache_max_bytes = self.cache_max_mb << 20;
        settings.sweep_every = (self.sweep_every_mins > 0).then(|| Duration::from_secs(self.sweep_every_mins * 60));
        settings.webhook_secret = self.webhook_secret.clone().filter(|s| !s.is_empty());
        settings.webhook_allow =
            self.webhook_allow.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        let postgres = settings.database_url.as_deref().is_some_and(|u| u.starts_with("postgres"));
        settings.sync_uploads = self.sync_uploads.unwrap_or(postgres);
        settings
    }

    /// The process state over `settings`: the pipeline definition and the open job store.
    pub async fn context(&self, mut settings: Settings) -> anyhow::Result<Arc<Context>> {
        if let Some(url) = self.store.as_deref().filter(|u| !u.is_empty()) {
            settings.remote = Some(Remote::open(url)?);
        }
        let pipeline = match &self.pipeline {
            Some(path) => PipelineConfig::load(path)?,
            None => PipelineConfig::builtin(),
        };
        let store =
            storage::open(settings.database_url.as_deref(), &settings.data_dir).await.context("open the job store")?;
        Ok(Arc::new(Context::new(settings, store, pipeline)))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and, with --workers, every queue's worker pool).
    Serve {
        #[arg(long, env = "LECTERN_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Also run worker pools for all queues in this process.
        #[arg(long)]
        workers: bool,
        /// Priority of the in-process workers' CPU work, so uploads are answered promptly
        /// while documents are processed: a nice value 0–19 (0: same as the server) or
        /// `idle` (SCHED_IDLE: only CPU time the server leaves).
        #[arg(long, env = "LECTERN_WORKER_NICE", default_value = "idle")]
        worker_nice: lectern_document::engines::cpu::CpuPriority,
        /// Serve without bearer tokens (local use only).
        #[arg(long, env = "LECTERN_NO_AUTH")]
        no_auth: bool,
        /// Requests per minute per token (429 with Retry-After above it).
        #[arg(long, env = "LECTERN_RATE_PER_MINUTE", default_value_t = 6000)]
        rate_per_minute: u32,
        /// Uploads one token may stream at once.
        #[arg(long, env = "LECTERN_CONCURRENT_UPLOADS", default_value_t = 8)]
        concurrent_uploads: usize,
        /// A web origin (`https://app.example`) allowed to call the API from a browser;
        /// repeat it, or give a comma-separated list. None by default.
        #[arg(long = "cors-origin", env = "LECTERN_CORS_ORIGINS", value_delimiter = ',')]
        cors_origins: Vec<String>,
    },
    /// Create, list and revoke API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Run worker pools for the given queues.
    ///
    /// `--concurrency` values pair with `--queue` values in order
    /// (`--queue ocr --concurrency 2 --queue embed --concurrency 1`); a single value applies
    /// to every queue; without it each queue uses its setting in the pipeline.
    Worker {
        /// Queue to serve (repeatable); default: all queues.
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Jobs run at once per queue (repeatable, paired with --queue).
        #[arg(long)]
        concurrency: Vec<usize>,
        /// Priority of this worker's CPU work: a nice value 0–19 or `idle` (SCHED_IDLE),
        /// for workers sharing a machine with `lectern serve`.
        #[arg(long, default_value = "0")]
        nice: lectern_document::engines::cpu::CpuPriority,
    },
    /// Process files end to end in this process and print where the results are.
    Process {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Collection (LanceDB table) the chunks go to.
        #[arg(long, default_value = "default")]
        collection: String,
    },
    /// Enqueue files for the workers and print their document and job ids (no processing);
    /// types are checked and the same bytes in the same collection are not run twice.
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "default")]
        collection: String,
        /// Priority of the documents' stage jobs (higher first).
        #[arg(long)]
        priority: Option<i32>,
        /// Artifacts to generate, comma-separated (cheatsheet,quiz,flashcards); default: all.
        #[arg(long, value_delimiter = ',')]
        artifacts: Option<Vec<String>>,
        /// URL that gets a signed POST when each document is done or failed.
        #[arg(long)]
        callback_url: Option<String>,
        /// Process again even when the same bytes are already in the collection (else the
        /// existing document is printed, marked duplicate).
        #[arg(long)]
        reprocess: bool,
    },
    /// Delete a document: its jobs, indexed chunks, rows and work directory.
    Delete { id: String },
    /// Write a processed document's content: Markdown (headings, lists, tables, figure
    /// links), JSON (blocks with boxes, pages and heading paths) or plain text.
    Export {
        id: String,
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json", "text"])]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a document (by id) or a job (by number).
    Status {
        id: String,
        #[arg(long)]
        json: bool,
        /// Also list the document's pages: text layer or OCR, OCR language and confidence.
        #[arg(long)]
        pages: bool,
    },
    /// Cancel a job (by number) or every unfinished job of a document (by id).
    Cancel { id: String },
    /// Operate on jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Delete files in the store (uploads, documents' and study sets' files) that no row
    /// refers to any more and that are older than the given minutes.
    Sweep {
        #[arg(long, default_value_t = 60)]
        older_than_mins: u64,
    },
    /// Jobs per queue and state.
    Queues {
        #[arg(long)]
        json: bool,
    },
    /// Grade a flashcard under its collection's scheduler (SM-2: 0–5; FSRS: 1 again,
    /// 2 hard, 3 good, 4 easy) and show when it is due next.
    Review { card: String, grade: i64 },
    /// A collection's flashcards due now under its scheduler, most overdue first.
    Due {
        #[arg(long, default_value = "default")]
        collection: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Study material over a collection, on request: `lectern study --collection c --kind
    /// quiz` enqueues it (a job on the generate queue) and prints its id; `show`, `cancel`
    /// and `delete` act on one.
    #[command(args_conflicts_with_subcommands = true)]
    Study {
        #[command(subcommand)]
        command: Option<StudyCommand>,
        #[command(flatten)]
        request: StudyArgs,
    },
    /// Search indexed chunks.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// vector, text (BM25) or hybrid (reciprocal rank fusion of both).
        #[arg(long, default_value = "hybrid")]
        mode: Mode,
        #[arg(long, default_value = "default")]
        collection: String,
        /// Only these documents (repeatable).
        #[arg(long = "document")]
        documents: Vec<String>,
        /// Only documents classified as this type.
        #[arg(long)]
        doc_type: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Answer a question from the indexed documents, citing its sources (with
    /// `[generate.llm]` set, the LLM writes the answer; else the best sentences are quoted).
    Ask {
        question: String,
        #[arg(long, default_value = "default")]
        collection: String,
        /// Only these documents (repeatable).
        #[arg(long = "document")]
        documents: Vec<String>,
        /// Passages retrieved.
        #[arg(long, default_value_t = 8)]
        top_k: usize,
        #[arg(long)]
        json: bool,
    },
    /// List documents, oldest first, a page at a time (`--cursor` continues a listing).
    Documents {
        #[arg(long)]
        collection: Option<String>,
        /// queued, running, done, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        doc_type: Option<String>,
        #[arg(long, default_value_t = crate::collections::DEFAULT_LIMIT)]
        limit: i64,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List collections (documents per type, indexed chunks), or delete one.
    Collections {
        #[command(subcommand)]
        command: Option<CollectionsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect or maintain the LanceDB tables.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        #[arg(long)]
        name: String,
        /// Collection the token may use (repeatable); default: all.
        #[arg(long = "collection")]
        collections: Vec<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Delete every document of the collection: jobs, indexed chunks, rows, work
    /// directories, and its study sets.
    Delete { name: String },
    /// Show the collection's settings, or change them.
    Settings {
        name: String,
        /// Flashcard scheduler: sm2 or fsrs.
        #[arg(long, value_parser = ["sm2", "fsrs"])]
        scheduler: Option<String>,
        /// The recall probability FSRS schedules for (0.7–0.99).
        #[arg(long)]
        retention: Option<f64>,
    },
}

#[derive(Debug, clap::Args)]
pub struct StudyArgs {
    #[arg(long, default_value = "default")]
    collection: String,
    /// cheatsheet, quiz or flashcards (repeatable); default: all three.
    #[arg(long = "kind", value_parser = ["cheatsheet", "quiz", "flashcards"])]
    kinds: Vec<String>,
    /// Only these documents of the collection (repeatable); default: all processed ones.
    #[arg(long = "document")]
    documents: Vec<String>,
    /// The cheat sheet's page budget.
    #[arg(long)]
    pages: Option<u32>,
    #[arg(long)]
    questions: Option<usize>,
    #[arg(long)]
    cards: Option<usize>,
    /// Orders the quiz (same seed and documents, same quiz).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A cheat-sheet part per topic instead of per document (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Wait until the set is made (workers must be running) and print its files.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// A study set's state, progress and files.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    Cancel {
        id: String,
    },
    /// Delete a study set: its job, rows and files.
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rows, versions, fragments, size on disk and indices of a collection's table.
    Stats {
        #[arg(long, default_value = "default")]
        collection: String,
    },
    /// Build missing indices, compact files and prune old versions now.
    Optimize {
        #[arg(long, default_value = "default")]
        collection: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Revive a failed, dead or cancelled job with fresh attempts.
    Retry { id: i64 },
    /// Delete finished jobs older than the given hours now.
    Cleanup {
        #[arg(long, default_value_t = 168)]
        older_than_hours: u64,
    },
}

/// Process-wide set-up (both binaries call it first): one OpenMP thread per tesseract
/// engine, two malloc arenas, and the settings file (`--config`, `LECTERN_CONFIG`) turned
/// into environment variables where neither flags nor the environment set them.
///
/// # Safety
/// Sets environment variables: call it before any other thread exists.
pub unsafe fn prepare_process() -> anyhow::Result<()> {
    // One OpenMP thread per tesseract engine; must be set before any thread starts.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("OMP_THREAD_LIMIT", "1") };
    }
    // Two malloc arenas, not glibc's 8 per core: with tokio, pdfium, tesseract, ONNX Runtime
    // and LanceDB threads each freeing into an arena of its own, a 1,000-page run peaked at
    // 1,340 MiB RSS; with 2, at 914 MiB in the same time (benches/results/pages-2026-12-03.txt).
    // MALLOC_ARENA_MAX, when set, wins.
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: a malloc tuning call, made before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    // A settings file fills in what neither flags nor the environment set.
    // Arguments are OS strings: file names need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.to_str()?.strip_prefix("--config=").map(Into::into)))
        .or_else(|| std::env::var_os("LECTERN_CONFIG"));
    if let Some(path) = config {
        for (var, value) in read_config_file(std::path::Path::new(&path))? {
            if std::env::var_os(var).is_none() {
                // SAFETY: no other thread exists yet.
                unsafe { std::env::set_var(var, value) };
            }
        }
    }
    Ok(())
}

/// Logs on stderr in `format`; `RUST_LOG` filters them.
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lectern=info,warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut settings = cli.global.settings();
    if let Command::Serve { no_auth, rate_per_minute, concurrent_uploads, cors_origins, .. } = &cli.command {
        settings.auth_required = !no_auth;
        settings.cors_origins = cors_origins.clone();
        settings.rate_per_minute = *rate_per_minute;
        settings.concurrent_uploads = *concurrent_uploads;
    }
    let ctx = cli.global.context(settings).await?;

    match cli.command {
        Command::Serve { listen, workers, worker_nice, .. } => {
            serve(ctx, &listen, workers.then_some(worker_nice)).await
        }
        Command::Tokens { command: TokensCommand::Create { name, collections } } => {
            for c in &collections {
                lectern_document::index::table_name(c)?;
            }
            let (secret, token) = crate::auth::new_token(&name, &collections);
            ctx.store.insert_token(&token).await?;
            eprintln!("token {} ({name}) for collections {:?}; it is shown only now:", token.id, token.collections);
            println!("{secret}");
            Ok(0)
        }
        Command::Tokens { command: TokensCommand::List } => {
            for t in ctx.store.tokens().await? {
                let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{}  {:<8} {:<20} {:?}", t.id, state, t.name, t.collections);
            }
            Ok(0)
        }
        Command::Tokens { command: TokensCommand::Revoke { id } } => {
            if !ctx.store.revoke_token(&id).await? {
                bail!("no active token {id}");
            }
            println!("revoked {id}");
            Ok(0)
        }
        Command::Worker { queues, concurrency, nice } => {
            lectern_document::engines::cpu::set_cpu_priority(nice);
            let specs = queue_specs(&ctx, &queues, &concurrency)?;
            let (trigger, shutdown) = shutdown::channel();
            tokio::spawn(async move {
                shutdown::signal().await;
                trigger.trigger();
            });
            pipeline::run_workers(ctx.clone(), specs, shutdown).await;
            if ctx.blobs.remote().is_some() {
                let t = ctx.blobs.traffic();
                let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    gets = n(&t.gets),
                    puts = n(&t.puts),
                    lists = n(&t.lists),
                    deletes = n(&t.deletes),
                    bytes_read = n(&t.bytes_read),
                    bytes_written = n(&t.bytes_written),
                    "object store traffic"
                );
            }
            Ok(0)
        }
        Command::Cancel { id } => {
            if let Ok(job) = id.parse::<i64>() {
                match ctx.store.cancel_job(job).await? {
                    Some(state) => println!("job {job}: {}", state.as_str()),
                    None => bail!("no job {job}"),
                }
            } else {
                let n = ctx.store.cancel_document(&id).await?;
                println!("document {id}: cancelled ({n} unfinished jobs stopped)");
            }
            Ok(0)
        }
        Command::Jobs { command: JobsCommand::Retry { id } } => {
            if !ctx.store.retry_job(id).await? {
                bail!("job {id} is not failed, dead or cancelled (or does not exist)");
            }
            println!("job {id}: available again");
            Ok(0)
        }
        Command::Jobs { command: JobsCommand::Cleanup { older_than_hours } } => {
            let before = storage::now_ms() - (older_than_hours * 3_600_000) as i64;
            println!("deleted {} finished jobs", ctx.store.cleanup(before).await?);
            Ok(0)
        }
        Command::Review { card, grade } => {
            let r = study::review(&ctx, &card, grade).await?;
            let detail = match (&r.card.fsrs, r.scheduler) {
                (Some(f), Scheduler::Fsrs) => {
                    format!(
                        "interval {} days, stability {:.2}, difficulty {:.2}",
                        f.interval_days, f.stability, f.difficulty
                    )
                }
                _ => format!(
                    "interval {} days, ease {:.2}, repetition {}",
                    r.card.sm2.interval_days, r.card.sm2.ease, r.card.sm2.repetitions
                ),
            };
            println!(
                "{}: next review {} under {} ({detail})",
                r.card.id,
                r.due.format("%Y-%m-%d %H:%M UTC"),
                r.scheduler.name()
            );
            Ok(0)
        }
        Command::Due { collection, limit, json } => {
            let cards = study::due(&ctx, &collection, Some(limit)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cards)?);
            } else {
                for c in &cards {
                    println!("{}  p.{}  {}", c.id, c.page, c.front);
                }
                println!("{} due in {collection}", cards.len());
            }
            Ok(0)
        }
        Command::Study { command: None, request: args } => study_request(&ctx, args).await,
        Command::Study { command: Some(StudyCommand::Show { id, json }), .. } => {
            let status = study::status(&ctx, &id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_study(&status);
            }
            Ok(0)
        }
        Command::Study { command: Some(StudyCommand::Cancel { id }), .. } => {
            let state = study::cancel(&ctx, &id).await?;
            println!("study set {id}: job {}", state.map_or("gone", |s| s.as_str()));
            Ok(0)
        }
        Command::Study { command: Some(StudyCommand::Delete { id }), .. } => {
            if !study::delete(&ctx, &id).await? {
                bail!("no study set {id}");
            }
            println!("study set {id} deleted");
            Ok(0)
        }
        Command::Sweep { older_than_mins } => {
            let swept = lectern_document::orphans::sweep(&ctx, Duration::from_secs(older_than_mins * 60)).await?;
            println!("deleted {} orphan files ({} bytes)", swept.objects, swept.bytes);
            Ok(0)
        }
        Command::Queues { json } => {
            let stats = ctx.store.queue_stats(storage::now_ms()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!(
                    "{:<10} {:>9} {:>7} {:>7} {:>6} {:>5} {:>9} {:>10}",
                    "queue", "available", "running", "done", "failed", "dead", "cancelled", "oldest"
                );
                for q in stats {
                    let oldest =
                        q.oldest_available_ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
                    println!(
                        "{:<10} {:>9} {:>7} {:>7} {:>6} {:>5} {:>9} {:>10}",
                        q.queue, q.available, q.running, q.done, q.failed, q.dead, q.cancelled, oldest
                    );
                }
            }
            Ok(0)
        }
        Command::Process { files, collection } => process(ctx, &files, &collection).await,
        Command::Submit { files, collection, priority, artifacts, callback_url, reprocess } => {
            let options = ingest::UploadOptions { collection, priority, artifacts, callback_url };
            for file in &files {
                match upload::upload_file(&ctx, file, options.clone(), reprocess)
                    .await
                    .with_context(|| format!("upload {}", file.display()))?
                {
                    Uploaded::New { document_id, job_id, .. } => println!("{document_id} {job_id} {}", file.display()),
                    Uploaded::Duplicate { document, .. } => {
                        println!("{} - {} (duplicate: {})", document.id, file.display(), document.status)
                    }
                }
            }
            Ok(0)
        }
        Command::Status { id, json, pages } => show_status(&ctx, &id, json, pages).await,
        Command::Export { id, format, out } => {
            let format: export::Format = format.parse().map_err(anyhow::Error::msg)?;
            let prepared = crate::export::prepare(&ctx, &id).await?;
            let figures = format!("{}/", ctx.workdir(&id).figures_dir().display());
            match out {
                Some(path) => {
                    let file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
                    prepared.write(format, figures, std::io::BufWriter::new(file)).await?;
                }
                None => {
                    prepared.write(format, figures, std::io::BufWriter::new(std::io::stdout())).await?;
                }
            }
            Ok(0)
        }
        Command::Delete { id } => {
            if !status::delete_document(&ctx, &id).await? {
                bail!("no document {id}");
            }
            println!("deleted {id}");
            Ok(0)
        }
        Command::Documents { collection, status, doc_type, limit, cursor, json } => {
            let req = ListRequest { collection, status, doc_type, limit: Some(limit), cursor };
            let listing = collections::list_documents(&ctx, &req, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                for d in &listing.documents {
                    let doc_type = d.doc_type.as_deref().unwrap_or("-");
                    println!("{}  {:<9} {:<12} {:<10} {}", d.id, d.status.as_str(), d.collection, doc_type, d.filename);
                }
                if let Some(cursor) = listing.next_cursor {
                    println!("more: --cursor {cursor}");
                }
            }
            Ok(0)
        }
        Command::Collections { command: Some(CollectionsCommand::Delete { name }), .. } => {
            let deleted = collections::delete_collection(&ctx, &name, None).await?;
            println!("deleted {deleted} documents of {name}");
            Ok(0)
        }
        Command::Collections { command: Some(CollectionsCommand::Settings { name, scheduler, retention }), .. } => {
            let mut settings = study::settings(&ctx, &name).await?;
            if scheduler.is_some() || retention.is_some() {
                if let Some(s) = scheduler.as_deref().and_then(Scheduler::parse) {
                    settings.scheduler = s;
                }
                settings.desired_retention = retention.unwrap_or(settings.desired_retention);
                study::set_settings(&ctx, &name, &settings).await?;
            }
            println!(
                "{name}: scheduler {}, desired retention {}",
                settings.scheduler.name(),
                settings.desired_retention
            );
            Ok(0)
        }
        Command::Collections { command: None, json } => {
            let list = collections::collections(&ctx, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for c in list {
                    let types: Vec<String> = c.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
                    println!(
                        "{:<16} {:>6} documents {:>8} chunks  ({})",
                        c.name,
                        c.documents,
                        c.chunks,
                        types.join(", ")
                    );
                }
            }
            Ok(0)
        }
        Command::Index { command: IndexCommand::Stats { collection } } => {
            let stats = ctx.index().await?.stats(&collection).await?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            Ok(0)
        }
        Command::Index { command: IndexCommand::Optimize { collection } } => {
            let index = ctx.index().await?;
            index.maintain(&collection).await?;
            println!("{}", serde_json::to_string_pretty(&index.stats(&collection).await?)?);
            Ok(0)
        }
        Command::Ask { question, collection, documents, top_k, json } => {
            let mut req = ask::AskRequest::new(question);
            req.collection = collection;
            req.documents = (!documents.is_empty()).then_some(documents);
            req.top_k = top_k;
            let mut streamed = false;
            let answer = ask::ask(&ctx, &req, &mut |p| {
                if let ask::Progress::Delta(text) = p
                    && !json
                {
                    print!("{text}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    streamed = true;
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(0);
            }
            if streamed {
                println!("\n");
            }
            if let Some(e) = &answer.llm_error {
                eprintln!("LLM did not answer ({e}); quoting the passages instead.");
            }
            if !streamed {
                println!("{}\n", answer.answer);
            }
            for c in &answer.citations {
                let quote = c.sentence.as_deref().map(|s| format!("\n    \"{s}\"")).unwrap_or_default();
                println!("[{}] {} ({}), page {}{quote}", c.passage, c.name, c.document_id, c.page);
            }
            Ok(0)
        }
        Command::Search { query, top_k, mode, collection, documents, doc_type, json } => {
            let mut req = search::SearchRequest::new(query, top_k, mode);
            req.collection = collection;
            req.document_ids = (!documents.is_empty()).then_some(documents);
            req.doc_type = doc_type;
            let hits = search::search(&ctx, &req).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("no results (is anything indexed in {}?)", ctx.settings.lancedb_dir().display());
            }
            for (i, h) in hits.iter().enumerate().filter(|_| !json) {
                let snippet: String = h.hit.text.chars().take(100).collect();
                println!(
                    "{:>2}. score {:.3}  {} ({})  page {}  {}\n    {snippet}…",
                    i + 1,
                    h.hit.score,
                    h.name,
                    h.hit.document_id,
                    h.hit.page,
                    h.hit.heading_path.join(" > ")
                );
            }
            Ok(0)
        }
    }
}

fn queue_specs(ctx: &Context, queues: &[String], concurrency: &[usize]) -> anyhow::Result<Vec<QueueSpec>> {
    let names: Vec<String> = if queues.is_empty() { ctx.pipeline.queue_names() } else { queues.to_vec() };
    if concurrency.len() > 1 && concurrency.len() != names.len() {
        bail!(
            "give one --concurrency for all queues, or one per --queue ({} queues, {} values)",
            names.len(),
            concurrency.len()
        );
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, queue)| {
            let Some(config) = ctx.pipeline.queue(&queue) else {
                bail!("unknown queue {queue:?}; queues: {}", ctx.pipeline.queue_names().join(", "))
            };
            let n = concurrency.get(i).or(concurrency.first()).copied().unwrap_or(config.concurrency);
            Ok(QueueSpec { concurrency: n.max(1), queue })
        })
        .collect()
}

/// Serves the API; `workers: Some(priority)` also runs every queue's pools in this process,
/// their CPU work at that priority.
async fn serve(
    ctx: Arc<Context>,
    listen: &str,
    workers: Option<lectern_document::engines::cpu::CpuPriority>,
) -> anyhow::Result<i32> {
    if !ctx.settings.auth_required {
        tracing::warn!("serving without API tokens (--no-auth): anyone who can connect may use the API");
    } else if ctx.store.tokens().await?.iter().all(|t| t.revoked_at.is_some()) {
        tracing::warn!("no active API token: create one with `lectern tokens create --name <name>`");
    }
    let (trigger, shutdown) = shutdown::channel();
    let worker_thread = match workers {
        Some(priority) => {
            let specs = queue_specs(&ctx, &[], &[])?;
            Some(lectern_document::background::spawn_workers(ctx.clone(), specs, shutdown.clone(), 2, priority)?)
        }
        None => None,
    };
    tokio::spawn(housekeeping::sweep_orphans(ctx.clone(), shutdown.clone()));
    if worker_thread.is_none() {
        // The worker pools trim the cache themselves.
        tokio::spawn(housekeeping::trim_cache(ctx.clone(), shutdown.clone()));
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, workers = workers.is_some(), "serving");
    let mut server_shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    axum::serve(http::connections::GuardedListener::new(listener), http::router(ctx))
        .with_graceful_shutdown(async move { server_shutdown.wait().await })
        .await?;
    if let Some(thread) = worker_thread {
        tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the worker thread panicked"))?;
    }
    Ok(0)
}

async fn process(ctx: Arc<Context>, files: &[PathBuf], collection: &str) -> anyhow::Result<i32> {
    let mut docs = Vec::new();
    for file in files {
        let options = ingest::UploadOptions { collection: collection.to_string(), ..Default::default() };
        let id = match upload::upload_file(&ctx, file, options, false)
            .await
            .with_context(|| format!("upload {}", file.display()))?
        {
            Uploaded::New { document_id, .. } => document_id,
            Uploaded::Duplicate { document, .. } => document.id,
        };
        docs.push((file.clone(), id));
    }
    let (trigger, shutdown) = shutdown::channel();
    let specs = queue_specs(&ctx, &[], &[])?;
    let workers = tokio::spawn(pipeline::run_workers(ctx.clone(), specs, shutdown));

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:30!} [{bar:14}] {msg}")?.progress_chars("=> ");
    let stages = ctx.pipeline.stages.clone();
    let progress: Vec<ProgressBar> = docs
        .iter()
        .map(|(file, _)| {
            let bar = bars.add(ProgressBar::new(stages.len() as u64));
            bar.set_style(style.clone());
            bar.set_prefix(file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
        .collect();
    let mut finished = vec![false; docs.len()];
    while finished.iter().any(|f| !f) {
        for (i, (_, id)) in docs.iter().enumerate() {
            if finished[i] {
                continue;
            }
            let Some(doc) = ctx.store.document(id).await? else { continue };
            let stage = doc.stage.clone().unwrap_or_default();
            let done_stages = stages.iter().position(|s| *s == stage).unwrap_or(0) as u64;
            progress[i].set_position(if doc.status == DocumentStatus::Done {
                stages.len() as u64
            } else {
                done_stages
            });
            progress[i].set_message(format!(
                "{} {stage} (pages {}/{})",
                doc.status,
                doc.pages_done,
                doc.pages.unwrap_or(0)
            ));
            if doc.is_finished() {
                finished[i] = true;
                let msg = match &doc.error {
                    Some(e) if doc.status == DocumentStatus::Failed => format!("failed: {e}"),
                    _ => "done".to_string(),
                };
                progress[i].finish_with_message(msg);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    trigger.trigger();
    workers.await?;

    let mut failed = 0;
    for (file, id) in &docs {
        let status = status::document_status(&ctx, id).await?.context("document vanished")?;
        println!("\n{}  →  document {id}: {}", file.display(), status.document.status);
        if let Some(e) = &status.document.error {
            println!("  error: {e}");
            failed += 1;
            continue;
        }
        println!("  pages: {}  figures: {}", status.document.pages.unwrap_or(0), status.figures.len());
        for a in &status.artifacts {
            println!("  {:<16} {}", a.name, a.path);
        }
    }
    let indexed = ctx.index().await.ok();
    if let Some(index) = indexed
        && let Ok(n) = index.count(collection, None).await
    {
        println!("\nLanceDB: {n} chunks in collection {collection} ({})", ctx.settings.lancedb_dir().display());
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

async fn show_status(ctx: &Context, id: &str, json: bool, pages: bool) -> anyhow::Result<i32> {
    if let Ok(job_id) = id.parse::<i64>() {
        let job = ctx.store.job(job_id).await?.with_context(|| format!("no job {job_id}"))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&job)?);
        } else {
            println!(
                "job {}  {}  queue {}  stage {}  attempt {}/{}{}",
                job.id,
                job.state.as_str(),
                job.queue,
                job.stage,
                job.attempt,
                job.max_attempts,
                job.error.map(|e| format!("\n  error: {e}")).unwrap_or_default()
            );
        }
        return Ok(0);
    }
    let status = status::document_status(ctx, id).await?.with_context(|| format!("no document {id}"))?;
    let pages = if pages { status::document_pages(ctx, id).await?.unwrap_or_default() } else { Vec::new() };
    if json {
        let mut value = serde_json::to_value(&status)?;
        if !pages.is_empty() {
            value["pages"] = serde_json::to_value(&pages)?;
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let d = &status.document;
    println!(
        "document {}  {}  stage {}  pages {}/{}  ({})",
        d.id,
        d.status,
        d.stage.as_deref().unwrap_or("-"),
        d.pages_done,
        d.pages.unwrap_or(0),
        d.filename
    );
    if d.language.is_some() || d.doc_type.is_some() {
        println!("  language {}  type {}", d.language.as_deref().unwrap_or("-"), d.doc_type.as_deref().unwrap_or("-"));
    }
    if let Some(e) = &d.error {
        println!("  error: {e}");
    }
    for j in &status.jobs {
        let pages = j.payload.get("pages").map(|p| format!(" pages {p}")).unwrap_or_default();
        println!(
            "  job {:>5}  {:<9} {:<9} attempt {}/{}{pages}",
            j.id,
            j.stage,
            j.state.as_str(),
            j.attempt,
            j.max_attempts
        );
    }
    for a in &status.artifacts {
        println!("  artifact {:<16} {}", a.name, a.path);
    }
    if let Some(x) = &status.fields {
        let review = if x.review_needed { "review needed" } else { "checked" };
        println!("  fields ({}): {review}", x.schema);
        for (name, f) in &x.fields {
            let by = if f.found_by == lectern_document::extract::FoundBy::Llm { "  (read by the LLM)" } else { "" };
            println!("    {name:<28} {:<32} page {:>3}  confidence {:.2}{by}", f.text, f.page, f.confidence);
        }
        for line in x.missing.iter().map(|m| format!("{m}: not found")).chain(x.review.iter().cloned()) {
            println!("    - {line}");
        }
    }
    for p in &pages {
        let layer_check = p.layer_agreement.map_or(String::new(), |a| format!("  invisible layer agrees {a:.2}"));
        let source = match p.source {
            TextSource::TextLayer => format!("text layer{layer_check}"),
            TextSource::Ocr => {
                format!(
                    "OCR {} confidence {}{}",
                    p.ocr_language.as_deref().unwrap_or("-"),
                    p.ocr_confidence.map_or("-".into(), |c| format!("{c:.0}")),
                    if p.low_confidence { "  LOW" } else { "" }
                ) + &p.turn.map_or(String::new(), |d| format!("  turned {d}°"))
                    + &p.skew.map_or(String::new(), |d| format!("  deskewed {d:+.1}°"))
                    + &layer_check
            }
        };
        println!("  page {:>4}  {:>5} words  {:>2} regions  {source}", p.number, p.words, p.regions);
    }
    Ok(0)
}

/// `lectern study --collection …`: enqueue, then with `--wait` follow the set to its end.
async fn study_request(ctx: &Context, args: StudyArgs) -> anyhow::Result<i32> {
    let kinds = if args.kinds.is_empty() {
        vec![StudyKind::Cheatsheet, StudyKind::Quiz, StudyKind::Flashcards]
    } else {
        let parse = |k: &String| serde_json::from_value(serde_json::Value::String(k.clone()));
        args.kinds.iter().map(parse).collect::<Result<_, _>>()?
    };
    let request = StudyRequest {
        kinds,
        documents: (!args.documents.is_empty()).then_some(args.documents),
        pages: args.pages,
        questions: args.questions,
        cards: args.cards,
        seed: args.seed,
        topics: (!args.topics.is_empty()).then_some(args.topics),
    };
    let (id, job) = study::request(ctx, &args.collection, &request).await?;
    println!("study set {id} (job {job}) queued on the generate queue");
    if !args.wait {
        return Ok(0);
    }
    loop {
        let status = study::status(ctx, &id).await?;
        match status.state {
            Some(JobState::Available | JobState::Running) => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await
            }
            _ => {
                print_study(&status);
                return Ok(if status.state == Some(JobState::Done) { 0 } else { 1 });
            }
        }
    }
}

fn print_study(status: &study::StudyStatus) {
    let set = &status.set;
    let state = status.state.map_or("gone", |s| s.as_str());
    println!("study set {} over {}: {state}, {}/{} steps", set.id, set.collection, set.steps_done, set.steps_total);
    if let Some(e) = &status.error {
        println!("  error: {e}");
    }
    for a in &status.artifacts {
        println!("  {}  {} bytes  {}", a.name, a.size_bytes, a.path);
    }
}
