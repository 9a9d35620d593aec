//! pdfium, the one owner of the PDF library in this process. pdfium is not thread-safe, so
//! one thread per process owns it ([`PdfiumHost`]) and every pdfium call runs there. Also
//! what is read through it: text layers as words with boxes (TeX accents composed, text
//! turned 90° kept as words), whether a text layer is usable, grey page images.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::DynamicImage;
use pdfium_render::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use unicode_normalization::UnicodeNormalization;

use crate::error::StageError;
use crate::model::workdir::{BBox, Page, TextSource, Word, centre_in};

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
            crate::engines::cpu::lower_thread_priority(crate::engines::cpu::cpu_priority());
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

pub fn open_pdf<'a>(pdfium: &'a Pdfium, path: &Path) -> Result<PdfDocument<'a>, StageError> {
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

/// The images a render makes besides OCR's, as the stages after it want them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Renders {
    /// An RGB [`LAYOUT_DPI`] image of every page for the layout model.
    pub layout: bool,
    /// An OCR image of pages under an invisible text layer, for OCR to check the layer.
    pub layer_check: bool,
}

/// Reads and renders the pages in `range` as the render stage needs them: words of a
/// usable text layer, else a grey [`OCR_DPI`] image for OCR; the images `renders` asks
/// for. Images go to `pages_dir`. A page too large for these resolutions within
/// [`MAX_RENDER_PIXELS`] is rendered at less.
pub fn render_pages(
    document: &PdfDocument,
    form: &mut FormValues,
    pages_dir: &Path,
    range: std::ops::RangeInclusive<u32>,
    renders: Renders,
) -> Result<Vec<Page>, StageError> {
    let mut pages = Vec::new();
    for number in range {
        let page = document.pages().get((number - 1) as i32).map_err(|e| page_error(number, e))?;
        let (width, height) = (page.width().value, page.height().value);
        let mut words = match page.text() {
            Ok(text) => words_from_text_layer(&text, height),
            Err(_) => Vec::new(),
        };
        let source = if text_layer_is_usable(&words) { TextSource::TextLayer } else { TextSource::Ocr };
        // Filled-in field values join a text layer, over what the page draws in their boxes
        // (a placeholder, or a value printed before the form was filled); a scan's are
        // OCR'd from the render.
        if source == TextSource::TextLayer
            && page.annotations().iter().any(|a| a.annotation_type() == PdfPageAnnotationType::Widget)
        {
            for (field, values) in form.fields(number, height) {
                words.retain(|w| !centre_in(&w.bbox, &field));
                words.extend(values);
            }
        }
        // An invisible layer is an earlier OCR's: the OCR stage checks it against its own.
        let invisible = source == TextSource::TextLayer && invisible_text_share(&page) >= INVISIBLE_LAYER;
        let images = image_boxes(&page, height);
        let render = |dpi: f32, grey: bool| -> Result<DynamicImage, StageError> {
            let config = PdfRenderConfig::new()
                .scale_page_by_factor(render_scale(width, height, dpi))
                .use_grayscale_rendering(grey);
            let bitmap = page
                .render_with_config(&config)
                .map_err(|e| StageError::BadInput(format!("page {number} cannot be rendered: {}", one_line(&e))))?;
            bitmap.as_image().map_err(|e| StageError::transient("convert rendered page", e))
        };
        let layout = if renders.layout { Some(render(LAYOUT_DPI, false)?) } else { None };
        let mut ocr = None;
        // A page with no text layer and no ink has nothing to lay out or OCR: told from the
        // layout image when there is one, else from the OCR image.
        let blank = source == TextSource::Ocr
            && match &layout {
                Some(image) => crate::formats::raster::is_blank(&image.to_luma8()),
                None => crate::formats::raster::is_blank(ocr.insert(render(OCR_DPI, true)?.to_luma8())),
            };
        if (source == TextSource::Ocr || (invisible && renders.layer_check)) && !blank && ocr.is_none() {
            ocr = Some(render(OCR_DPI, true)?.to_luma8());
        }
        let save = |image: DynamicImage, kind: &str| -> Result<String, StageError> {
            let name = format!("p{number:04}-{kind}.png");
            save_png(&image, &pages_dir.join(&name))?;
            Ok(name)
        };
        let layout_image = layout
            .filter(|_| !blank)
            .map(|image| save(DynamicImage::ImageRgb8(image.to_rgb8()), "layout"))
            .transpose()?;
        let ocr_image = ocr.filter(|_| !blank).map(|grey| save(DynamicImage::ImageLuma8(grey), "ocr")).transpose()?;
        pages.push(Page {
            number,
            width,
            height,
            source,
            words: if source == TextSource::TextLayer { words } else { Vec::new() },
            layout_image,
            ocr_image,
            regions: Vec::new(),
            ocr_confidence: None,
            skew: None,
            turn: None,
            ocr_language: None,
            images,
            invisible_text: invisible,
            layer_agreement: None,
        });
    }
    Ok(pages)
}

/// The values filled into a document's form fields (widget annotations' `/V`), as words
/// spread over their boxes: pdfium's text layer does not carry them, yet they are a filled
/// form's content. pdfium-render reads field values only through an AcroForm dictionary,
/// which filled forms can lack, so they are read with pdfium's annotation calls on a
/// second handle of the document, opened on the first page that has widgets.
pub struct FormValues<'a> {
    bindings: &'a dyn PdfiumLibraryBindings,
    path: &'a Path,
    document: Option<FPDF_DOCUMENT>,
}

/// `FPDF_ANNOT_WIDGET` and `FPDF_OBJECT_STRING` of pdfium's public headers, which
/// pdfium-render does not re-export.
const ANNOT_WIDGET: i64 = 20;
const OBJECT_STRING: i64 = 3;

impl<'a> FormValues<'a> {
    pub fn new(pdfium: &'a Pdfium, path: &'a Path) -> Self {
        Self { bindings: pdfium.bindings(), path, document: None }
    }

    /// The filled fields on page `number` (1-based): each one's box (top-left origin) and
    /// value as words; none if the document or page cannot be opened this way.
    fn fields(&mut self, number: u32, page_height: f32) -> Vec<(BBox, Vec<Word>)> {
        let b = self.bindings;
        let document = match self.document {
            Some(document) => document,
            None => {
                let Some(path) = self.path.to_str() else { return Vec::new() };
                // SAFETY: pdfium copies the path; a null handle (unreadable) is checked.
                let document = unsafe { b.FPDF_LoadDocument(path, None) };
                if document.is_null() {
                    return Vec::new();
                }
                *self.document.insert(document)
            }
        };
        let mut fields = Vec::new();
        // SAFETY: each handle is checked for null, used while its parent is open, and closed
        // once; pdfium is only ever called from this thread.
        unsafe {
            let page = b.FPDF_LoadPage(document, number as i32 - 1);
            if page.is_null() {
                return fields;
            }
            for i in 0..b.FPDFPage_GetAnnotCount(page) {
                let annot = b.FPDFPage_GetAnnot(page, i);
                if annot.is_null() {
                    continue;
                }
                let mut rect = FS_RECTF { left: 0.0, top: 0.0, right: 0.0, bottom: 0.0 };
                if b.FPDFAnnot_GetSubtype(annot) as i64 == ANNOT_WIDGET
                    && b.FPDFAnnot_GetValueType(annot, "V") as i64 == OBJECT_STRING
                    && b.FPDFAnnot_GetRect(annot, &mut rect) != 0
                    && let Some(value) = string_value(b, annot, "V")
                {
                    let top = page_height - rect.top.max(rect.bottom);
                    let (left, right) = (rect.left.min(rect.right), rect.left.max(rect.right));
                    let bbox = [left, top, right, top + (rect.top - rect.bottom).abs()];
                    fields.push((bbox, spread(&value, bbox)));
                }
                b.FPDFPage_CloseAnnot(annot);
            }
            b.FPDF_ClosePage(page);
        }
        fields
    }
}

impl Drop for FormValues<'_> {
    fn drop(&mut self) {
        if let Some(document) = self.document.take() {
            // SAFETY: opened by `fields`, closed once.
            unsafe { self.bindings.FPDF_CloseDocument(document) };
        }
    }
}

/// A string entry of an annotation's dictionary (UTF-16 from pdfium).
///
/// # Safety
/// `annot` must be an open annotation handle.
unsafe fn string_value(b: &dyn PdfiumLibraryBindings, annot: FPDF_ANNOTATION, key: &str) -> Option<String> {
    // SAFETY: a null buffer asks for the length; the second call fills a buffer that long.
    let bytes = unsafe { b.FPDFAnnot_GetStringValue(annot, key, std::ptr::null_mut(), 0) } as usize;
    if bytes <= 2 {
        return None;
    }
    let mut units = vec![0u16; bytes / 2];
    unsafe { b.FPDFAnnot_GetStringValue(annot, key, units.as_mut_ptr() as *mut FPDF_WCHAR, bytes as _) };
    let text = String::from_utf16_lossy(&units[..units.len() - 1]);
    (!text.trim().is_empty()).then_some(text)
}

/// A field's text as words in its box (top-left origin): a line per line of the value,
/// at most 12 pt high, letters at most half as wide as high and narrower when the text
/// is wider than the box. Positions are estimates: the field's font is not read.
fn spread(value: &str, bbox: BBox) -> Vec<Word> {
    let lines: Vec<&str> = value.lines().filter(|l| !l.trim().is_empty()).collect();
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0).max(1) as f32;
    let height = ((bbox[3] - bbox[1]) / lines.len().max(1) as f32).min(12.0);
    let advance = (height * 0.5).min((bbox[2] - bbox[0]) / widest);
    let mut words = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let y = bbox[1] + n as f32 * height;
        let mut column = 0usize;
        for part in line.split(' ') {
            let len = part.chars().count();
            if len > 0 {
                let x = bbox[0] + column as f32 * advance;
                words.push(Word {
                    text: part.to_string(),
                    bbox: [x, y, x + len as f32 * advance, y + height],
                    conf: None,
                    bold: false,
                });
            }
            column += len + 1;
        }
    }
    words
}

/// A text layer this much of whose text objects are invisible (render mode 3) is an earlier
/// OCR's, laid over a scan.
pub const INVISIBLE_LAYER: f32 = 0.9;

/// The share of the page's text objects drawn invisible, those inside form XObjects
/// included (0 on a page without text objects). Objects, not characters: pdfium-render
/// reads an object's text by loading the whole page's text again, which made this check
/// cost more than the rest of the text-layer path.
fn invisible_text_share(page: &PdfPage) -> f32 {
    fn walk(object: &PdfPageObject, counts: &mut (usize, usize)) {
        if let Some(form) = object.as_x_object_form_object() {
            form.iter().for_each(|child| walk(&child, counts));
        } else if let Some(text) = object.as_text_object() {
            counts.1 += 1;
            if matches!(text.render_mode(), PdfPageTextRenderMode::Invisible) {
                counts.0 += 1;
            }
        }
    }
    let mut counts = (0, 0);
    page.objects().iter().for_each(|object| walk(&object, &mut counts));
    counts.0 as f32 / counts.1.max(1) as f32
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

/// Renders are kept within this many pixels (a 300-DPI A4 page is 8.7 million): larger
/// pages (posters, a 200-inch MediaBox) are rendered at a lower resolution.
pub const MAX_RENDER_PIXELS: f32 = 40_000_000.0;

/// Scale from points to pixels for a `width` × `height` point page at `dpi`, within
/// [`MAX_RENDER_PIXELS`].
fn render_scale(width: f32, height: f32, dpi: f32) -> f32 {
    let scale = dpi / 72.0;
    let fit = (MAX_RENDER_PIXELS / (width * height).max(1.0)).sqrt();
    scale.min(fit)
}

/// pdfium's errors print as Debug structures over several lines.
fn one_line(e: &PdfiumError) -> String {
    format!("{e:?}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn page_error(number: u32, e: PdfiumError) -> StageError {
    StageError::BadInput(format!("page {number} cannot be loaded ({})", one_line(&e)))
}

/// The number of pages, each page's dictionary looked up once so that a broken page tree
/// fails here. Their contents are parsed at render, once (loading every page here as well
/// cost a tenth of the text-layer path).
pub fn page_count(document: &PdfDocument) -> Result<u32, StageError> {
    let pages = document.pages();
    for i in 0..pages.len() {
        pages.page_size(i).map_err(|e| page_error(i as u32 + 1, e))?;
    }
    Ok(pages.len() as u32)
}

/// Groups pdfium's characters into words: a word ends at whitespace, at a line change,
/// or at a horizontal gap wider than a third of the glyph height; in text turned 90°
/// (characters stacked in a column) it goes on down or up the column. A word hyphenated at a
/// line end (pdfium marks the hyphen as U+FFFE; U+00AD and U+0002 also occur) is joined
/// with its end on the next line, keeping the box of its start. A word is bold when its
/// font is heavier than the page's body text (see [`mark_bold`]).
pub fn words_from_text_layer(text: &PdfPageText, page_height: f32) -> Vec<Word> {
    let mut words = Vec::new();
    // Each word's font weight: that of its first character that has one.
    let mut weights = Vec::new();
    let mut weight = None;
    let mut current = String::new();
    let mut bbox: Option<BBox> = None;
    // The previous character's box: line changes and gaps are measured from it.
    let mut last: Option<BBox> = None;
    let mut hyphenated = false;
    let mut flush = |current: &mut String, bbox: &mut Option<BBox>, weight: &mut Option<u32>| {
        if let Some(b) = bbox.take()
            && !current.is_empty()
        {
            words.push(Word { text: compose_accents(current), bbox: b, conf: None, bold: false });
            weights.push(weight.take());
        }
        current.clear();
        *weight = None;
    };
    for ch in text.chars().iter() {
        let Some(c) = ch.unicode_char() else { continue };
        if matches!(c, '\u{fffe}' | '\u{ad}' | '\u{2}') {
            hyphenated = bbox.is_some();
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            if !hyphenated {
                flush(&mut current, &mut bbox, &mut weight);
            }
            continue;
        }
        let Ok(rect) = ch.loose_bounds() else { continue };
        // A hostile font matrix can put a glyph at infinity: such a glyph has no place.
        if ![rect.left().value, rect.top().value, rect.right().value, rect.bottom().value].iter().all(|v| v.is_finite())
        {
            continue;
        }
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
                flush(&mut current, &mut bbox, &mut weight);
            }
        }
        if weight.is_none() {
            weight = ch.font_weight().map(weight_value);
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
    flush(&mut current, &mut bbox, &mut weight);
    mark_bold(&mut words, &weights);
    words
}

fn weight_value(weight: PdfFontWeight) -> u32 {
    match weight {
        PdfFontWeight::Weight100 => 100,
        PdfFontWeight::Weight200 => 200,
        PdfFontWeight::Weight300 => 300,
        PdfFontWeight::Weight400Normal => 400,
        PdfFontWeight::Weight500 => 500,
        PdfFontWeight::Weight600 => 600,
        PdfFontWeight::Weight700Bold => 700,
        PdfFontWeight::Weight800 => 800,
        PdfFontWeight::Weight900 => 900,
        PdfFontWeight::Custom(v) => v,
    }
}

/// Marks the words set in a bold weight: at least 500 and 100 above the body text's (the
/// weight of most characters on the page). pdfium derives a weight from the font's stem
/// width when the font does not state one, so Latin Modern reads 325 and its bold 545; a
/// font family whose bold has no heavier stems (some beamer sans fonts) is not told apart.
fn mark_bold(words: &mut [Word], weights: &[Option<u32>]) {
    let mut chars_of: Vec<(u32, usize)> = Vec::new();
    for (w, weight) in words.iter().zip(weights) {
        let Some(weight) = *weight else { continue };
        match chars_of.iter_mut().find(|(v, _)| *v == weight) {
            Some((_, n)) => *n += w.text.chars().count(),
            None => chars_of.push((weight, w.text.chars().count())),
        }
    }
    let Some(&(body, _)) = chars_of.iter().max_by_key(|(_, n)| *n) else { return };
    for (w, weight) in words.iter_mut().zip(weights) {
        w.bold = weight.is_some_and(|v| v >= 500 && v >= body + 100);
    }
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

pub fn save_png(image: &DynamicImage, path: &Path) -> Result<(), StageError> {
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| StageError::transient("write page image", e))
}

/// Pixel scale of a page image relative to page points.
pub fn pixels_per_point(dpi: f32) -> f32 {
    dpi / 72.0
}

#[cfg(test)]
mod tests {
    use super::{compose_accents, mark_bold};
    use crate::model::workdir::Word;

    #[test]
    fn words_heavier_than_the_body_text_are_bold() {
        let mut words: Vec<Word> = ["Body", "text", "here", "Materials", "Semi", "Alone"]
            .iter()
            .map(|t| Word { text: t.to_string(), bbox: [0.0; 4], conf: None, bold: false })
            .collect();
        // Latin Modern: regular 325, bold 545; a medium 400 is not bold; no weight is not.
        mark_bold(&mut words, &[Some(325), Some(325), Some(325), Some(545), Some(400), None]);
        let bold: Vec<bool> = words.iter().map(|w| w.bold).collect();
        assert_eq!(bold, [false, false, false, true, false, false]);
        // A page set all in one heavy weight has no bold words.
        mark_bold(&mut words, &[Some(700); 6]);
        assert!(words.iter().all(|w| !w.bold));
    }

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
