//! `lectern eval ocr`: OCR quality and OCR decisions on real pages.
//!
//! - Decisions: every page of every PDF in the corpus manifest goes through the render
//!   stage's text-layer test; pages of files the manifest lists without a text layer must
//!   go to OCR, pages of born-digital files must not.
//! - Character error rate: a few born-digital pages per document (not `pdf_scanned/`,
//!   whose text layers are OCR; not pages in scripts without installed language data)
//!   are rendered to 300-DPI grey images and OCR'd as the OCR stage does (language
//!   detected from the text layer); their own text layer is the reference. Both texts are
//!   put in the same order, so reading order does not count: both in line order, or the
//!   reference in line order and each OCR word next to the reference word its box
//!   overlaps (the smaller error of the two is taken); and normalised (ligatures, quotes,
//!   dashes, hyphens at line ends) before comparing. The rate is reported as is; with dot
//!   leaders (". . . . ." in contents and tables) folded to one character on both sides,
//!   since the text layer spaces their dots and OCR reads any number of them; and on body
//!   text only: words in the layout model's prose regions, leaving out figures, tables,
//!   equations, headers and footers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use lectern_document::context::Context;
use lectern_document::engines::pdfium::{OCR_DPI, pixels_per_point, render_grey, text_layer_is_usable, text_layers};
use lectern_document::engines::tesseract as ocr;
use lectern_document::model::workdir::{Word, centre_in, overlap};
use lectern_document::text::{blocks, language};

struct Entry {
    file: String,
    has_text_layer: bool,
}

/// PDFs listed in `manifest.tsv` (columns: file, …, has_text_layer in the fifth).
fn manifest(corpus: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = corpus.join("manifest.tsv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut seen = std::collections::BTreeSet::new();
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.len() > 4 && cols[0].ends_with(".pdf") && seen.insert(cols[0].to_string()))
                .then(|| Entry { file: cols[0].to_string(), has_text_layer: cols[4].starts_with("yes") })
        })
        .collect())
}

/// Runs both measurements and prints them; `pages` born-digital pages per document for CER.
/// With `dump`, each page's two texts (folded) are written there for inspection.
pub async fn run(ctx: Arc<Context>, corpus: &Path, pages: usize, dump: Option<&Path>) -> anyhow::Result<()> {
    let entries = manifest(corpus)?;
    let host = ctx.pdfium().await?;

    println!("OCR decisions (page goes to OCR when its text layer is not usable):");
    println!("{:<52} {:>6} {:>5} {:>9} {:>7}", "file", "pages", "OCR", "expected", "agree");
    let (mut agree, mut total, mut docs_right) = (0usize, 0usize, 0usize);
    let mut layers = Vec::new();
    for entry in &entries {
        let path = corpus.join(&entry.file);
        let words = host.run(move |pdfium| text_layers(pdfium, &path)).await?;
        let usable: Vec<bool> = words.iter().map(|w| text_layer_is_usable(w)).collect();
        let ocr_pages = usable.iter().filter(|u| !**u).count();
        let right = usable.iter().filter(|u| **u == entry.has_text_layer).count();
        (agree, total) = (agree + right, total + usable.len());
        docs_right += usize::from(right == usable.len());
        let expected = if entry.has_text_layer { "text" } else { "OCR" };
        println!("{:<52} {:>6} {:>5} {:>9} {:>7}", entry.file, usable.len(), ocr_pages, expected, right);
        layers.push((entry, words, usable));
    }
    println!(
        "decision accuracy: {agree}/{total} pages ({:.1}%), {docs_right}/{} documents entirely right",
        100.0 * agree as f64 / total.max(1) as f64,
        entries.len()
    );

    println!("\nOCR vs text layer on born-digital pages rendered at {OCR_DPI} DPI:");
    println!(
        "{:<52} {:>5} {:>5} {:>7} {:>8} {:>8} {:>7} {:>8}",
        "file", "page", "lang", "chars", "CER %", "folded", "body", "body %"
    );
    if let Some(dir) = dump {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let layout = ctx.layout_model().await?;
    let (mut all, mut folded_all, mut body_all) = (Tally::default(), Tally::default(), Tally::default());
    let mut per_page = Vec::new();
    // Scans' text layers are somebody's OCR, not a reference.
    let born_digital = layers.iter().filter(|(e, ..)| e.has_text_layer && !e.file.starts_with("pdf_scanned/"));
    for (entry, words, usable) in born_digital {
        let candidates: Vec<usize> = (0..words.len()).filter(|&i| usable[i]).collect();
        if candidates.is_empty() {
            continue;
        }
        let chosen: Vec<usize> = (0..pages.min(candidates.len()))
            .map(|k| candidates[k * candidates.len() / pages.min(candidates.len())])
            .collect();
        let sample: String = chosen.iter().map(|&i| line_text(&words[i]) + " ").collect();
        let lang = match language::detect(&sample) {
            Some(lang) if language::ocr_installed(lang) => lang,
            Some(lang) => {
                println!("{:<52} skipped: no tesseract data for its language ({lang})", entry.file);
                continue;
            }
            None => ctx.settings.ocr_languages.as_str().split('+').next().unwrap_or("eng"),
        }
        .to_string();
        for i in chosen {
            let number = i as u32 + 1;
            if !latin_script(&words[i]) {
                println!(
                    "{:<52} {number:>5} skipped: not in Latin script (no tesseract data installed for it)",
                    entry.file
                );
                continue;
            }
            let path = corpus.join(&entry.file);
            let image = host.run(move |pdfium| render_grey(pdfium, &path, number, OCR_DPI)).await?;
            let (lang_for_ocr, layout) = (lang.clone(), layout.clone());
            let (result, regions) = tokio::task::spawn_blocking(move || {
                let (w, h) = image.dimensions();
                let result = ocr::recognize(&lang_for_ocr, image.as_raw(), w, h, OCR_DPI as u32)?;
                let rgb = image::DynamicImage::ImageLuma8(image).to_rgb8();
                Ok::<_, lectern_document::error::StageError>((result, layout.detect(&rgb)?))
            })
            .await??;
            let scale = 1.0 / pixels_per_point(OCR_DPI);
            let hyp: Vec<Word> =
                result.words.into_iter().map(|w| Word { bbox: w.bbox.map(|v| v * scale), ..w }).collect();
            let compared = Compared::new(&words[i], &hyp);
            let (page, folded) = (compared.score(false), compared.score(true));
            // Body text: words in prose regions only, on both sides (no figures, tables,
            // equations, headers or footers).
            let prose: Vec<[f32; 4]> = regions
                .iter()
                .filter(|r| {
                    matches!(r.label.as_str(), "text" | "title" | "reference" | "figure_caption" | "table_caption")
                })
                .map(|r| r.bbox.map(|v| v * scale))
                .collect();
            let in_prose = |w: &&Word| prose.iter().any(|r| centre_in(&w.bbox, r));
            let body_ref: Vec<Word> = words[i].iter().filter(in_prose).cloned().collect();
            let body_hyp: Vec<Word> = hyp.iter().filter(in_prose).cloned().collect();
            let body = Compared::new(&body_ref, &body_hyp).score(true);
            all.add(&page);
            folded_all.add(&folded);
            body_all.add(&body);
            per_page.push(folded.rate());
            println!(
                "{:<52} {:>5} {:>5} {:>7} {:>8.2} {:>8.2} {:>7} {:>8.2}",
                entry.file,
                number,
                lang,
                page.chars,
                page.rate(),
                folded.rate(),
                body.chars,
                body.rate()
            );
            if let Some(dir) = dump {
                let stem = format!("{}-p{number:03}", entry.file.replace('/', "_"));
                std::fs::write(dir.join(format!("{stem}.ref.txt")), &folded.reference)?;
                std::fs::write(dir.join(format!("{stem}.ocr.txt")), &folded.hypothesis)?;
            }
        }
    }
    per_page.sort_by(f64::total_cmp);
    let under = |limit: f64| per_page.iter().filter(|r| **r <= limit).count();
    println!("CER over {} pages: {:.2}% of {} characters as is", per_page.len(), all.rate(), all.chars);
    println!(
        "CER with dot leaders folded: {:.2}% of {} characters; median page {:.2}%; pages at most 1%: {}, at most 2%: {}",
        folded_all.rate(),
        folded_all.chars,
        per_page.get(per_page.len() / 2).copied().unwrap_or(0.0),
        under(1.0),
        under(2.0)
    );
    println!(
        "CER on body text (prose regions of the layout model, leaders folded): {:.2}% of {} characters",
        body_all.rate(),
        body_all.chars
    );
    Ok(())
}

/// One page's comparison: edits, reference length, and both texts as compared.
#[derive(Default)]
struct Tally {
    edits: usize,
    chars: usize,
    reference: String,
    hypothesis: String,
}

impl Tally {
    fn add(&mut self, page: &Tally) {
        self.edits += page.edits;
        self.chars += page.chars;
    }

    fn rate(&self) -> f64 {
        100.0 * self.edits as f64 / self.chars.max(1) as f64
    }
}

/// Reference and OCR words put in two shared orders: line order, and OCR words placed by
/// the reference word their box overlaps. Built once per page, scored with and without
/// folding.
struct Compared {
    reference: String,
    by_line: String,
    by_box: String,
}

impl Compared {
    fn new(reference: &[Word], hypothesis: &[Word]) -> Self {
        let (reference, by_box) = aligned(reference, hypothesis);
        Compared { reference, by_line: line_text(hypothesis), by_box }
    }

    /// The error is at most the smaller of the two orders'.
    fn score(&self, fold: bool) -> Tally {
        let reference = normalise(&self.reference, fold);
        let (line, boxed) = (normalise(&self.by_line, fold), normalise(&self.by_box, fold));
        let ((a, chars), (b, _)) = (edits(&reference, &line), edits(&reference, &boxed));
        let (edits, hypothesis) = if a <= b { (a, line) } else { (b, boxed) };
        Tally { edits, chars, reference, hypothesis }
    }
}

/// Whether most of a page's letters are Latin (the script of every language set-up
/// installs for tesseract).
fn latin_script(words: &[Word]) -> bool {
    let letters = words.iter().flat_map(|w| w.text.chars()).filter(|c| c.is_alphabetic());
    let (latin, total) = letters.fold((0usize, 0usize), |(l, t), c| {
        (l + usize::from(c <= '\u{24f}' || ('\u{1e00}'..='\u{1eff}').contains(&c)), t + 1)
    });
    total == 0 || latin * 2 > total
}

/// Words in line order: grouped into lines by their vertical centre, each line left to
/// right, lines top to bottom.
fn in_lines(words: &[Word]) -> Vec<&Word> {
    let mut sorted: Vec<&Word> = words.iter().collect();
    let centre = |w: &Word| (w.bbox[1] + w.bbox[3]) / 2.0;
    sorted.sort_by(|a, b| centre(a).total_cmp(&centre(b)));
    let mut lines: Vec<Vec<&Word>> = Vec::new();
    for w in sorted {
        match lines.last_mut() {
            Some(line) if (centre(w) - centre(line[0])).abs() < 0.5 * (line[0].bbox[3] - line[0].bbox[1]).max(2.0) => {
                line.push(w)
            }
            _ => lines.push(vec![w]),
        }
    }
    for line in &mut lines {
        line.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
    }
    lines.into_iter().flatten().collect()
}

fn join(words: &[&Word]) -> String {
    words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
}

fn line_text(words: &[Word]) -> String {
    join(&in_lines(words))
}

/// Reference and OCR text in the same order, so that reading-order choices (columns,
/// tables, slides) do not count as errors, only recognition: the reference in line order,
/// each OCR word placed with the reference word its box overlaps most; OCR words over no
/// reference word come last (insertions).
fn aligned(reference: &[Word], ocr: &[Word]) -> (String, String) {
    let order = in_lines(reference);
    let mut slots: Vec<Vec<&Word>> = vec![Vec::new(); order.len()];
    let mut stray = Vec::new();
    for o in ocr {
        let best = order
            .iter()
            .enumerate()
            .map(|(i, r)| (i, overlap(&r.bbox, &o.bbox)))
            .filter(|(_, v)| *v > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => slots[i].push(o),
            None => stray.push(o.clone()),
        }
    }
    let mut hypothesis: Vec<&Word> = Vec::new();
    for mut slot in slots {
        slot.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
        hypothesis.extend(slot);
    }
    let stray = in_lines(&stray).into_iter().cloned().collect::<Vec<_>>();
    let mut text = join(&hypothesis);
    if !stray.is_empty() {
        text.push(' ');
        text.push_str(&line_text(&stray));
    }
    (join(&order), text)
}

/// Folds typographic variants both sides may use differently: ligatures, curly quotes,
/// the asterisk operator, dashes, whitespace, and words hyphenated at a line end; with
/// `leaders`, also runs of three or more dots (spaced or not) to one "…".
pub fn normalise(text: &str, leaders: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{fb00}' => out.push_str("ff"),
            '\u{fb01}' => out.push_str("fi"),
            '\u{fb02}' => out.push_str("fl"),
            '\u{fb03}' => out.push_str("ffi"),
            '\u{fb04}' => out.push_str("ffl"),
            '\u{2018}' | '\u{2019}' | '\u{2032}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2217}' => out.push('*'),
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => out.push('-'),
            c => out.push(c),
        }
    }
    // Rejoin words hyphenated at a line end ("interac- tion"), as the text layer reads them.
    let mut words: Vec<String> = Vec::new();
    for word in out.split_whitespace() {
        match words.last_mut() {
            Some(last) if word.starts_with(char::is_lowercase) && blocks::ends_hyphenated(last) => {
                last.pop();
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    let text = words.join(" ");
    if leaders { fold_leaders(&text) } else { text }
}

/// Runs of dots and spaces holding at least three dots become one "…".
fn fold_leaders(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '.' | '…') {
            let (mut j, mut dots, mut end) = (i, 0, i);
            while j < chars.len() && matches!(chars[j], '.' | '…' | ' ') {
                if chars[j] != ' ' {
                    dots += if chars[j] == '…' { 3 } else { 1 };
                    end = j + 1;
                }
                j += 1;
            }
            if dots >= 3 {
                out.push('…');
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Character error rate: edit distance between the whitespace-normalised texts over the
/// reference's length (0 = identical).
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let (edits, chars) = edits(reference, hypothesis);
    if chars == 0 {
        return if edits == 0 { 0.0 } else { 1.0 };
    }
    edits as f64 / chars as f64
}

/// Edit distance (characters) between the whitespace-normalised texts, and the
/// reference's length.
pub fn edits(reference: &str, hypothesis: &str) -> (usize, usize) {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect::<Vec<char>>();
    let (r, h) = (norm(reference), norm(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hc) in h.iter().enumerate() {
            let substitute = diagonal + usize::from(rc != hc);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    (row[h.len()], r.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_counts_edits_over_reference_length() {
        assert_eq!(cer("hello  world", "hello world"), 0.0);
        assert_eq!(cer("abcd", "abed"), 0.25);
        assert_eq!(cer("abcd", "abcdxy"), 0.5);
        assert_eq!(cer("", ""), 0.0);
        assert_eq!(cer("ab", ""), 1.0);
        assert_eq!(cer("", "x"), 1.0);
    }

    #[test]
    fn line_order_and_normalisation_hide_layout_not_errors() {
        let word = |text: &str, x: f32, y: f32| Word {
            text: text.into(),
            bbox: [x, y, x + 20.0, y + 10.0],
            conf: None,
            bold: false,
        };
        // Two columns: the text layer lists the left column first, OCR goes line by line.
        let layer = [word("a1", 0.0, 0.0), word("a2", 0.0, 20.0), word("b1", 100.0, 1.0), word("b2", 100.0, 21.0)];
        let ocr = [word("a1", 0.0, 1.0), word("b1", 100.0, 0.0), word("a2", 0.0, 20.0), word("b2", 100.0, 20.0)];
        assert_eq!(line_text(&layer), line_text(&ocr));
        // A table read by OCR column by column, with one misread and one stray word.
        let mut read =
            vec![word("a1", 0.0, 1.0), word("a2", 0.0, 20.0), word("bl", 100.0, 0.0), word("b2", 100.0, 20.0)];
        read.push(word("x", 300.0, 300.0));
        assert_eq!(aligned(&layer, &read), ("a1 b1 a2 b2".to_string(), "a1 bl a2 b2 x".to_string()));
        assert_eq!(
            normalise("ef\u{fb01}cient \u{201c}x\u{201d} \u{2014} it\u{2019}s", false),
            "efficient \"x\" - it's"
        );
        assert_eq!(normalise("interac- tion well- Known a -", false), "interaction well- Known a -");
        // Dot leaders: spaced in the text layer, any number of dots in OCR.
        let layer = "Robbery. . . . . . 102.1 e.g. end.";
        assert_eq!(normalise(layer, true), "Robbery… 102.1 e.g. end.");
        assert_eq!(normalise("Robbery. ........... 102.1 e.g. end.", true), normalise(layer, true));
        assert_eq!(normalise(layer, false), layer, "kept unless asked");
    }
}
