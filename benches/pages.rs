//! Pages per second of the page stages with 1 and 2 `lectern worker` processes, and peak
//! memory on a long document.
//!
//! A test PDF is put together from corpus pages (three born-digital pages for every
//! scanned one, so both the text-layer path and OCR run), submitted to a fresh SQLite
//! store, and worked through by N worker processes, each serving every queue with the
//! pipeline's concurrency. pdfium serialises its calls within a process, so rendering only
//! scales with processes. Reported: wall time from submit to done, pages/s, the ratio to one
//! process, and each worker's peak RSS (`VmHWM`).
//!
//! - `--stages front` (default): ingest, render, layout, OCR — the document-understanding
//!   half — and chunk, the stage that starts when the last page range is through.
//! - `--stages all`: the whole pipeline (chunk, embed into LanceDB, generate) as well.
//! - `--split`: instead of N processes serving every queue, three processes with the queue
//!   groups of `docker/compose.yaml` (pages, OCR, text), each one's peak RSS reported.
//! - `--export`: then `lectern export` of the processed document as Markdown and JSON, each
//!   in a process of its own: time, size and peak RSS.
//! - `--store local,s3`: each run with the data directory as the store, then with every
//!   file and the LanceDB tables in an S3 server on loopback (`scripts/s3.sh`, or
//!   `LECTERN_BENCH_S3_URL`); pages/s against the local run, disk bytes read and written
//!   per page (`/proc/<pid>/io`), and the workers' object-store requests and bytes per page.
//!
//! ```text
//! make bench-pages                      # 48 pages, 1 and 2 processes, front stages
//! cargo bench --profile dev --bench pages -- --pages 1000 --processes 1 --stages all [--split] [--export]
//! cargo bench --profile dev --bench pages -- --pages 48 --processes 1 --stages all --store local,s3
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/measure.rs"]
mod measure;

use measure::peak_rss_mib;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_document::engines::pdfium::PdfiumHost;
use pdfium_render::prelude::*;

/// Born-digital sources (taken in turn, page after page) and scans (one after every three).
const BORN_DIGITAL: [&str; 6] = [
    "pdf_text/R-intro.pdf",
    "pdf_text/gnuplot.pdf",
    "pdf_text/asymptote.pdf",
    "pdf_text/acmart-sample-acmsmall.pdf",
    "pdf_text/beamer-conference-talk.pdf",
    "pdf_text/pypdf-GeoBase_UML.pdf",
];
const SCANS: [&str; 4] = [
    "pdf_scanned/ocrmypdf-epson.pdf",
    "pdf_scanned/ocrmypdf-c03-29.pdf",
    "pdf_scanned/ocrmypdf-masks.pdf",
    "pdf_scanned/ocrmypdf-francais.pdf",
];

/// Pages per second of the page stages with N worker processes.
#[derive(clap::Parser)]
struct Args {
    /// Pages in the test PDF.
    #[arg(long, default_value_t = 48)]
    pages: u32,
    /// Worker process counts to measure, in turn (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    processes: Vec<usize>,
    /// Which stages the pipeline runs.
    #[arg(long, value_enum, default_value_t = Stages::Front)]
    stages: Stages,
    /// Three processes with the queue groups of docker/compose.yaml instead (needs --stages all).
    #[arg(long)]
    split: bool,
    /// Export the processed document as Markdown and JSON afterwards, measuring each.
    #[arg(long)]
    export: bool,
    /// Where files live, in turn: the data directory, or an S3 server on loopback.
    #[arg(long, value_delimiter = ',', default_value = "local")]
    store: Vec<StoreKind>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum StoreKind {
    Local,
    S3,
}

/// The S3 server of `--store s3`: its URL, and the environment that points a process at a
/// fresh prefix in it.
fn s3_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("LECTERN_STORE".into(), format!("s3://lectern/bench-{}", uuid::Uuid::new_v4().simple())),
        ("AWS_ENDPOINT_URL".into(), url.to_string()),
        ("AWS_ACCESS_KEY_ID".into(), "lectern".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "lectern".into()),
    ]
}

/// Disk bytes a process read and wrote (`read_bytes`, `write_bytes` of `/proc/<pid>/io`).
fn disk_io(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| io.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok());
    Some((field("read_bytes:")?, field("write_bytes:")?))
}

/// `line` without ANSI escape sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// The workers' object-store counters, summed from their "object store traffic" log lines:
/// requests (gets, puts, lists, deletes), bytes read, bytes written.
fn traffic(log: &Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut sums = (0, 0, 0);
    for line in text.lines().filter(|l| l.contains("object store traffic")) {
        // Without a terminal the log still carries colour codes around field names.
        let line = strip_ansi(line);
        let field = |name: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))?.parse::<u64>().ok()).unwrap_or(0)
        };
        sums.0 += field("gets") + field("puts") + field("lists") + field("deletes");
        sums.1 += field("bytes_read");
        sums.2 += field("bytes_written");
    }
    sums
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Stages {
    /// Ingest, render, layout, OCR and chunk.
    Front,
    /// The whole pipeline.
    All,
}

/// The worker processes of `docker/compose.yaml`: name, queues, concurrency.
const COMPOSE_WORKERS: [(&str, &[&str], &str); 3] = [
    ("pages", &["ingest", "render", "layout"], "1"),
    ("ocr", &["ocr"], "2"),
    ("text", &["chunk", "embed", "extract", "generate", "webhook"], "1"),
];

/// Builds a `pages`-page PDF from corpus pages (or the fixtures when there is no corpus).
async fn build_pdf(settings: &Settings, pages: u32, out: PathBuf) -> (u32, u32) {
    let corpus = Path::new("../shared/corpus");
    let (digital, scans): (Vec<PathBuf>, Vec<PathBuf>) = if corpus.exists() {
        (BORN_DIGITAL.iter().map(|f| corpus.join(f)).collect(), SCANS.iter().map(|f| corpus.join(f)).collect())
    } else {
        eprintln!("../shared/corpus not found: using the fixtures");
        (vec![PathBuf::from("fixtures/paper.pdf")], vec![PathBuf::from("fixtures/scan.pdf")])
    };
    let host = PdfiumHost::get(&settings.pdfium_library()).unwrap();
    host.run(move |pdfium| {
        let open = |p: &PathBuf| pdfium.load_pdf_from_file(p, None).unwrap();
        let digital: Vec<PdfDocument> = digital.iter().map(open).collect();
        let scans: Vec<PdfDocument> = scans.iter().map(open).collect();
        let mut target = pdfium.create_new_pdf().unwrap();
        let (mut next_digital, mut next_scan) = (vec![0i32; digital.len()], vec![0i32; scans.len()]);
        let mut scanned = 0;
        for n in 0..pages as i32 {
            let (source, cursor) = if n % 4 == 3 {
                scanned += 1;
                let k = (n as usize / 4) % scans.len();
                (&scans[k], &mut next_scan[k])
            } else {
                let k = (n as usize - n as usize / 4) % digital.len();
                (&digital[k], &mut next_digital[k])
            };
            let index = *cursor % source.pages().len();
            *cursor += 1;
            target.pages_mut().copy_page_from_document(source, index, n).unwrap();
        }
        target.save_to_file(&out).unwrap();
        Ok((pages, scanned))
    })
    .await
    .unwrap()
}

/// The shipped pipeline up to chunk (the first stage after OCR, which waits for every page
/// range), without the later stages and their `[queues.*]` tables.
fn front_half(shipped: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in shipped.lines() {
        if line.starts_with('[') {
            skipping = ["[queues.embed]", "[queues.generate]"].contains(&line.trim());
        }
        if line.starts_with("stages = [\"ingest\"") {
            out.push_str("stages = [\"ingest\", \"render\", \"layout\", \"ocr\", \"chunk\"]\n");
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `lectern export` of document `id` in `format` to `out`: seconds, peak RSS in MiB (its
/// `VmHWM`, sampled every 10 ms until it exits) and bytes written.
fn export(data_dir: &Path, id: &str, format: &str, out: &Path) -> (f64, f64, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lectern"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["export", id, "--format", format, "--out"])
        .arg(out)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("start lectern export");
    let mut peak = 0.0f64;
    let status = loop {
        peak = peak.max(peak_rss_mib(child.id()).unwrap_or(0.0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "lectern export --format {format} failed");
    (started.elapsed().as_secs_f64(), peak, std::fs::metadata(out).unwrap().len())
}

/// A `lectern worker` serving `queues` (all queues when empty) at `concurrency` (the
/// pipeline's when `None`).
fn start_worker(
    data_dir: &Path,
    pipeline: &Path,
    log: &Path,
    queues: &[&str],
    concurrency: Option<&str>,
    env: &[(String, String)],
) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lectern"));
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.arg("--data-dir").arg(data_dir).arg("--pipeline").arg(pipeline).arg("worker");
    for q in queues {
        command.arg("--queue").arg(q);
    }
    if let Some(c) = concurrency {
        command.arg("--concurrency").arg(c);
    }
    command
        .env("OMP_THREAD_LIMIT", "1")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
        .spawn()
        .expect("start lectern worker")
}

fn main() {
    let a: Args = args::parse();
    assert!(!a.split || a.stages == Stages::All, "--split needs --stages all (the compose groups span the pipeline)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::new(tmp.path().join("unused"));
    let pdf = tmp.path().join("bench.pdf");
    let (pages, scanned) = runtime.block_on(build_pdf(&settings, a.pages, pdf.clone()));
    let size = std::fs::metadata(&pdf).unwrap().len();
    println!("test PDF: {pages} pages ({scanned} scanned), {:.1} MiB", size as f64 / (1 << 20) as f64);

    // The pipeline as shipped, cut after chunk (stages and their queue tables) unless all
    // stages are asked for.
    let shipped = std::fs::read_to_string("jobs/pipeline.toml").unwrap();
    let pipeline_toml = if a.stages == Stages::All { shipped } else { front_half(&shipped) };
    let pipeline_path = tmp.path().join("pipeline.toml");
    std::fs::write(&pipeline_path, &pipeline_toml).unwrap();
    PipelineConfig::load(&pipeline_path).expect("bench pipeline is valid");
    let stages = if a.stages == Stages::All { "all stages" } else { "ingest, render, layout, OCR, chunk" };

    if a.split {
        println!("\n{stages}; worker processes as in docker/compose.yaml");
    } else {
        println!("\n{stages}; each process serves every queue with the pipeline's concurrency");
    }
    let s3_url = a.store.contains(&StoreKind::S3).then(|| {
        std::env::var("LECTERN_BENCH_S3_URL").unwrap_or_else(|_| {
            let out = Command::new("scripts/s3.sh").arg("start").output().expect("scripts/s3.sh start");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
    });
    println!(
        "{:>9} {:>6} {:>9} {:>8} {:>10} {:>9} {:>22}  per page",
        "processes", "store", "seconds", "pages/s", "vs 1 proc", "vs local", "peak RSS per process"
    );
    let mut one = std::collections::HashMap::new();
    let mut exports = Vec::new();
    let runs = if a.split { vec![COMPOSE_WORKERS.len()] } else { a.processes.clone() };
    for &n in &runs {
        let mut local_rate = None;
        for &kind in &a.store {
            let name = if kind == StoreKind::S3 { "s3" } else { "local" };
            let data_dir = tmp.path().join(format!("data-{n}-{name}"));
            let env = match kind {
                StoreKind::S3 => s3_env(s3_url.as_deref().expect("started")),
                StoreKind::Local => Vec::new(),
            };
            let mut settings = Settings::new(&data_dir);
            settings.models_dir = PathBuf::from("models/cache");
            if let Some((_, url)) = env.iter().find(|(k, _)| k == "LECTERN_STORE") {
                let options = env[1..].iter().zip(["aws_endpoint", "aws_access_key_id", "aws_secret_access_key"]);
                let options = options.map(|((_, v), k)| (k.to_string(), v.clone())).collect();
                settings.remote = Some(lectern_document::blob::Remote::with_options(url, options).unwrap());
            }
            let pipeline = PipelineConfig::load(&pipeline_path).unwrap();
            let log = tmp.path().join(format!("workers-{n}-{name}.log"));
            let (seconds, peaks, id, disk) = runtime.block_on(async {
                let store = lectern_queue::storage::open(None, &data_dir).await.unwrap();
                let ctx = Context::new(settings, store, pipeline);
                let started = Instant::now();
                let (id, _) = lectern_document::stages::ingest::submit_file(&ctx, &pdf).await.unwrap();
                let mut workers: Vec<Child> = if a.split {
                    COMPOSE_WORKERS
                        .iter()
                        .map(|(_, q, c)| start_worker(&data_dir, &pipeline_path, &log, q, Some(c), &env))
                        .collect()
                } else {
                    (0..n).map(|_| start_worker(&data_dir, &pipeline_path, &log, &[], None, &env)).collect()
                };
                let mut peaks = vec![0.0f64; n];
                let doc = loop {
                    for (peak, w) in peaks.iter_mut().zip(&workers) {
                        *peak = peak.max(peak_rss_mib(w.id()).unwrap_or(0.0));
                    }
                    let doc = ctx.store.document(&id).await.unwrap().unwrap();
                    if doc.is_finished() {
                        break doc;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                let seconds = started.elapsed().as_secs_f64();
                for (peak, w) in peaks.iter_mut().zip(&workers) {
                    *peak = peak.max(peak_rss_mib(w.id()).unwrap_or(0.0));
                }
                let disk = workers.iter().filter_map(|w| disk_io(w.id())).fold((0, 0), |s, d| (s.0 + d.0, s.1 + d.1));
                for w in &mut workers {
                    let _ = Command::new("kill").arg("-TERM").arg(w.id().to_string()).status();
                }
                for w in &mut workers {
                    let _ = w.wait();
                }
                assert_eq!(
                    doc.status.as_str(),
                    "done",
                    "{doc:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                (seconds, peaks, id, disk)
            });
            let rate = pages as f64 / seconds;
            let ratio = rate / *one.entry(name).or_insert(rate);
            let vs_local = local_rate.map(|r: f64| format!("{:.2}×", rate / r)).unwrap_or_else(|| "-".into());
            if kind == StoreKind::Local {
                local_rate = Some(rate);
            }
            let kib = |b: u64| b as f64 / 1024.0 / pages as f64;
            let mut per_page = format!("disk read {:.0} KiB, written {:.0} KiB", kib(disk.0), kib(disk.1));
            if kind == StoreKind::S3 {
                let (requests, read, written) = traffic(&log);
                per_page += &format!(
                    "; S3 {:.1} requests, read {:.0} KiB, written {:.0} KiB",
                    requests as f64 / pages as f64,
                    kib(read),
                    kib(written)
                );
            }
            let peaks = peaks
                .iter()
                .enumerate()
                .map(|(i, p)| match a.split {
                    true => format!("{} {p:.0} MiB", COMPOSE_WORKERS[i].0),
                    false => format!("{p:.0} MiB"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            println!("{n:>9} {name:>6} {seconds:>9.1} {rate:>8.2} {ratio:>9.2}× {vs_local:>9} {peaks:>22}  {per_page}");
            if a.export && n == runs[0] && kind == StoreKind::Local {
                for format in ["markdown", "json"] {
                    let (seconds, peak, bytes) =
                        export(&data_dir, &id, format, &tmp.path().join(format!("export.{format}")));
                    exports.push(format!(
                        "export {format}: {seconds:.1} s, {:.1} MiB written, peak RSS {peak:.0} MiB",
                        bytes as f64 / (1 << 20) as f64
                    ));
                }
            }
        }
    }
    for line in exports {
        println!("{line}");
    }
}
