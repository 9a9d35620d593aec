//! Document understanding against its plain baselines, on the same pages in one run:
//!
//! - OCR: the OCR stage's [`recognize`] (in process, one engine reused, PNG decoded from
//!   disk as the stage does) vs the `tesseract` CLI on the same 300-DPI PNG (`tsv` output),
//!   both with one OpenMP thread. CPU seconds per page: this thread's for ours, the child's
//!   for the CLI. Goal: ≤ 0.85×. The CLI runs twice: with its defaults, and with our
//!   [`ENGINE_VARIABLES`] (so the gain from in-process reuse shows apart from the gain
//!   from settings); "CER vs CLI" is how far our text is from the default CLI's (both
//!   normalised as the OCR eval does: our stage joins words hyphenated at a line end).
//! - Layout: [`LayoutModel::detect`] (resize, normalise, inference, box decoding) vs one
//!   raw ONNX Runtime `run` of the same model on an input prepared outside the timing.
//!   Goal: ≤ 1.1×.
//!
//! Pages come from `../shared/corpus` (scans and born-digital pages rendered to images),
//! or from the fixtures when it is absent.
//!
//! ```text
//! make bench-document
//! cargo bench --profile dev -p lectern-eval --bench document -- [--runs 3] [--lang eng]
//! ```

#[path = "common/args.rs"]
mod args;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::RgbImage;
use lectern_document::config::Settings;
use lectern_document::engines::layout::LayoutModel;
use lectern_document::engines::pdfium::{LAYOUT_DPI, OCR_DPI, PdfiumHost};
use lectern_document::engines::tesseract::{ENGINE_VARIABLES, line_images, recognize};
use lectern_eval::ocr::{cer, normalise};
use ort::session::Session;
use ort::value::Tensor;
use pdfium_render::prelude::*;

/// (file, 1-based page): scans first, then born-digital pages (OCR'd as images here).
const CORPUS_PAGES: [(&str, i32); 8] = [
    ("pdf_scanned/ocrmypdf-epson.pdf", 1),
    ("pdf_scanned/ocrmypdf-masks.pdf", 1),
    ("pdf_scanned/ocrmypdf-c03-29.pdf", 1),
    ("pdf_scanned/pypdf-Seige_of_Vicksburg_OCR.pdf", 2),
    ("pdf_text/elsarticle-elstest-5p.pdf", 1),
    ("pdf_text/R-intro.pdf", 10),
    ("pdf_text/acmart-sample-acmsmall.pdf", 2),
    ("pdf_text/beamer-conference-talk.pdf", 5),
];

/// OCR and layout against their plain baselines.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    repeat: args::Repeat,
    /// Tesseract language.
    #[arg(long, default_value = "eng")]
    lang: String,
}

/// CPU seconds used so far by this thread or by waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(who, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A page rendered for both uses: a 300-DPI grey PNG on disk, a 150-DPI RGB image.
struct BenchPage {
    name: String,
    ocr_png: PathBuf,
    layout: RgbImage,
}

async fn render_pages(settings: &Settings, dir: &Path) -> Vec<BenchPage> {
    let corpus = Path::new("../shared/corpus");
    let pages: Vec<(PathBuf, i32)> = if corpus.exists() {
        CORPUS_PAGES.iter().map(|(f, p)| (corpus.join(f), *p)).collect()
    } else {
        eprintln!("../shared/corpus not found: using the fixtures");
        vec![(PathBuf::from("fixtures/scan.pdf"), 1), (PathBuf::from("fixtures/paper.pdf"), 2)]
    };
    let host = PdfiumHost::get(&settings.pdfium_library()).unwrap();
    let mut out = Vec::new();
    for (i, (file, number)) in pages.into_iter().enumerate() {
        let ocr_png = dir.join(format!("page{i}.png"));
        let target = ocr_png.clone();
        let layout = host
            .run(move |pdfium| {
                let doc = pdfium.load_pdf_from_file(&file, None).unwrap();
                let page = doc.pages().get(number - 1).unwrap();
                let render = |dpi: f32, grey: bool| {
                    let config = PdfRenderConfig::new().scale_page_by_factor(dpi / 72.0).use_grayscale_rendering(grey);
                    page.render_with_config(&config).unwrap().as_image().unwrap()
                };
                render(OCR_DPI, true).to_luma8().save(&target).unwrap();
                Ok(render(LAYOUT_DPI, false).to_rgb8())
            })
            .await
            .unwrap();
        let name = format!("{}#{number}", Path::new(&CORPUS_PAGES.get(i).map_or("fixture", |p| p.0)).display());
        out.push(BenchPage { name, ocr_png, layout });
    }
    out
}

/// Our OCR stage's work on one page: decode the PNG, recognise with this thread's engine.
fn ours(lang: &str, png: &Path) -> (f64, String) {
    let start = cpu_seconds(libc::RUSAGE_THREAD);
    let image = image::open(png).unwrap().to_luma8();
    let (w, h) = image.dimensions();
    let page = recognize(lang, image.as_raw(), w, h, OCR_DPI as u32).unwrap();
    let text = page.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
    (cpu_seconds(libc::RUSAGE_THREAD) - start, text)
}

/// The tesseract CLI on the same file, TSV to stdout; `-c` settings from `variables`.
fn cli(lang: &str, png: &Path, variables: &[(&str, &str)]) -> (f64, String) {
    let start = cpu_seconds(libc::RUSAGE_CHILDREN);
    let mut command = Command::new("tesseract");
    command.arg(png).args(["stdout", "-l", lang, "--dpi", "300"]);
    for (name, value) in variables {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    let out = command
        .arg("tsv")
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .expect("the tesseract CLI (apt package tesseract-ocr; run scripts/setup.sh)");
    assert!(out.status.success(), "tesseract: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("5\t"))
        .filter_map(|l| l.splitn(12, '\t').nth(11).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string))
        .collect::<Vec<_>>()
        .join(" ");
    (cpu_seconds(libc::RUSAGE_CHILDREN) - start, text)
}

/// The layout model's input for `image`, prepared as plainly as possible.
fn raw_input(image: &RgbImage) -> ndarray::Array4<f32> {
    let resized = image::imageops::resize(image, 608, 800, image::imageops::FilterType::Triangle);
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    ndarray::Array4::from_shape_fn((1, 3, 800, 608), |(_, c, y, x)| {
        let p = resized.get_pixel(x as u32, y as u32);
        (p[2 - c] as f32 / 255.0 - mean[c]) / std[c]
    })
}

fn main() {
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("OMP_THREAD_LIMIT", "1") };
    // Paths (fixtures/, models/cache/, ../shared/corpus) are relative to the repository root;
    // cargo starts benches in their package's directory (crates/eval).
    std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).expect("repository root");
    let args: Args = args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.onnx_threads = 1;
    let pages = runtime.block_on(render_pages(&settings, dir.path()));
    println!(
        "{} pages, {} runs (medians), one thread each, tesseract language {}",
        pages.len(),
        args.repeat.runs,
        args.lang
    );

    // Warm our engine once (the stage reuses engines across pages).
    ours(&args.lang, &pages[0].ocr_png);
    println!("\n## OCR, CPU s per 300-DPI page\n");
    println!("| page | lectern | CLI, defaults | ratio | CLI, our settings | ratio | CER vs CLI |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut totals = [0.0f64; 3];
    for page in &pages {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let mut texts = (String::new(), String::new());
        for _ in 0..args.repeat.runs {
            let (t, ours_text) = ours(&args.lang, &page.ocr_png);
            times[0].push(t);
            let (t, cli_text) = cli(&args.lang, &page.ocr_png, &[]);
            times[1].push(t);
            times[2].push(cli(&args.lang, &page.ocr_png, &ENGINE_VARIABLES).0);
            texts = (ours_text, cli_text);
        }
        let [a, b, c] = times.map(median);
        totals.iter_mut().zip([a, b, c]).for_each(|(t, v)| *t += v);
        println!(
            "| {} | {a:.3} | {b:.3} | {:.2}× | {c:.3} | {:.2}× | {:.2} % |",
            page.name,
            a / b,
            a / c,
            100.0 * cer(&normalise(&texts.1, false), &normalise(&texts.0, false))
        );
    }
    let [a, b, c] = totals;
    println!("| **all pages** | {a:.3} | {b:.3} | **{:.2}×** | {c:.3} | **{:.2}×** | |", a / b, a / c);
    println!("\nLine images passed to the LSTM uncompressed (not as PNG): {}", line_images::spix_writes());

    let model = LayoutModel::load(&settings).unwrap();
    let env = lectern_document::engines::onnx::environment(&settings.onnxruntime_library()).unwrap();
    let mut raw = Session::builder(&env)
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .with_inter_threads(1)
        .unwrap()
        .commit_from_file(settings.layout_model())
        .unwrap();
    println!("\n## Layout, wall ms per 150-DPI page\n");
    println!("| page | lectern detect (all steps) | raw ort run (inference only) | ratio | regions |");
    println!("| --- | --- | --- | --- | --- |");
    let (mut total_ours, mut total_raw) = (0.0, 0.0);
    for page in &pages {
        let input = raw_input(&page.layout);
        raw.run(ort::inputs![Tensor::from_array(input.clone()).unwrap()]).unwrap();
        let (mut a, mut b, mut regions) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.repeat.runs {
            let t = Instant::now();
            regions = model.detect(&page.layout).unwrap().len();
            a.push(t.elapsed().as_secs_f64() * 1e3);
            let tensor = Tensor::from_array(input.clone()).unwrap();
            let t = Instant::now();
            let outputs = raw.run(ort::inputs![tensor]).unwrap();
            b.push(t.elapsed().as_secs_f64() * 1e3);
            drop(outputs);
        }
        let (a, b) = (median(a), median(b));
        total_ours += a;
        total_raw += b;
        println!("| {} | {a:.1} | {b:.1} | {:.2}× | {regions} |", page.name, a / b);
    }
    println!("| **all pages** | {total_ours:.1} | {total_raw:.1} | **{:.2}×** | |", total_ours / total_raw);
}
