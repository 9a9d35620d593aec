//! Upload latency under load: an open-loop generator sends 1 MB PDF uploads at a fixed rate
//! to `POST /v1/documents` over loopback (with a bearer token) while every worker pool runs
//! in the same process and the queue fills up; reports p50/p99/max latency and errors.
//! Each upload differs in its last bytes, so de-duplication never short-cuts it.
//!
//! ```text
//! make bench-load
//! cargo bench --profile dev --bench ingest_load -- [--rate 200] [--seconds 10]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use lectern::config::{PipelineConfig, Settings};
use lectern::context::Context;

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (rate, seconds) = (arg("--rate", 200), arg("--seconds", 10));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        // One client token stands for many uploaders here: lift its per-token limits so the
        // bench measures the upload path, not the limiter (tests/http.rs covers the 429s).
        let mut settings = Settings::new(dir.path());
        settings.rate_per_minute = 1_000_000;
        settings.concurrent_uploads = 10_000;
        let store = lectern::storage::open(None, dir.path()).await.unwrap();
        let ctx = Arc::new(Context::new(settings, store, PipelineConfig::builtin()));
        let (secret, token) = lectern::auth::new_token("load", &[]);
        ctx.store.insert_token(&token).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = lectern::http::router(ctx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let (trigger, stop) = lectern::shutdown::channel();
        let workers = tokio::spawn(lectern::pipeline::run_workers(ctx.clone(), ctx.pipeline.stage_specs(), stop));

        // A real PDF padded to 1 MiB with a trailing comment (after %%EOF, ignored by readers).
        let mut pdf = std::fs::read("fixtures/paper.pdf").unwrap();
        pdf.extend_from_slice(b"\n%");
        pdf.resize(1 << 20, b'x');
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let total = rate * seconds;
        let interval = Duration::from_nanos(1_000_000_000 / rate);
        println!("{total} uploads of {} KiB at {rate}/s over loopback, workers running", pdf.len() / 1024);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            tokio::time::sleep_until((start + interval * i as u32).into()).await;
            let mut body = pdf.clone();
            let tag = format!("{i:016}");
            let n = body.len();
            body[n - 16..].copy_from_slice(tag.as_bytes());
            let (client, base, secret) = (client.clone(), base.clone(), secret.clone());
            tasks.push(tokio::spawn(async move {
                let form = reqwest::multipart::Form::new()
                    .part("file", reqwest::multipart::Part::bytes(body).file_name(format!("load-{i}.pdf")));
                let sent = Instant::now();
                let resp =
                    client.post(format!("{base}/v1/documents")).bearer_auth(secret).multipart(form).send().await;
                let outcome = match resp {
                    Ok(r) if r.status() == 202 => None,
                    Ok(r) => Some(format!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => Some(format!("transport: {e}")),
                };
                (sent.elapsed().as_secs_f64() * 1000.0, outcome)
            }));
        }
        let mut ms = Vec::new();
        let mut errors = 0;
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for t in tasks {
            let (m, outcome) = t.await.unwrap();
            ms.push(m);
            if let Some(kind) = outcome {
                errors += 1;
                *kinds.entry(kind.chars().take(160).collect()).or_default() += 1;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        println!(
            "sent in {elapsed:.1} s ({:.0}/s achieved): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {errors}",
            total as f64 / elapsed,
            p(0.5),
            p(0.9),
            p(0.99),
            p(1.0)
        );
        let queued = ctx.store.queue_stats(lectern::storage::now_ms()).await.unwrap();
        let waiting: i64 = queued.iter().map(|q| q.available).sum();
        println!("jobs waiting when the last upload was answered: {waiting}");
        for (kind, n) in kinds {
            println!("  error ×{n}: {kind}");
        }
        trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(60), workers).await;
    });
}
