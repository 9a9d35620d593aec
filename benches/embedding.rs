//! Embedding throughput on real chunks, in one run and with one ONNX Runtime thread budget:
//!
//! - `fastembed embed(256)`: fastembed's plain `embed(texts, Some(256))` in document order;
//! - `raw ort, 256`: tokenizers + an ort session on the same model file, batches of 256 padded
//!   to their longest text, mean pooling — the straightforward hand-written baseline;
//! - `raw ort, sorted`: the same with texts sorted by token length and cut by a token budget;
//! - `lectern`: the embed stage's [`Embedder`] (its thread, sorting and token-budget batches).
//!
//! The chunks are made by Lectern's own render and chunk stages from corpus PDFs
//! (`../shared/corpus`, or the fixtures when it is absent).
//!
//! ```text
//! make bench-embed
//! cargo bench --profile dev --bench embedding -- [--chunks 1024] [--runs 3] [--threads 2] [--only-lectern]
//! ```
//!
//! `--only-lectern` runs the embed stage alone, so the peak RSS printed at the end is its own.
//! When the corpus gives fewer chunks than `--chunks`, they are repeated.

#[path = "common/args.rs"]
mod args;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lectern_document::config::Stage;
use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_document::engines::embedder::{Embedder, length_batches, load_model, load_tokenizer, normalise};
use lectern_document::stages::{Payload, ingest};
use ndarray::Array2;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

const CORPUS_PDFS: [&str; 6] = [
    "pdf_text/acmart-sample-acmsmall.pdf",
    "pdf_text/apa7-longsample.pdf",
    "pdf_text/pypdf-GeoBase_UML.pdf",
    "pdf_text/beamer-conference-talk.pdf",
    "pdf_text/elsarticle-elstest-5p.pdf",
    "pdf_text/R-intro.pdf",
];

/// Embedding throughput: the embed stage against fastembed and raw ONNX Runtime.
#[derive(clap::Parser)]
struct Args {
    /// Chunks to embed per run.
    #[arg(long, default_value_t = 1024)]
    chunks: usize,
    #[command(flatten)]
    repeat: args::Repeat,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run the embed stage alone (so the peak RSS printed is its own).
    #[arg(long)]
    only_lectern: bool,
}

/// Real chunks: corpus PDFs through Lectern's ingest, render and chunk stages.
async fn real_chunks(settings: &Settings, want: usize) -> Vec<String> {
    let corpus = Path::new("../shared/corpus");
    let files: Vec<PathBuf> = if corpus.exists() {
        CORPUS_PDFS.iter().map(|p| corpus.join(p)).collect()
    } else {
        eprintln!("../shared/corpus not found: using the fixtures");
        vec![PathBuf::from("fixtures/paper.pdf")]
    };
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let ctx = Context::new(settings.clone(), store, PipelineConfig::builtin());
    let mut texts = Vec::new();
    for file in files {
        let id = ingest::submit_file(&ctx, &file).await.unwrap().0;
        for stage in [Stage::Ingest, Stage::Render, Stage::Chunk] {
            lectern_document::pipeline::run_stage(&ctx, stage, &Payload::document(&id)).await.unwrap();
        }
        texts
            .extend(lectern_document::stages::chunk::load(&ctx, &id).await.unwrap().iter().map(|c| c.embedding_text()));
        eprintln!("chunked {} ({} chunks so far)", file.display(), texts.len());
        if texts.len() >= want {
            break;
        }
    }
    let distinct = texts.clone();
    while texts.len() < want && !distinct.is_empty() {
        texts.extend(distinct.iter().cloned());
    }
    texts.truncate(want);
    texts
}

/// The hand-written ONNX Runtime baseline.
struct RawOrt {
    session: Session,
    tokenizer: Tokenizer,
}

impl RawOrt {
    fn load(settings: &Settings) -> Self {
        let env = lectern_document::engines::onnx::environment(&settings.onnxruntime_library()).unwrap();
        let session = Session::builder(&env)
            .unwrap()
            .with_intra_threads(settings.onnx_threads)
            .unwrap()
            .with_inter_threads(1)
            .unwrap()
            .commit_from_file(settings.embedding_model_dir().join("model.onnx"))
            .unwrap();
        let mut tokenizer = Tokenizer::from_file(settings.embedding_model_dir().join("tokenizer.json")).unwrap();
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer.with_truncation(Some(TruncationParams { max_length: 256, ..Default::default() })).unwrap();
        Self { session, tokenizer }
    }

    fn embed_batch(&mut self, texts: &[&str]) -> Vec<Vec<f32>> {
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).unwrap();
        let (n, len) = (enc.len(), enc[0].len());
        let field = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| {
            Array2::from_shape_vec((n, len), enc.iter().flat_map(|e| f(e).iter().map(|&v| v as i64)).collect()).unwrap()
        };
        let ids = field(&|e| e.get_ids());
        let mask = field(&|e| e.get_attention_mask());
        let types = field(&|e| e.get_type_ids());
        let outputs = self
            .session
            .run(ort::inputs![
                "input_ids" => Tensor::from_array(ids).unwrap(),
                "attention_mask" => Tensor::from_array(mask.clone()).unwrap(),
                "token_type_ids" => Tensor::from_array(types).unwrap(),
            ])
            .unwrap();
        let (shape, data) = outputs[0].try_extract_tensor::<f32>().unwrap();
        let dim = shape[2] as usize;
        (0..n)
            .map(|i| {
                let mut v = vec![0.0f32; dim];
                let mut count = 0.0;
                for t in 0..len {
                    if mask[[i, t]] == 1 {
                        count += 1.0;
                        let row = &data[(i * len + t) * dim..(i * len + t + 1) * dim];
                        v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                    }
                }
                v.iter_mut().for_each(|x| *x /= count);
                normalise(&mut v);
                v
            })
            .collect()
    }

    fn embed_in_order(&mut self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.chunks(256).flat_map(|b| self.embed_batch(b)).collect()
    }

    fn embed_sorted(&mut self, texts: &[&str]) -> Vec<Vec<f32>> {
        let counter = {
            let mut t = self.tokenizer.clone();
            t.with_padding(None);
            t
        };
        let lengths: Vec<usize> =
            counter.encode_batch(texts.to_vec(), true).unwrap().iter().map(|e| e.len().min(256)).collect();
        let mut out = vec![Vec::new(); texts.len()];
        for rows in length_batches(&lengths) {
            let batch: Vec<&str> = rows.iter().map(|&i| texts[i]).collect();
            for (&i, v) in rows.iter().zip(self.embed_batch(&batch)) {
                out[i] = v;
            }
        }
        out
    }
}

/// VmHWM of this process, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>()).fold(1.0, f32::min)
}

fn main() {
    let args: Args = args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.onnx_threads = args.threads;

    let texts = runtime.block_on(real_chunks(&settings, args.chunks));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let counter = load_tokenizer(&settings).unwrap();
    let tokens: Vec<usize> = refs.iter().map(|t| counter.encode(*t, true).unwrap().len().min(256)).collect();
    let mean_tokens = tokens.iter().sum::<usize>() as f64 / tokens.len() as f64;
    println!(
        "{} real chunks, mean {:.0} tokens (min {}, max {}); ONNX Runtime intra-op threads: {}; {} runs, medians",
        texts.len(),
        mean_tokens,
        tokens.iter().min().unwrap(),
        tokens.iter().max().unwrap(),
        args.threads,
        args.repeat.runs
    );

    let embedder = Embedder::start(&settings, "lectern-embed").unwrap();
    if args.only_lectern {
        for _ in 0..args.repeat.runs {
            let start = Instant::now();
            runtime.block_on(embedder.embed(texts.clone())).unwrap();
            let s = start.elapsed().as_secs_f64();
            println!("lectern embed stage: {:.1} chunks/s ({s:.2} s)", texts.len() as f64 / s);
        }
        println!("peak RSS of this process: {} MiB", peak_rss_mib());
        return;
    }
    let mut fastembed = load_model(&settings).unwrap().0;
    let mut raw = RawOrt::load(&settings);

    let names = ["fastembed embed(256)", "raw ort, 256 in order", "raw ort, sorted", "lectern embed stage"];
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut outputs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); names.len()];
    for _ in 0..args.repeat.runs {
        for (i, out) in outputs.iter_mut().enumerate() {
            let start = Instant::now();
            *out = match i {
                0 => {
                    let mut v = fastembed.embed(&refs, Some(256)).unwrap();
                    v.iter_mut().for_each(|x| normalise(x));
                    v
                }
                1 => raw.embed_in_order(&refs),
                2 => raw.embed_sorted(&refs),
                _ => runtime.block_on(embedder.embed(texts.clone())).unwrap(),
            };
            seconds[i].push(start.elapsed().as_secs_f64());
            eprintln!("{}: {:.2} s", names[i], start.elapsed().as_secs_f64());
        }
    }
    let rate: Vec<f64> = seconds.iter().map(|s| texts.len() as f64 / median(s.clone())).collect();
    println!("\n{:<24} {:>10} {:>12} {:>14} {:>12}", "contender", "chunks/s", "median s", "lectern ×", "min cosine");
    for (i, name) in names.iter().enumerate() {
        println!(
            "{:<24} {:>10.1} {:>12.3} {:>14.2} {:>12.5}",
            name,
            rate[i],
            median(seconds[i].clone()),
            rate[3] / rate[i],
            min_cosine(&outputs[i], &outputs[0])
        );
    }
    println!("\n`lectern ×` is lectern's chunks/s divided by the contender's; `min cosine` compares each");
    println!("contender's vectors with fastembed's for the same chunk (1 = identical).");
}
