//! Upload latency under load: an open-loop generator sends 1 MB PDF uploads at a fixed rate
//! to `POST /v1/documents` over loopback (with a bearer token) while every worker pool runs
//! in the same process, as `lectern serve --workers` runs them, and the queue fills up.
//! Reports p50/p99/max latency and errors for each setting compared, in the same run: the
//! workers' CPU priority (`--nice`: 0 = same as the server, 0–19, `idle` = SCHED_IDLE,
//! `none` = no workers) and whether uploads are fsync'd before the answer (`--sync`).
//!
//! The generator runs on a runtime and threads of its own, the server on another (2
//! threads, as `lectern serve`), the workers on theirs ([`lectern_document::background`]).
//! Each upload differs in its last bytes, so de-duplication never short-cuts it.
//! Each setting runs in a child process of its own (pdfium's owner thread is one per
//! process and keeps the priority it starts with), after `sync` and a 3 s pause so no
//! setting inherits the dirty pages of the last; settings alternate, `--runs` times, and
//! the median p99 of each is reported. `--store local,s3` compares the data directory with
//! an S3 server on loopback (`scripts/s3.sh`, or `LECTERN_BENCH_S3_URL`) holding the uploads.
//!
//! ```text
//! make bench-load
//! cargo bench --profile dev --bench ingest_load -- [--rate 200] [--seconds 10] [--runs 3] [--nice none,10,idle] [--sync false,true] [--store local,s3]
//! ```

#[path = "common/args.rs"]
mod args;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_document::engines::cpu::CpuPriority;

/// Upload latency under load, for each worker priority and upload sync setting.
#[derive(clap::Parser)]
struct Args {
    /// Uploads per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[command(flatten)]
    repeat: args::Repeat,
    /// Whether uploads are fsync'd before the answer (comma-separated settings to compare).
    #[arg(long, value_delimiter = ',', default_value = "false")]
    sync: Vec<bool>,
    /// Workers' CPU priority: 0-19, idle (SCHED_IDLE) or none (no workers); comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none,10,idle")]
    nice: Vec<String>,
    /// Where uploads are stored: local (the data directory) or s3; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "local")]
    store: Vec<String>,
    /// Internal: run one setting (the first --sync and --nice values) in this process.
    #[arg(long, hide = true)]
    child: bool,
}

struct Outcome {
    ms: Vec<f64>,
    errors: Vec<String>,
    elapsed: f64,
    waiting: i64,
    /// Jobs the workers finished during the load, and those that failed (with one reason).
    done: i64,
    failed: i64,
    failure: Option<String>,
}

fn main() {
    let args: Args = args::parse();
    let (rate, seconds) = (args.rate, args.seconds);
    if args.child {
        return child(rate, seconds, args.sync[0], &args.nice[0], &args.store[0]);
    }
    if args.store.iter().any(|s| s == "s3") && std::env::var_os("LECTERN_BENCH_S3_URL").is_none() {
        let out = std::process::Command::new("scripts/s3.sh").arg("start").output().expect("scripts/s3.sh start");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // SAFETY: no other thread runs yet.
        unsafe { std::env::set_var("LECTERN_BENCH_S3_URL", String::from_utf8(out.stdout).unwrap().trim()) };
    }
    let runs = args.repeat.runs;
    println!(
        "{} uploads of 1024 KiB at {rate}/s over loopback, workers running; settings alternated, {runs} runs each",
        rate * seconds
    );
    let mut p99s: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        for store in &args.store {
            for sync in &args.sync {
                for nice in &args.nice {
                    // Each setting starts with no dirty pages left by the one before.
                    // SAFETY: sync(2) takes no arguments and cannot fail.
                    unsafe { libc::sync() };
                    std::thread::sleep(Duration::from_secs(3));
                    let out = std::process::Command::new(std::env::current_exe().unwrap())
                        .args(["--child", "--rate", &rate.to_string(), "--seconds", &seconds.to_string()])
                        .args(["--nice", nice, "--sync", &sync.to_string(), "--store", store])
                        .output()
                        .unwrap();
                    let text = String::from_utf8_lossy(&out.stdout);
                    print!("{text}");
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    let p99 = text.split("p99 ").nth(1).and_then(|t| t.split(' ').next()).unwrap().parse().unwrap();
                    let key = format!("workers {nice}, sync_uploads {sync}, store {store}");
                    match p99s.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(p99),
                        None => p99s.push((key, vec![p99])),
                    }
                }
            }
        }
    }
    println!("median p99 over the runs:");
    for (key, mut v) in p99s {
        v.sort_by(f64::total_cmp);
        println!("  {key:<50} {:>8.2} ms   (runs: {v:.2?})", v[v.len() / 2]);
    }
}

/// Runs one setting in this process (pdfium's thread keeps the priority it starts with).
fn child(rate: u64, seconds: u64, sync: bool, nice: &str, store: &str) {
    // A real PDF padded to 1 MiB with a trailing comment (after %%EOF, ignored by readers).
    let mut pdf = std::fs::read("fixtures/paper.pdf").unwrap();
    pdf.extend_from_slice(b"\n%");
    pdf.resize(1 << 20, b'x');
    // "none": no workers at all, the server's own floor.
    let nice: Option<CpuPriority> = (nice != "none").then(|| nice.parse().expect("--nice takes 0-19, idle or none"));
    let remote = (store == "s3").then(|| {
        let url = std::env::var("LECTERN_BENCH_S3_URL").expect("the parent starts the S3 server");
        let options =
            [("aws_endpoint", url.as_str()), ("aws_access_key_id", "lectern"), ("aws_secret_access_key", "lectern")];
        let options = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let prefix = format!("s3://lectern/load-{}", uuid::Uuid::new_v4().simple());
        lectern_document::blob::Remote::with_options(&prefix, options).unwrap()
    });
    let o = run(&pdf, rate, seconds, nice, sync, remote);
    let mut ms = o.ms;
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "workers {:<7}, sync_uploads {sync:<5}, store {store:<5}: sent in {:.1} s ({:.0}/s): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}; jobs done during the load {}, waiting at the end {}",
        nice.map_or("none".into(), |n| n.to_string()),
        o.elapsed,
        ms.len() as f64 / o.elapsed,
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0),
        o.errors.len(),
        o.done,
        o.waiting
    );
    // Workers whose jobs fail at once do no work, and uploads then look fast: such a run
    // measures nothing (it happened with a build that lacked the lectern-pdfium program).
    assert!(
        o.failed == 0,
        "{} jobs failed during the load, so the workers did no real work: {:?}",
        o.failed,
        o.failure
    );
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &o.errors {
        *kinds.entry(e.as_str()).or_default() += 1;
    }
    for (kind, n) in kinds {
        println!("  error ×{n}: {kind}");
    }
}

/// One setting: a fresh data directory, server and workers; the load; then shutdown.
fn run(
    pdf: &[u8],
    rate: u64,
    seconds: u64,
    nice: Option<CpuPriority>,
    sync: bool,
    remote: Option<lectern_document::blob::Remote>,
) -> Outcome {
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One client token stands for many uploaders here: lift its per-token limits so the
    // bench measures the upload path, not the limiter (tests/http.rs covers the 429s).
    let mut settings = Settings::new(dir.path());
    settings.rate_per_minute = 1_000_000;
    settings.concurrent_uploads = 10_000;
    settings.sync_uploads = sync;
    settings.remote = remote;
    settings.grace = Duration::from_secs(1);
    let (ctx, base, secret) = server.block_on(async {
        let store = lectern_queue::storage::open(None, dir.path()).await.unwrap();
        let ctx = Arc::new(Context::new(settings, store, PipelineConfig::builtin()));
        let (secret, token) = lectern::auth::new_token("load", &[]);
        ctx.store.insert_token(&token).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = lectern::http::router(ctx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (ctx, base, secret)
    });
    let (trigger, stop) = lectern_queue::shutdown::channel();
    let workers = nice.map(|nice| {
        lectern_document::background::spawn_workers(ctx.clone(), ctx.pipeline.stage_specs(), stop, 2, nice).unwrap()
    });

    let pdf = pdf.to_vec();
    let generator = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(load(pdf, base, secret, rate, seconds))
    });
    let (ms, errors, elapsed) = generator.join().unwrap();
    let (waiting, done, failed, failure) = server.block_on(async {
        let queued = ctx.store.queue_stats(lectern_queue::storage::now_ms()).await.unwrap();
        let failed: i64 = queued.iter().map(|q| q.failed + q.dead).sum();
        let failure = match failed {
            0 => None,
            _ => ctx.store.recent_documents(i64::MAX).await.unwrap().into_iter().find_map(|d| d.error),
        };
        (queued.iter().map(|q| q.available).sum(), queued.iter().map(|q| q.done).sum(), failed, failure)
    });
    trigger.trigger();
    if let Some(workers) = workers {
        workers.join().unwrap();
    }
    server.shutdown_timeout(Duration::from_secs(5));
    Outcome { ms, errors, elapsed, waiting, done, failed, failure }
}

/// Sends `rate × seconds` uploads on schedule (open loop: a slow answer does not delay the
/// next request); returns each one's latency in ms, the errors, and the seconds taken.
async fn load(pdf: Vec<u8>, base: String, secret: String, rate: u64, seconds: u64) -> (Vec<f64>, Vec<String>, f64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let mut body = pdf.clone();
        let n = body.len();
        body[n - 16..].copy_from_slice(format!("{i:016}").as_bytes());
        let (client, base, secret) = (client.clone(), base.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(body).file_name(format!("load-{i}.pdf")));
            let sent = Instant::now();
            let resp = client.post(format!("{base}/v1/documents")).bearer_auth(secret).multipart(form).send().await;
            let error = match resp {
                Ok(r) if r.status() == 202 => None,
                Ok(r) => Some(format!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default())),
                Err(e) => Some(format!("transport: {e}")),
            };
            (sent.elapsed().as_secs_f64() * 1000.0, error)
        }));
    }
    let (mut ms, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        let (m, error) = t.await.unwrap();
        ms.push(m);
        errors.extend(error.map(|e| e.chars().take(160).collect()));
    }
    (ms, errors, start.elapsed().as_secs_f64())
}
