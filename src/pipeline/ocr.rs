//! Stage 4, OCR: tesseract, in process, on pages without a usable text layer. Words come
//! back with boxes and confidences. One engine per thread, created once and reused across
//! pages; each engine uses one thread (`OMP_THREAD_LIMIT=1`, set at process start).

use std::cell::RefCell;

use tesseract::Tesseract;

use super::Payload;
use super::StageError;
use super::render::{OCR_DPI, pixels_per_point};
use super::workdir::{TextSource, Word, WorkDir};
use crate::context::Context;

/// Engine settings. The library's page segmentation default is one uniform block (the CLI
/// sets automatic layout analysis, 3), which reads across columns: use the CLI's. Not
/// retrying low-confidence words on an inverted image saves CPU on scans. Measured against
/// the CLI by `benches/document.rs`.
pub const ENGINE_VARIABLES: [(&str, &str); 2] = [("tessedit_pageseg_mode", "3"), ("tessedit_do_invert", "0")];

thread_local! {
    /// This thread's engine and the languages it was built for.
    static ENGINE: RefCell<Option<(String, Tesseract)>> = const { RefCell::new(None) };
}

/// Result of recognising one page image.
#[derive(Debug, Clone)]
pub struct OcrPage {
    pub words: Vec<Word>,
    pub mean_confidence: Option<f32>,
}

/// Recognises a grey image (`width * height` bytes) at `dpi`; boxes come back in pixels.
pub fn recognize(languages: &str, grey: &[u8], width: u32, height: u32, dpi: u32) -> Result<OcrPage, StageError> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = match slot.take() {
            Some((langs, engine)) if langs == languages => engine,
            _ => new_engine(languages)?,
        };
        let mut engine = engine
            .set_frame(grey, width as i32, height as i32, 1, width as i32)
            .map_err(|e| StageError::BadInput(format!("tesseract refused the page image: {e}")))?
            .set_source_resolution(dpi as i32)
            .recognize()
            .map_err(|e| StageError::Transient(format!("tesseract failed: {e}")))?;
        let tsv = engine.get_tsv_text(0).map_err(|e| StageError::Transient(format!("tesseract output: {e}")))?;
        *slot = Some((languages.to_string(), engine));
        Ok(parse_tsv(&tsv))
    })
}

fn new_engine(languages: &str) -> Result<Tesseract, StageError> {
    let start = |e: &dyn std::fmt::Display| StageError::Transient(format!("start tesseract ({languages}): {e}"));
    let mut engine = Tesseract::new(None, Some(languages)).map_err(|e| start(&e))?;
    for (name, value) in ENGINE_VARIABLES {
        engine = engine.set_variable(name, value).map_err(|e| start(&e))?;
    }
    Ok(engine)
}

/// Tesseract TSV: level, page, block, par, line, word, left, top, width, height, conf, text.
fn parse_tsv(tsv: &str) -> OcrPage {
    let mut words = Vec::new();
    for line in tsv.lines() {
        let cols: Vec<&str> = line.splitn(12, '\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let text = cols[11].trim();
        let num = |i: usize| cols[i].trim().parse::<f32>().unwrap_or(0.0);
        if text.is_empty() {
            continue;
        }
        let (l, t, w, h) = (num(6), num(7), num(8), num(9));
        words.push(Word { text: text.to_string(), bbox: [l, t, l + w, t + h], conf: Some(num(10)) });
    }
    let mean_confidence =
        (!words.is_empty()).then(|| words.iter().filter_map(|w| w.conf).sum::<f32>() / words.len() as f32);
    OcrPage { words, mean_confidence }
}

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let workdir = ctx.workdir(&payload.document_id);
    let languages = ctx.settings.ocr_languages.clone();
    let range = super::page_range(ctx, payload).await?;
    tokio::task::spawn_blocking(move || ocr_pages(&workdir, &languages, range)).await?
}

fn ocr_pages(workdir: &WorkDir, languages: &str, range: std::ops::RangeInclusive<u32>) -> Result<(), StageError> {
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
        // Image uploads are taken as OCR_DPI scans, so one scale serves both kinds.
        let result = recognize(languages, image.as_raw(), w, h, OCR_DPI as u32)?;
        let to_points = 1.0 / pixels_per_point(OCR_DPI);
        page.words = result.words.into_iter().map(|w| Word { bbox: w.bbox.map(|v| v * to_points), ..w }).collect();
        page.ocr_confidence = result.mean_confidence;
        workdir.save_page(&page)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_keep_boxes_and_confidence() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t12\t91.5\tHello\n\
                   5\t1\t1\t1\t1\t2\t45\t20\t40\t12\t88.5\twörld\n";
        let page = parse_tsv(tsv);
        assert_eq!(page.words.len(), 2);
        assert_eq!(page.words[1].text, "wörld");
        assert_eq!(page.words[0].bbox, [10.0, 20.0, 40.0, 32.0]);
        assert_eq!(page.mean_confidence, Some(90.0));
    }
}
