//! Stage 4, OCR: pages without a usable text layer are read by tesseract
//! ([`crate::engines::tesseract`]); the document's language (see [`crate::text::language`])
//! picks the language data. A tilted scan is turned upright first
//! ([`crate::engines::deskew`]); its words' boxes are turned back onto the page and the tilt
//! is kept on the page. A page whose text layer is invisible (an earlier OCR's) has a band
//! of it read as a sample; when the layer's words do not agree with the sample, the page is
//! OCR'd instead of trusting the layer.

use std::collections::HashSet;

use image::GrayImage;

use super::Payload;
use crate::context::Context;
use crate::engines::deskew::{MIN_DEGREES, find_skew, rotate};
use crate::engines::tesseract::recognize;
use crate::error::StageError;
use crate::model::workdir::{Page, TextSource, Word, WorkDir, turn_box};
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
    ctx.fetch_pages(&workdir, range.clone(), |p| [p.ocr_image.as_ref(), None]).await?;
    let dir = workdir.clone();
    let (found, saved) =
        crate::engines::cpu::spawn_cpu(move || ocr_pages(&dir, &languages, detect, switch, range)).await??;
    ctx.blobs.publish_all(&saved.iter().map(|&n| workdir.page_key(n)).collect::<Vec<_>>()).await?;
    if let Some(lang) = found {
        ctx.store.set_language(id, lang).await?;
    }
    Ok(())
}

/// OCRs the pages that need it in `languages`. With `detect`, the first page whose text
/// says enough decides the language (returned); with `switch`, if that is another installed
/// language, the page is read again in it and so are the following pages. Also returns
/// the pages it saved.
fn ocr_pages(
    workdir: &WorkDir,
    languages: &str,
    mut detect: bool,
    switch: bool,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(Option<&'static str>, Vec<u32>), StageError> {
    let mut languages = languages.to_string();
    let mut found = None;
    let mut saved = Vec::new();
    for number in range {
        let mut page = workdir.load_page(number)?;
        let unchecked_layer =
            page.source == TextSource::TextLayer && page.invisible_text && page.layer_agreement.is_none();
        if page.source != TextSource::Ocr && !unchecked_layer {
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
        if unchecked_layer {
            page.layer_agreement = layer_agreement(&page, &image, to_points, &languages, dpi)?;
            if page.layer_agreement.is_none_or(|a| a >= MIN_LAYER_AGREEMENT) {
                workdir.save_page(&page)?;
                saved.push(number);
                continue;
            }
            page.source = TextSource::Ocr;
        }
        // The layout stage's tilt when it found one: words and regions then share a frame.
        let skew = page.skew.or_else(|| find_skew(image.as_raw(), w, h).filter(|d| d.abs() >= MIN_DEGREES));
        let upright = skew.map(|d| rotate::<1>(image.as_raw(), w, h, -d));
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
        saved.push(number);
    }
    Ok((found, saved))
}

/// An invisible text layer whose words agree with less than this share of the OCR sample's
/// is replaced by OCR. A layer from tesseract agrees at 0.9 or more; a garbled one from a
/// poor OCR engine, or text that belongs to another page, far below.
pub const MIN_LAYER_AGREEMENT: f32 = 0.6;

/// The sample is a band this share of the page's height, where the layer's words are densest.
const SAMPLE_SHARE: f32 = 0.15;

/// Words of the sample counted: at least this many letters (short words agree by chance).
const MIN_SAMPLE_WORD: usize = 4;

/// A sample with fewer such words than this says nothing about the layer.
const MIN_SAMPLE_WORDS: usize = 8;

/// Share of the words OCR reads in a band of `image` (the page's OCR image, `to_points`
/// points per pixel) that the page's text layer also has, anywhere on the page; `None` when
/// the sample has too few words to judge.
fn layer_agreement(
    page: &Page,
    image: &GrayImage,
    to_points: f32,
    languages: &str,
    dpi: u32,
) -> Result<Option<f32>, StageError> {
    let key = |text: &str| -> Option<String> {
        let word: String = text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
        (word.chars().count() >= MIN_SAMPLE_WORD).then_some(word)
    };
    let layer: HashSet<String> = page.words.iter().filter_map(|w| key(&w.text)).collect();
    // The band: the window of rows holding the most layer word centres.
    let (w, h) = image.dimensions();
    let band = ((h as f32 * SAMPLE_SHARE) as u32).clamp(1, h);
    let centres: Vec<u32> =
        page.words.iter().map(|w| (((w.bbox[1] + w.bbox[3]) / 2.0 / to_points) as u32).min(h - 1)).collect();
    let top = (0..=h - band)
        .step_by((band / 4).max(1) as usize)
        .max_by_key(|&top| centres.iter().filter(|&&c| c >= top && c < top + band).count())
        .unwrap_or(0);
    let sample = image::imageops::crop_imm(image, 0, top, w, band).to_image();
    let read = recognize(languages, sample.as_raw(), w, band, dpi)?;
    let sampled: Vec<String> = read.words.iter().filter_map(|w| key(&w.text)).collect();
    if sampled.len() < MIN_SAMPLE_WORDS {
        return Ok(None);
    }
    Ok(Some(sampled.iter().filter(|w| layer.contains(*w)).count() as f32 / sampled.len() as f32))
}
