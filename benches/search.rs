//! LanceDB at scale, through Lectern's own index layer ([`lectern_document::index::VectorIndex`]):
//!
//! 1. ingest: 1,000 documents × 100 chunks (100k rows), written a document at a time as the
//!    embed stage does → rows/s;
//! 2. search latency, top-10, p50/p99: exact vector search before any index, then — after
//!    maintenance builds each kind of vector index ([`AnnKind`]) and the full-text index —
//!    ANN recall@10 against the exact results for the same queries at a few probe/refine
//!    settings per kind; with the default index, vector, text and hybrid; then `ask`
//!    (extractive) on the same table;
//! 3. bloat: 1,000 re-indexings of random documents with maintenance every 20 writes, as the
//!    embed stage does; rows, versions, fragments and bytes on disk at checkpoints.
//!
//! Texts and vectors are synthetic-from-real: real chunks of corpus PDFs (or the fixtures)
//! are embedded with the real model; each synthetic row mixes two real chunks' vectors with
//! noise and takes one real chunk's text with a random tag word. With `--text-dir`, every
//! row is a real chunk of text, embedded: `scripts/realtext.py DIR` writes 11.8 M words of
//! Debian's HTML manuals (Python, Linux, PostgreSQL, Django, SQLite, LLVM, pandas) there.
//!
//! ```text
//! make bench-search
//! cargo bench --profile dev --bench search -- [--docs 1000] [--chunks-per-doc 100] [--reindex 1000] [--queries 200] [--all-corpus | --text-dir DIR]
//! ```

#[path = "common/args.rs"]
mod args;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lectern_document::ask::{AskRequest, ask};
use lectern_document::config::Stage;
use lectern_document::config::{PipelineConfig, Settings};
use lectern_document::context::Context;
use lectern_document::engines::embedder::normalise;
use lectern_document::index::{AnnKind, AnnParams, DocumentMeta, MAINTAIN_EVERY, Mode, Query, VectorIndex};
use lectern_document::model::chunk::{Chunk, Span};
use lectern_document::stages::{Payload, ingest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// LanceDB at scale: ingest rate, search latency and recall, re-indexing bloat.
#[derive(clap::Parser)]
struct Args {
    /// Synthetic documents to ingest.
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// Chunks per document.
    #[arg(long, default_value_t = 100)]
    chunks_per_doc: usize,
    /// Random documents re-indexed in the bloat phase.
    #[arg(long, default_value_t = 1000)]
    reindex: usize,
    /// Search queries per mode (at most one per real chunk).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Base the rows on every born-digital PDF of the corpus (thousands of real chunks, so
    /// less clustered rows) instead of six.
    #[arg(long)]
    all_corpus: bool,
    /// Rows of real text instead of synthetic ones: the `.txt` files under this directory
    /// (`scripts/realtext.py`), their paragraphs packed into chunks of at most
    /// [`REAL_CHUNK_WORDS`] words, each embedded; the first docs × chunks-per-doc of them.
    #[arg(long)]
    text_dir: Option<PathBuf>,
}

/// Most words of a chunk of real text (Lectern's chunks hold at most 250 tokens).
const REAL_CHUNK_WORDS: usize = 150;

const SOURCES: [&str; 6] = [
    "pdf_text/acmart-sample-acmsmall.pdf",
    "pdf_text/pypdf-GeoBase_UML.pdf",
    "pdf_text/elsarticle-elstest-5p.pdf",
    "pdf_text/apa7-longsample.pdf",
    "pdf_text/beamer-conference-talk.pdf",
    "pdf_text/octave-refcard-a4.pdf",
];

/// Real chunk texts and their vectors.
async fn real(ctx: &Context, all_corpus: bool) -> (Vec<String>, Vec<Vec<f32>>) {
    let corpus = Path::new("../shared/corpus");
    let files: Vec<PathBuf> = if corpus.exists() && all_corpus {
        let mut all: Vec<PathBuf> =
            std::fs::read_dir(corpus.join("pdf_text")).unwrap().map(|e| e.unwrap().path()).collect();
        all.sort();
        all
    } else if corpus.exists() {
        SOURCES.iter().map(|p| corpus.join(p)).collect()
    } else {
        vec![PathBuf::from("fixtures/paper.pdf")]
    };
    let mut texts = Vec::new();
    for file in files {
        let id = ingest::submit_file(ctx, &file).await.unwrap().0;
        for stage in [Stage::Ingest, Stage::Render, Stage::Chunk] {
            lectern_document::pipeline::run_stage(ctx, stage, &Payload::document(&id)).await.unwrap();
        }
        texts.extend(lectern_document::stages::chunk::load(ctx, &id).await.unwrap().iter().map(|c| c.text.clone()));
    }
    let vectors = ctx.embedder().await.unwrap().embed(texts.clone()).await.unwrap();
    (texts, vectors)
}

/// Chunks of the text files under `dir`, in path order: paragraphs (blank-line separated)
/// packed up to [`REAL_CHUNK_WORDS`] words, a longer paragraph cut; chunks under 8 words
/// (navigation crumbs) left out; at most `limit`.
fn real_text_chunks(dir: &Path, limit: usize) -> Vec<String> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "txt") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(dir, &mut paths);
    paths.sort();
    let mut chunks = Vec::new();
    let mut push = |words: &mut Vec<&str>| {
        if words.len() >= 8 {
            chunks.push(words.join(" "));
        }
        words.clear();
    };
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current: Vec<&str> = Vec::new();
        for paragraph in text.split("\n\n") {
            for piece in paragraph.split_whitespace().collect::<Vec<_>>().chunks(REAL_CHUNK_WORDS) {
                if current.len() + piece.len() > REAL_CHUNK_WORDS {
                    push(&mut current);
                }
                current.extend(piece);
            }
        }
        push(&mut current);
    }
    chunks.truncate(limit);
    chunks
}

/// The rows: real chunks as they are (`--text-dir`), or synthetic ones mixed from them.
struct Synth {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
    rng: StdRng,
    real: bool,
}

impl Synth {
    fn document(&mut self, doc: usize, n: usize) -> (Vec<Chunk>, Vec<Vec<f32>>) {
        if self.real {
            return self.real_document(doc, n);
        }
        let mut chunks = Vec::with_capacity(n);
        let mut vectors = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (self.rng.random_range(0..self.texts.len()), self.rng.random_range(0..self.texts.len()));
            let w: f32 = self.rng.random_range(0.6..0.9);
            let mut v: Vec<f32> = self.vectors[a]
                .iter()
                .zip(&self.vectors[b])
                .map(|(x, y)| w * x + (1.0 - w) * y + self.rng.random_range(-0.02..0.02))
                .collect();
            normalise(&mut v);
            chunks.push(chunk(doc, i, format!("{} tag{}", self.texts[a], self.rng.random_range(0..10_000))));
            vectors.push(v);
        }
        (chunks, vectors)
    }

    /// Document `doc`: real chunks `doc × n ..` with their own vectors.
    fn real_document(&self, doc: usize, n: usize) -> (Vec<Chunk>, Vec<Vec<f32>>) {
        let rows = doc * n..(doc + 1) * n;
        let chunks = rows.clone().map(|r| chunk(doc, r - doc * n, self.texts[r].clone())).collect();
        (chunks, self.vectors[rows].to_vec())
    }
}

/// Chunk `i` of document `doc`, five to a page.
fn chunk(doc: usize, i: usize, text: String) -> Chunk {
    let bbox = [50.0, 100.0, 500.0, 300.0];
    Chunk {
        id: format!("d{doc:05}-c{i:04}"),
        document_id: format!("doc-{doc:05}"),
        index: i as u32,
        page: 1 + (i / 5) as u32,
        bbox,
        spans: vec![Span { page: 1 + (i / 5) as u32, bbox }],
        heading_path: vec![format!("Section {}", i / 10)],
        figures: vec![],
        tokens: 200,
        text,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latencies(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!("p50 {:>7.2} ms   p99 {:>7.2} ms", percentile(&ms, 0.5), percentile(&ms, 0.99))
}

fn main() {
    let args: Args = args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.onnx_threads = 2;
    let store = lectern_queue::storage::open(None, &settings.data_dir).await.unwrap();
    let ctx = Context::new(settings, store, PipelineConfig::builtin());
    let rows = args.docs * args.chunks_per_doc;
    let (texts, vectors) = match &args.text_dir {
        Some(dir) => {
            let texts = real_text_chunks(dir, rows);
            assert_eq!(texts.len(), rows, "{} holds only {} chunks", dir.display(), texts.len());
            let words = texts.iter().map(|t| t.split_whitespace().count()).sum::<usize>() as f64 / rows as f64;
            let t = Instant::now();
            let vectors = ctx.embedder().await.unwrap().embed(texts.clone()).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{rows} chunks of real text from {} ({words:.0} words on average) embedded in {secs:.0} s ({:.1}/s); the rows are these",
                dir.display(),
                rows as f64 / secs
            );
            (texts, vectors)
        }
        None => {
            let (texts, vectors) = real(&ctx, args.all_corpus).await;
            println!("{} real chunks embedded as the base of the synthetic rows", texts.len());
            (texts, vectors)
        }
    };
    // Spread over the real chunks, so over all the documents.
    let queries: Vec<String> = texts
        .iter()
        .step_by((texts.len() / args.queries).max(1))
        .take(args.queries)
        .map(|t| t.split_whitespace().take(12).collect::<Vec<_>>().join(" "))
        .collect();
    let query_vectors = ctx.embedder().await.unwrap().embed(queries.clone()).await.unwrap();
    let mut synth = Synth { texts, vectors, rng: StdRng::seed_from_u64(7), real: args.text_dir.is_some() };

    // The context's own index, so `ask` below reads the same table.
    let index = ctx.index().await.unwrap();

    // 1. Ingest.
    let start = Instant::now();
    for d in 0..args.docs {
        let (chunks, vectors) = synth.document(d, args.chunks_per_doc);
        index.replace_document(&meta(&chunks[0].document_id), &chunks, &vectors).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("\ningest: {rows} rows in {} upserts, {secs:.1} s → {:.0} rows/s", args.docs, rows as f64 / secs);

    // 2. Latency: exact first, then with indices.
    let search = |index: &Arc<VectorIndex>, mode: Mode, i: usize, exact: bool| {
        let index = index.clone();
        let text = queries[i].clone();
        let vector = query_vectors[i].clone();
        async move {
            let q = Query {
                collection: "bench",
                text: &text,
                vector: Some(&vector),
                top_k: 10,
                mode,
                document_ids: None,
                doc_type: None,
                exact,
            };
            let t = Instant::now();
            let hits = index.search(&q).await.unwrap();
            (t.elapsed().as_secs_f64() * 1000.0, hits.into_iter().map(|h| h.chunk_id).collect::<Vec<_>>())
        }
    };
    let n = queries.len();
    let mut exact_ms = Vec::new();
    let mut exact_ids = Vec::new();
    for i in 0..n {
        let (ms, ids) = search(&index, Mode::Vector, i, true).await;
        exact_ms.push(ms);
        exact_ids.push(ids);
    }
    println!("\nsearch top-10 over {rows} rows, {n} queries each:");
    println!("  vector, exact (no index)   {}", latencies(exact_ms));

    // Each kind of vector index, built by maintenance (the default kind last, so that it
    // stays for what follows), with a few probe/refine settings: recall against exact
    // search, and what it costs.
    let default = AnnParams::default();
    let kinds = [AnnKind::IvfPq, AnnKind::IvfSq, AnnKind::IvfHnswSq];
    for kind in kinds.into_iter().filter(|k| *k != default.kind).chain([default.kind]) {
        let sweep: Vec<AnnParams> = match kind {
            AnnKind::IvfPq => vec![(10, 1), (20, 5), (80, 40), (40, 20)],
            AnnKind::IvfSq | AnnKind::IvfHnswSq => vec![(10, 2), (20, 2), (40, 2), (80, 4)],
        }
        .into_iter()
        .map(|(nprobes, refine_factor)| AnnParams { kind, nprobes, refine_factor })
        .filter(|p| *p != default)
        .chain((kind == default.kind).then_some(default))
        .collect();
        index.set_ann(sweep[0]);
        let t = Instant::now();
        index.maintain("bench").await.unwrap();
        let stats = index.stats("bench").await.unwrap().unwrap();
        println!(
            "  maintenance (build {} + FTS, compact, prune): {:.1} s → indices {:?}",
            kind.name(),
            t.elapsed().as_secs_f64(),
            stats.indices
        );
        for ann in sweep {
            index.set_ann(ann);
            let mut ms = Vec::new();
            let mut overlap = 0;
            for (i, exact) in exact_ids.iter().enumerate().take(n) {
                let (m, ids) = search(&index, Mode::Vector, i, false).await;
                ms.push(m);
                overlap += ids.iter().filter(|id| exact.contains(id)).count();
            }
            let label = format!("vector, {} {}/{}", kind.name(), ann.nprobes, ann.refine_factor);
            let tag = if ann == default { "  (default)" } else { "" };
            println!(
                "  {label:<30} {}   recall@10 vs exact {:.3}{tag}",
                latencies(ms),
                overlap as f64 / (10 * n) as f64
            );
        }
    }
    // The same searches through a second handle that looks for other processes' commits
    // at most once a second instead of on every read.
    let lazy = Arc::new(
        VectorIndex::open_with_consistency(ctx.settings.lancedb_dir().as_path(), std::time::Duration::from_secs(1))
            .await
            .unwrap(),
    );
    for (handle, label) in [(&index, "checks every read"), (&lazy, "checks once a second")] {
        println!("  handle that {label}:");
        for (mode, label) in
            [(Mode::Vector, "vector, default index"), (Mode::Text, "text, BM25 index"), (Mode::Hybrid, "hybrid, RRF")]
        {
            let mut ms = Vec::new();
            for i in 0..n {
                ms.push(search(handle, mode, i, false).await.0);
            }
            println!("    {label:<24} {}", latencies(ms));
        }
    }

    // Ask on the same table: hybrid retrieval of 8 passages, then their sentences embedded
    // and scored against the question (extractive; no LLM).
    let mut ms = Vec::new();
    for query in queries.iter().take(50) {
        let mut req = AskRequest::new(query.clone());
        req.collection = "bench".into();
        let t = Instant::now();
        ask(&ctx, &req, &mut |_| {}).await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("  ask, extractive ({} questions)    {}", ms.len(), latencies(ms));

    // 3. Re-indexing bloat.
    println!(
        "\nre-indexing {} random documents of {} chunks, maintenance every {MAINTAIN_EVERY} writes:",
        args.reindex, args.chunks_per_doc
    );
    println!("  {:>9} {:>9} {:>9} {:>10} {:>12}", "reindexed", "rows", "versions", "fragments", "MiB on disk");
    let show = |done: usize, s: lectern_document::index::TableStats| {
        println!(
            "  {:>9} {:>9} {:>9} {:>10} {:>12.1}",
            done,
            s.rows,
            s.versions,
            s.fragments,
            s.bytes_on_disk as f64 / (1 << 20) as f64
        );
    };
    show(0, index.stats("bench").await.unwrap().unwrap());
    let start = Instant::now();
    for r in 1..=args.reindex {
        let d = synth.rng.random_range(0..args.docs);
        let (chunks, vectors) = synth.document(d, args.chunks_per_doc);
        index.replace_document(&meta(&chunks[0].document_id), &chunks, &vectors).await.unwrap();
        if (r as u64).is_multiple_of(MAINTAIN_EVERY) {
            index.maintain("bench").await.unwrap();
        }
        if r % (args.reindex / 4).max(1) == 0 {
            show(r, index.stats("bench").await.unwrap().unwrap());
        }
    }
    println!(
        "  {:.1} s, {:.1} re-indexings/s",
        start.elapsed().as_secs_f64(),
        args.reindex as f64 / start.elapsed().as_secs_f64()
    );
}

fn meta(id: &str) -> DocumentMeta<'_> {
    DocumentMeta { collection: "bench", document_id: id, doc_type: "paper", model: "minilm" }
}
