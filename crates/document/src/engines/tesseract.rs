//! Tesseract, in process: engines are created once and reused across pages, taken from an
//! idle pool for one page at a time; each engine uses one thread (`OMP_THREAD_LIMIT=1`, set at process start). Words come back with
//! boxes and confidences (from TSV), words hyphenated at a line end joined; a page that
//! reads as garbage is read again with orientation detection. [`line_images`] keeps
//! tesseract's per-line images out of PNG.

pub mod line_images;

use std::sync::{Mutex, PoisonError};

use tesseract::{PageSegMode, Tesseract};

use crate::error::StageError;
use crate::model::workdir::Word;
use crate::text::blocks::ends_hyphenated;

/// Engine settings. The library's page segmentation default is one uniform block (the CLI
/// sets automatic layout analysis, 3), which reads across columns: use the CLI's. The
/// fixed-pitch test only serves the legacy engine's word splitting: off, it saves ~2% of a
/// page's instructions with the same LSTM output. Low-confidence lines are still retried
/// inverted (light text on dark bars in slides). Measured against the CLI by
/// `benches/document.rs`.
pub const ENGINE_VARIABLES: [(&str, &str); 2] = [("tessedit_pageseg_mode", "3"), ("textord_disable_pitch_test", "1")];

/// Idle engines with the languages each was built for. A page takes one and puts it back,
/// so there are as many engines as pages read at once, whichever threads read them. (One
/// engine per thread grew with the blocking pool, whose threads LanceDB's file reads keep
/// alive by the hundred: tens of MiB each.)
static IDLE: Mutex<Vec<(String, Tesseract)>> = Mutex::new(Vec::new());

/// Idle engines kept at most; beyond it the longest idle goes (other languages' engines).
const MAX_IDLE: usize = 8;

fn take_engine(languages: &str) -> Result<Tesseract, StageError> {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    match idle.iter().rposition(|(langs, _)| langs == languages) {
        Some(i) => Ok(idle.remove(i).1),
        None => {
            drop(idle);
            new_engine(languages)
        }
    }
}

fn put_back(languages: &str, engine: Tesseract) {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    idle.push((languages.to_string(), engine));
    if idle.len() > MAX_IDLE {
        idle.remove(0);
    }
}

/// Result of recognising one page image.
#[derive(Debug, Clone)]
pub struct OcrPage {
    pub words: Vec<Word>,
    pub mean_confidence: Option<f32>,
}

/// A page whose OCR words average a confidence below this is flagged `low_confidence` in
/// its status: clean print reads at 85–95, garbage (drawings, noise, wrong
/// orientation) below 50.
pub const LOW_CONFIDENCE: f32 = 60.0;

/// A first pass with at least this many words and a mean confidence below
/// [`TURNED_CONFIDENCE`] is probably a page on its side or upside down.
const TURNED_MIN_WORDS: usize = 10;

const TURNED_CONFIDENCE: f32 = 50.0;

/// Recognises a grey image (`width * height` bytes) at `dpi`; boxes come back in pixels.
/// A blank page (no pixel darker than [`INK`]) is not given to tesseract. Skew is handled
/// by tesseract's layout analysis; a page that reads as garbage is read again with
/// orientation detection (`osd.traineddata`), which turns it upright, and the more
/// confident reading is kept.
pub fn recognize(languages: &str, grey: &[u8], width: u32, height: u32, dpi: u32) -> Result<OcrPage, StageError> {
    if !grey.iter().any(|&p| p < INK) {
        return Ok(OcrPage { words: Vec::new(), mean_confidence: None });
    }
    let first = read(languages, PageSegMode::PsmAuto, grey, width, height, dpi)?;
    if first.words.len() < TURNED_MIN_WORDS || first.mean_confidence.unwrap_or(0.0) >= TURNED_CONFIDENCE {
        return Ok(first);
    }
    let turned = read(languages, PageSegMode::PsmAutoOsd, grey, width, height, dpi)?;
    Ok(if turned.mean_confidence > first.mean_confidence { turned } else { first })
}

/// Pixels darker than this are content: well above paper white, below light-grey text.
/// (Giving tesseract only the content's rectangle, `SetRectangle`, was tried: it saved
/// CPU on pages with margins but read slides far worse, so the whole page goes in.)
const INK: u8 = 230;

pub fn read(
    languages: &str,
    mode: PageSegMode,
    grey: &[u8],
    width: u32,
    height: u32,
    dpi: u32,
) -> Result<OcrPage, StageError> {
    // An engine whose page fails is consumed by the failure; the next page starts another.
    let mut engine = take_engine(languages)?;
    engine.set_page_seg_mode(mode);
    let mut engine = engine
        .set_frame(grey, width as i32, height as i32, 1, width as i32)
        .map_err(|e| StageError::BadInput(format!("tesseract refused the page image: {e}")))?
        .set_source_resolution(dpi as i32)
        .recognize()
        .map_err(|e| StageError::Transient(format!("tesseract failed: {e}")))?;
    let tsv = engine.get_tsv_text(0).map_err(|e| StageError::Transient(format!("tesseract output: {e}")))?;
    put_back(languages, engine);
    Ok(parse_tsv(&tsv))
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
/// A word hyphenated at a line end is joined with its end on the next line of the same
/// block, keeping the box of its start, as the text layer's words are.
fn parse_tsv(tsv: &str) -> OcrPage {
    let mut words: Vec<Word> = Vec::new();
    // (block, (paragraph, line)) of the last word kept.
    let mut last_line: Option<(&str, (&str, &str))> = None;
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
        let here = (cols[2], (cols[3], cols[4]));
        let continues = last_line.is_some_and(|(block, at)| block == here.0 && at != here.1);
        last_line = Some(here);
        match words.last_mut() {
            Some(last) if continues && ends_hyphenated(&last.text) && text.starts_with(char::is_lowercase) => {
                last.text.pop();
                last.text.push_str(text);
                last.conf = last.conf.map(|c| c.min(num(10)));
            }
            _ => {
                let (l, t, w, h) = (num(6), num(7), num(8), num(9));
                words.push(Word {
                    text: text.to_string(),
                    bbox: [l, t, l + w, t + h],
                    conf: Some(num(10)),
                    bold: false,
                });
            }
        }
    }
    let mean_confidence =
        (!words.is_empty()).then(|| words.iter().filter_map(|w| w.conf).sum::<f32>() / words.len() as f32);
    OcrPage { words, mean_confidence }
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

    #[test]
    fn words_hyphenated_at_a_line_end_are_joined() {
        let row = |block: u32, line: u32, left: u32, text: &str| {
            format!("5\t1\t{block}\t1\t{line}\t1\t{left}\t{}\t30\t12\t90\t{text}\n", 20 * line)
        };
        let tsv = [
            row(1, 1, 10, "the"),
            row(1, 1, 50, "interac-"),
            row(1, 2, 10, "tion"),
            row(1, 2, 50, "well-"),
            row(1, 2, 90, "known"),
            row(1, 2, 130, "Anglo-"),
            row(1, 3, 10, "Saxon"),
            row(1, 3, 50, "pre-"),
            row(2, 1, 10, "print"),
        ]
        .concat();
        let page = parse_tsv(&tsv);
        let texts: Vec<&str> = page.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["the", "interaction", "well-", "known", "Anglo-", "Saxon", "pre-", "print"]);
        assert_eq!(page.words[1].bbox, [50.0, 20.0, 80.0, 32.0], "the box of the word's start");
    }

    #[test]
    fn line_images_reach_the_lstm_uncompressed() {
        let image = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/page.png")).unwrap().to_luma8();
        let before = line_images::spix_writes();
        let page = recognize("eng", image.as_raw(), image.width(), image.height(), 300).unwrap();
        assert!(!page.words.is_empty());
        assert!(line_images::spix_writes() > before, "tesseract's pixWriteMem calls did not bind to ours");
    }

    #[test]
    fn a_blank_page_reads_as_no_words() {
        let page = recognize("eng", &vec![255u8; 300 * 200], 300, 200, 300).unwrap();
        assert!(page.words.is_empty() && page.mean_confidence.is_none());
    }
}
