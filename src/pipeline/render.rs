//! Stage 2, render: pdfium reads each page's text layer with word boxes and decides per
//! page whether that text is usable or the page needs OCR; it renders a page image for
//! the layout model (150 DPI) and, for pages that need OCR, a 300-DPI grey image.
//! PNG/JPEG/TIFF uploads are one page each, taken as 300 DPI scans.
//!
//! pdfium is not thread-safe, so one thread per process owns it ([`PdfiumHost`]) and
//! every pdfium call in the process runs there.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::{DynamicImage, GenericImageView};
use pdfium_render::prelude::*;
use tokio::sync::oneshot;

use super::Payload;
use super::StageError;
use super::workdir::{BBox, Page, TextSource, Word};
use crate::context::Context;
use crate::sniff::MediaType;

pub const LAYOUT_DPI: f32 = 150.0;
pub const OCR_DPI: f32 = 300.0;
/// Scans (image uploads) are assumed to be this resolution.
pub const IMAGE_DPI: f32 = 300.0;

type Task = Box<dyn FnOnce(&Pdfium) + Send>;

/// The one thread in this process that owns pdfium.
pub struct PdfiumHost {
    tasks: mpsc::Sender<Task>,
}

/// pdfium can be bound once per process, so the host is process-wide.
static HOST: std::sync::Mutex<Option<std::sync::Arc<PdfiumHost>>> = std::sync::Mutex::new(None);

impl PdfiumHost {
    /// The process's pdfium host, started on first use.
    pub fn get(library: &Path) -> Result<std::sync::Arc<Self>, StageError> {
        let mut host = HOST.lock().map_err(|_| StageError::Transient("pdfium host lock poisoned".into()))?;
        if let Some(host) = host.as_ref() {
            return Ok(host.clone());
        }
        let started = std::sync::Arc::new(Self::start(library)?);
        *host = Some(started.clone());
        Ok(started)
    }

    /// Binds the pdfium library on a new thread; fails if the library cannot be loaded.
    fn start(library: &Path) -> Result<Self, StageError> {
        if !library.exists() {
            return Err(StageError::Transient(format!(
                "pdfium not found at {} (run scripts/setup.sh)",
                library.display()
            )));
        }
        let (tx, rx) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let library = library.to_path_buf();
        std::thread::Builder::new().name("pdfium".into()).spawn(move || {
            let pdfium = match Pdfium::bind_to_library(&library) {
                Ok(bindings) => Pdfium::new(bindings),
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("load pdfium from {}: {e}", library.display())));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            for task in rx {
                task(&pdfium);
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| StageError::Transient("pdfium thread exited".into()))?
            .map_err(StageError::Transient)?;
        Ok(Self { tasks: tx })
    }

    /// Runs `f` on the pdfium thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Pdfium) -> Result<T, StageError> + Send + 'static,
    ) -> Result<T, StageError> {
        let (tx, rx) = oneshot::channel();
        self.tasks
            .send(Box::new(move |pdfium| {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(pdfium)))
                    .unwrap_or_else(|_| Err(StageError::Transient("pdfium task panicked".into())));
                let _ = tx.send(result);
            }))
            .map_err(|_| StageError::Transient("pdfium thread is gone".into()))?;
        rx.await.map_err(|_| StageError::Transient("pdfium thread dropped the task".into()))?
    }

    pub async fn page_count(&self, path: PathBuf) -> Result<u32, StageError> {
        self.run(move |pdfium| Ok(open_pdf(pdfium, &path)?.pages().len() as u32)).await
    }

    /// Renders every page of the PDF at `path` to `<prefix>-<n>.png` (for looking at);
    /// returns the page count.
    pub async fn preview(&self, path: PathBuf, prefix: PathBuf, dpi: f32) -> Result<u32, StageError> {
        self.run(move |pdfium| {
            let doc = open_pdf(pdfium, &path)?;
            let config = PdfRenderConfig::new().scale_page_by_factor(dpi / 72.0);
            for (i, page) in doc.pages().iter().enumerate() {
                let bitmap =
                    page.render_with_config(&config).map_err(|e| StageError::transient("render preview", e))?;
                let image = bitmap.as_image().map_err(|e| StageError::transient("convert preview", e))?;
                let name = format!("{}-{}.png", prefix.display(), i + 1);
                save_png(&DynamicImage::ImageRgb8(image.to_rgb8()), Path::new(&name))?;
            }
            Ok(doc.pages().len() as u32)
        })
        .await
    }
}

fn open_pdf<'a>(pdfium: &'a Pdfium, path: &Path) -> Result<PdfDocument<'a>, StageError> {
    pdfium.load_pdf_from_file(path, None).map_err(|e| match e {
        PdfiumError::IoError(e) => StageError::transient("read PDF", e),
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            StageError::BadInput("the PDF is encrypted and needs a password".into())
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            StageError::BadInput("not a readable PDF: the file is corrupt or truncated".into())
        }
        other => StageError::BadInput(format!("cannot open the PDF: {other}")),
    })
}

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let doc = ctx
        .store
        .document(&payload.document_id)
        .await?
        .ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let media = doc
        .media_type
        .as_deref()
        .and_then(MediaType::from_mime)
        .ok_or_else(|| StageError::BadInput("document type unknown (ingest did not run)".into()))?;
    let range = payload.page_range(doc.pages.unwrap_or(1) as u32);
    let source = super::ingest::upload_path(&ctx.settings, &doc.sha256);
    let workdir = ctx.workdir(&payload.document_id);
    std::fs::create_dir_all(workdir.pages_dir())?;
    let pages = if media == MediaType::Pdf {
        let pages_dir = workdir.pages_dir();
        ctx.pdfium().await?.run(move |pdfium| render_pdf(pdfium, &source, &pages_dir, range)).await?
    } else {
        let pages_dir = workdir.pages_dir();
        tokio::task::spawn_blocking(move || render_image(&source, &pages_dir)).await??
    };
    pages.iter().try_for_each(|p| workdir.save_page(p))
}

fn render_pdf(
    pdfium: &Pdfium,
    path: &Path,
    pages_dir: &Path,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Vec<Page>, StageError> {
    let document = open_pdf(pdfium, path)?;
    let mut pages = Vec::new();
    for number in range {
        let page = document
            .pages()
            .get((number - 1) as i32)
            .map_err(|e| StageError::BadInput(format!("page {number} cannot be read: {e}")))?;
        let (width, height) = (page.width().value, page.height().value);
        let words = match page.text() {
            Ok(text) => words_from_text_layer(&text, height),
            Err(_) => Vec::new(),
        };
        let source = if text_layer_is_usable(&words) { TextSource::TextLayer } else { TextSource::Ocr };
        let render = |dpi: f32, grey: bool| -> Result<DynamicImage, StageError> {
            let config = PdfRenderConfig::new().scale_page_by_factor(dpi / 72.0).use_grayscale_rendering(grey);
            let bitmap = page
                .render_with_config(&config)
                .map_err(|e| StageError::BadInput(format!("page {number} cannot be rendered: {e}")))?;
            bitmap.as_image().map_err(|e| StageError::transient("convert rendered page", e))
        };
        let layout_name = format!("p{number:04}-layout.png");
        save_png(&DynamicImage::ImageRgb8(render(LAYOUT_DPI, false)?.to_rgb8()), &pages_dir.join(&layout_name))?;
        let ocr_image = if source == TextSource::Ocr {
            let name = format!("p{number:04}-ocr.png");
            save_png(&DynamicImage::ImageLuma8(render(OCR_DPI, true)?.to_luma8()), &pages_dir.join(&name))?;
            Some(name)
        } else {
            None
        };
        pages.push(Page {
            number,
            width,
            height,
            source,
            words: if source == TextSource::TextLayer { words } else { Vec::new() },
            layout_image: Some(layout_name),
            ocr_image,
            regions: Vec::new(),
            ocr_confidence: None,
        });
    }
    Ok(pages)
}

/// Groups pdfium's characters into words: a word ends at whitespace, at a line change,
/// or at a horizontal gap wider than a third of the glyph height.
fn words_from_text_layer(text: &PdfPageText, page_height: f32) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut bbox: Option<BBox> = None;
    let mut flush = |current: &mut String, bbox: &mut Option<BBox>| {
        if let Some(b) = bbox.take() {
            if !current.is_empty() {
                words.push(Word { text: std::mem::take(current), bbox: b, conf: None });
            }
        }
        current.clear();
    };
    for ch in text.chars().iter() {
        let Some(c) = ch.unicode_char() else { continue };
        if c.is_whitespace() || c.is_control() {
            flush(&mut current, &mut bbox);
            continue;
        }
        let Ok(rect) = ch.loose_bounds() else { continue };
        // pdfium's origin is bottom-left; ours is top-left.
        let b =
            [rect.left().value, page_height - rect.top().value, rect.right().value, page_height - rect.bottom().value];
        if let Some(prev) = bbox {
            let h = (b[3] - b[1]).max(1.0);
            let new_line = (b[1] - prev[1]).abs() > h * 0.5;
            let gap = b[0] - prev[2];
            if new_line || gap > h / 3.0 || gap < -h {
                flush(&mut current, &mut bbox);
            }
        }
        current.push(c);
        bbox = Some(match bbox {
            Some(p) => [p[0].min(b[0]), p[1].min(b[1]), p[2].max(b[2]), p[3].max(b[3])],
            None => b,
        });
    }
    flush(&mut current, &mut bbox);
    words
}

/// A text layer is usable when it has a few real words and little garbage (unmapped
/// glyphs, private-use code points).
pub fn text_layer_is_usable(words: &[Word]) -> bool {
    let (mut alnum, mut bad, mut total) = (0usize, 0usize, 0usize);
    for c in words.iter().flat_map(|w| w.text.chars()) {
        total += 1;
        if c.is_alphanumeric() {
            alnum += 1;
        }
        if c == '\u{fffd}' || ('\u{e000}'..='\u{f8ff}').contains(&c) {
            bad += 1;
        }
    }
    alnum >= 20 && (bad as f32) < 0.05 * total as f32
}

fn render_image(path: &Path, pages_dir: &Path) -> Result<Vec<Page>, StageError> {
    let image = image::ImageReader::open(path)?
        .with_guessed_format()?
        .decode()
        .map_err(|e| StageError::BadInput(format!("the image cannot be decoded: {e}")))?;
    let (w, h) = image.dimensions();
    let scale = LAYOUT_DPI / IMAGE_DPI;
    let layout = image.resize_exact(
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
        image::imageops::FilterType::Triangle,
    );
    save_png(&DynamicImage::ImageRgb8(layout.to_rgb8()), &pages_dir.join("p0001-layout.png"))?;
    save_png(&DynamicImage::ImageLuma8(image.to_luma8()), &pages_dir.join("p0001-ocr.png"))?;
    Ok(vec![Page {
        number: 1,
        width: w as f32 * 72.0 / IMAGE_DPI,
        height: h as f32 * 72.0 / IMAGE_DPI,
        source: TextSource::Ocr,
        words: Vec::new(),
        layout_image: Some("p0001-layout.png".into()),
        ocr_image: Some("p0001-ocr.png".into()),
        regions: Vec::new(),
        ocr_confidence: None,
    }])
}

fn save_png(image: &DynamicImage, path: &Path) -> Result<(), StageError> {
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| StageError::transient("write page image", e))
}

/// Pixel scale of a page image relative to page points.
pub fn pixels_per_point(dpi: f32) -> f32 {
    dpi / 72.0
}
