//! Stage 2, render: pdfium reads each page's text layer with word boxes and decides per
//! page whether that text is usable or the page needs OCR; it renders a page image for
//! the layout model (150 DPI) and, for pages that need OCR, a 300-DPI grey image.
//! PNG/JPEG/TIFF uploads are 300 DPI scans, a page per image (TIFF: per TIFF page). DOCX
//! and PPTX have nothing to render: their pages come from [`super::office`]. The language
//! of the text layer, when it says enough, is recorded on the document.
//!
//! pdfium is not thread-safe, so one thread per process owns it ([`PdfiumHost`]) and
//! every pdfium call in the process runs there.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::{DynamicImage, GenericImageView};
use pdfium_render::prelude::*;
use tokio::sync::oneshot;
use unicode_normalization::UnicodeNormalization;

use super::Payload;
use super::StageError;
use super::workdir::{BBox, Page, TextSource, Word};
use crate::context::Context;
use crate::sniff::MediaType;
use crate::storage::Figure;

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
            crate::background::lower_thread_priority(crate::background::cpu_priority());
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
    let pages_dir = workdir.pages_dir();
    let pages = match media {
        MediaType::Pdf => ctx.pdfium().await?.run(move |pdfium| render_pdf(pdfium, &source, &pages_dir, range)).await?,
        MediaType::Docx | MediaType::Pptx => {
            let figures_dir = workdir.figures_dir();
            let (pages, figures) =
                crate::background::spawn_cpu(move || read_office(&source, media, &figures_dir, range)).await??;
            for (page, figs) in figures {
                ctx.store.replace_figures(&payload.document_id, page, &figs).await?;
            }
            pages
        }
        _ => crate::background::spawn_cpu(move || render_image(&source, media, &pages_dir, range)).await??,
    };
    pages.iter().try_for_each(|p| workdir.save_page(p))?;
    if doc.language.is_none() {
        let text: String = pages.iter().filter(|p| p.source == TextSource::TextLayer).map(|p| p.text() + " ").collect();
        if let Some(lang) = super::language::detect(&text) {
            ctx.store.set_language(&payload.document_id, lang).await?;
        }
    }
    Ok(())
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
        let images = image_boxes(&page, height);
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
            ocr_language: None,
            images,
        });
    }
    Ok(pages)
}

/// Boxes of the raster images drawn on the page (page points, top-left origin), images
/// inside form XObjects (nested ones too) included.
fn image_boxes(page: &PdfPage, page_height: f32) -> Vec<BBox> {
    fn walk(object: &PdfPageObject, forms: &[PdfMatrix], page_height: f32, out: &mut Vec<BBox>) {
        if let Some(form) = object.as_x_object_form_object() {
            let mut inner = forms.to_vec();
            if let Ok(matrix) = form.matrix() {
                inner.insert(0, matrix);
            }
            for child in form.iter() {
                walk(&child, &inner, page_height, out);
            }
        } else if object.as_image_object().is_some() {
            let Ok(quad) = object.bounds() else { return };
            let r = quad.to_rect();
            // A child's bounds are in its form's space: apply the forms' matrices, innermost first.
            let corners = [(r.left(), r.bottom()), (r.right(), r.top())]
                .map(|(x, y)| forms.iter().fold((x, y), |(x, y), m| m.apply_to_points(x, y)));
            let (xs, ys) = (corners.map(|c| c.0.value), corners.map(|c| c.1.value));
            out.push([
                xs[0].min(xs[1]),
                page_height - ys[0].max(ys[1]),
                xs[0].max(xs[1]),
                page_height - ys[0].min(ys[1]),
            ]);
        }
    }
    let mut out = Vec::new();
    for object in page.objects().iter() {
        walk(&object, &[], page_height, &mut out);
    }
    out
}

/// Every page's text-layer words, as the render stage reads them (for `lectern eval ocr`).
pub fn text_layers(pdfium: &Pdfium, path: &Path) -> Result<Vec<Vec<Word>>, StageError> {
    let document = open_pdf(pdfium, path)?;
    Ok(document
        .pages()
        .iter()
        .map(|page| page.text().map(|t| words_from_text_layer(&t, page.height().value)).unwrap_or_default())
        .collect())
}

/// One page (1-based) rendered grey at `dpi`, as the render stage renders OCR images.
pub fn render_grey(pdfium: &Pdfium, path: &Path, number: u32, dpi: f32) -> Result<image::GrayImage, StageError> {
    let document = open_pdf(pdfium, path)?;
    let page = document
        .pages()
        .get((number - 1) as i32)
        .map_err(|e| StageError::BadInput(format!("page {number} cannot be read: {e}")))?;
    let config = PdfRenderConfig::new().scale_page_by_factor(dpi / 72.0).use_grayscale_rendering(true);
    let bitmap = page.render_with_config(&config).map_err(|e| StageError::BadInput(format!("page {number}: {e}")))?;
    Ok(bitmap.as_image().map_err(|e| StageError::transient("convert rendered page", e))?.to_luma8())
}

/// Groups pdfium's characters into words: a word ends at whitespace, at a line change,
/// or at a horizontal gap wider than a third of the glyph height; in text turned 90°
/// (characters stacked in a column) it goes on down or up the column. A word hyphenated at a
/// line end (pdfium marks the hyphen as U+FFFE; U+00AD and U+0002 also occur) is joined
/// with its end on the next line, keeping the box of its start.
fn words_from_text_layer(text: &PdfPageText, page_height: f32) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut bbox: Option<BBox> = None;
    // The previous character's box: line changes and gaps are measured from it.
    let mut last: Option<BBox> = None;
    let mut hyphenated = false;
    let mut flush = |current: &mut String, bbox: &mut Option<BBox>| {
        if let Some(b) = bbox.take() {
            if !current.is_empty() {
                words.push(Word { text: compose_accents(current), bbox: b, conf: None });
            }
        }
        current.clear();
    };
    for ch in text.chars().iter() {
        let Some(c) = ch.unicode_char() else { continue };
        if matches!(c, '\u{fffe}' | '\u{ad}' | '\u{2}') {
            hyphenated = bbox.is_some();
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            if !hyphenated {
                flush(&mut current, &mut bbox);
            }
            continue;
        }
        let Ok(rect) = ch.loose_bounds() else { continue };
        // pdfium's origin is bottom-left; ours is top-left.
        let b =
            [rect.left().value, page_height - rect.top().value, rect.right().value, page_height - rect.bottom().value];
        let in_column = last.is_some_and(|prev| stacked(&prev, &b));
        if hyphenated {
            hyphenated = false;
        } else if let Some(prev) = last.filter(|_| bbox.is_some() && !in_column) {
            let h = (b[3] - b[1]).max(1.0);
            let new_line = (b[1] - prev[1]).abs() > h * 0.5;
            let gap = b[0] - prev[2];
            if new_line || gap > h / 3.0 || gap < -h {
                flush(&mut current, &mut bbox);
            }
        }
        current.push(c);
        last = Some(b);
        // The box grows along the word's first line (or its column) only.
        bbox = Some(match bbox {
            Some(p) if in_column || (b[1] - p[1]).abs() <= (b[3] - b[1]).max(1.0) * 0.5 => {
                [p[0].min(b[0]), p[1].min(b[1]), p[2].max(b[2]), p[3].max(b[3])]
            }
            Some(p) => p,
            None => b,
        });
    }
    flush(&mut current, &mut bbox);
    words
}

/// Whether `b` continues `prev` in text turned 90°: nearly the same left and right
/// edges (the glyph height across), moved by at least half a glyph (a ligature's letters
/// share one box) and touching above or below.
fn stacked(prev: &BBox, b: &BBox) -> bool {
    let across = (b[2] - b[0]).min(prev[2] - prev[0]);
    let shared = b[2].min(prev[2]) - b[0].max(prev[0]);
    let moved = ((b[1] + b[3]) - (prev[1] + prev[3])).abs() / 2.0;
    let gap = (b[1] - prev[3]).max(prev[1] - b[3]);
    across > 0.0
        && shared > 0.9 * (b[2] - b[0]).max(prev[2] - prev[0])
        && moved > 0.5 * (b[3] - b[1]).min(prev[3] - prev[1])
        && gap < across / 3.0
}

/// Old TeX fonts (OT1) draw an accent as a glyph of its own before the letter, so the text
/// layer reads "Br¨oker": a spacing accent is composed with the letter after it ("Bröker").
fn compose_accents(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match (combining_accent(c), chars.peek().copied()) {
            (Some(mark), Some(letter)) if letter.is_alphabetic() => {
                chars.next();
                out.extend([letter, mark].into_iter().nfc());
            }
            _ => out.push(c),
        }
    }
    out
}

/// The combining form of a spacing accent (not the ASCII ones: `` ` ``, `^` and `~` are code).
fn combining_accent(c: char) -> Option<char> {
    Some(match c {
        '\u{b4}' => '\u{301}',
        '\u{a8}' => '\u{308}',
        '\u{2c6}' => '\u{302}',
        '\u{2dc}' => '\u{303}',
        '\u{af}' => '\u{304}',
        '\u{2d8}' => '\u{306}',
        '\u{2d9}' => '\u{307}',
        '\u{2da}' => '\u{30a}',
        '\u{2dd}' => '\u{30b}',
        '\u{2c7}' => '\u{30c}',
        _ => return None,
    })
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

/// Image uploads: each page (a TIFF may have several) is a scan at [`IMAGE_DPI`].
fn render_image(
    path: &Path,
    media: MediaType,
    pages_dir: &Path,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Vec<Page>, StageError> {
    let mut pages = Vec::new();
    for number in range {
        let image = super::raster::page(path, media, number)?;
        let (w, h) = image.dimensions();
        let scale = LAYOUT_DPI / IMAGE_DPI;
        let layout = image.resize_exact(
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        let (layout_name, ocr_name) = (format!("p{number:04}-layout.png"), format!("p{number:04}-ocr.png"));
        save_png(&DynamicImage::ImageRgb8(layout.to_rgb8()), &pages_dir.join(&layout_name))?;
        save_png(&DynamicImage::ImageLuma8(image.to_luma8()), &pages_dir.join(&ocr_name))?;
        pages.push(Page {
            number,
            width: w as f32 * 72.0 / IMAGE_DPI,
            height: h as f32 * 72.0 / IMAGE_DPI,
            source: TextSource::Ocr,
            words: Vec::new(),
            layout_image: Some(layout_name),
            ocr_image: Some(ocr_name),
            regions: Vec::new(),
            ocr_confidence: None,
            ocr_language: None,
            images: Vec::new(),
        });
    }
    Ok(pages)
}

/// Office images smaller than this (pixels, either side) are icons and bullets.
const MIN_OFFICE_IMAGE_SIDE: u32 = 48;

/// DOCX/PPTX pages in `range`, and their embedded images saved as figures (PNG).
fn read_office(
    path: &Path,
    media: MediaType,
    figures_dir: &Path,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(Vec<Page>, Vec<(i64, Vec<Figure>)>), StageError> {
    std::fs::create_dir_all(figures_dir)?;
    let mut pages = Vec::new();
    let mut figures = Vec::new();
    let mut package = super::office::Package::open(path)?;
    for laid in super::office::read(&mut package, media)? {
        if !range.contains(&laid.page.number) {
            continue;
        }
        let number = laid.page.number;
        let mut page_figures = Vec::new();
        for (bbox, part) in laid.images {
            let Some(bytes) = package.bytes(&part)? else { continue };
            // Formats the image crate does not read (EMF, WMF, GIF) and pixel bombs are skipped.
            let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format() else {
                continue;
            };
            let Ok((w, h)) = reader.into_dimensions() else { continue };
            if w.min(h) < MIN_OFFICE_IMAGE_SIDE || w as u64 * h as u64 > super::raster::MAX_IMAGE_PIXELS {
                continue;
            }
            let Ok(image) = image::load_from_memory(&bytes) else { continue };
            let idx = page_figures.len() as i64;
            let file = figures_dir.join(format!("p{number:04}-{idx:02}.png"));
            save_png(&image, &file)?;
            // The virtual page reserves a square; the figure keeps the image's aspect ratio.
            let height = (bbox[2] - bbox[0]) * h as f32 / w as f32;
            let bbox = [bbox[0], bbox[1], bbox[2], bbox[1] + height.min(bbox[3] - bbox[1])];
            page_figures.push(Figure {
                page: number as i64,
                idx,
                label: "figure".into(),
                score: 1.0,
                bbox: bbox.map(f64::from),
                path: file.to_string_lossy().into_owned(),
            });
        }
        figures.push((number as i64, page_figures));
        pages.push(laid.page);
    }
    Ok((pages, figures))
}

fn save_png(image: &DynamicImage, path: &Path) -> Result<(), StageError> {
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| StageError::transient("write page image", e))
}

/// Pixel scale of a page image relative to page points.
pub fn pixels_per_point(dpi: f32) -> f32 {
    dpi / 72.0
}

#[cfg(test)]
mod tests {
    use super::compose_accents;

    #[test]
    fn tex_spacing_accents_compose_with_their_letter() {
        assert_eq!(compose_accents("Br\u{a8}oker"), "Bröker");
        assert_eq!(compose_accents("J\u{b4}er\u{2c6}ome"), "Jérôme");
        assert_eq!(
            compose_accents("Mikul\u{b4}\u{131}k"),
            "Mikul\u{131}\u{301}k",
            "no precomposed form: letter and mark"
        );
        assert_eq!(compose_accents("x\u{a8}"), "x\u{a8}", "nothing after it to compose with");
        assert_eq!(compose_accents("`a^b~c"), "`a^b~c", "ASCII is left alone");
    }
}
