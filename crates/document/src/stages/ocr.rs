//! Stage 4, OCR: pages without a usable text layer are read by tesseract
//! ([`crate::engines::tesseract`]); the document's language (see [`crate::text::language`])
//! picks the language data. A tilted scan is turned upright first
//! ([`crate::engines::deskew`]); its words' boxes are turned back onto the page and the tilt
//! is kept on the page.

use super::Payload;
use crate::context::Context;
use crate::engines::deskew::{MIN_DEGREES, find_skew, rotate};
use crate::engines::tesseract::recognize;
use crate::error::StageError;
use crate::model::workdir::{TextSource, Word, WorkDir, turn_box};
use crate::text::language;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let id = payload.document_id.as_str();
    let workdir = ctx.workdir(id);
    let known = ctx.store.document(id).await?.and_then(|d| d.language);
    let switch = ctx.settings.ocr_detect_language;
    // A language found earlier (text layer, another page's OCR) is used when installed.
    let languages = match known.as_deref() {
        Some(lang) if switch && language::ocr_installed(lang) => lang.to_string(),
        _ => ctx.settings.ocr_languages.clone(),
    };
    let range = super::page_range(ctx, payload).await?;
    let detect = known.is_none();
    let found =
        crate::engines::cpu::spawn_cpu(move || ocr_pages(&workdir, &languages, detect, switch, range)).await??;
    if let Some(lang) = found {
        ctx.store.set_language(id, lang).await?;
    }
    Ok(())
}

/// OCRs the pages that need it in `languages`. With `detect`, the first page whose text
/// says enough decides the language (returned); with `switch`, if that is another installed
/// language, the page is read again in it and so are the following pages.
fn ocr_pages(
    workdir: &WorkDir,
    languages: &str,
    mut detect: bool,
    switch: bool,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<&'static str>, StageError> {
    let mut languages = languages.to_string();
    let mut found = None;
    for number in range {
        let mut page = workdir.load_page(number)?;
        if page.source != TextSource::Ocr {
            continue;
        }
        let Some(name) = &page.ocr_image else { continue };
        let image = image::open(workdir.pages_dir().join(name))
            .map_err(|e| StageError::transient("read OCR image", e))?
            .to_luma8();
        let (w, h) = image.dimensions();
        // Points per pixel: OCR_DPI renders, image uploads taken as OCR_DPI scans, and very
        // large pages rendered at less.
        let to_points = page.width / w.max(1) as f32;
        let dpi = (72.0 / to_points).round() as u32;
        // The layout stage's tilt when it found one: words and regions then share a frame.
        let skew = page.skew.or_else(|| find_skew(image.as_raw(), w, h).filter(|d| d.abs() >= MIN_DEGREES));
        let upright = skew.map(|d| rotate(image.as_raw(), w, h, 1, -d));
        let pixels = upright.as_deref().unwrap_or(image.as_raw());
        let ocr = |languages: &str| recognize(languages, pixels, w, h, dpi);
        let mut result = ocr(&languages)?;
        if detect {
            let text = result.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
            if let Some(lang) = language::detect(&text) {
                detect = false;
                found = Some(lang);
                if switch && language::should_reread(&languages, lang) {
                    languages = lang.to_string();
                    result = ocr(&languages)?;
                }
            }
        }
        let centre = [page.width / 2.0, page.height / 2.0];
        let on_page = |bbox: [f32; 4]| match skew {
            Some(d) => turn_box(&bbox, d, centre),
            None => bbox,
        };
        page.words =
            result.words.into_iter().map(|w| Word { bbox: on_page(w.bbox.map(|v| v * to_points)), ..w }).collect();
        page.skew = skew;
        page.ocr_confidence = result.mean_confidence;
        page.ocr_language = Some(languages.clone());
        workdir.save_page(&page)?;
    }
    Ok(found)
}
