//! Checks of generated study material against its source pages, run by
//! `lectern eval study` and the tests: every quiz answer is on the page it cites; no two
//! questions or cards are duplicates; distractors differ from the answer and each other;
//! new cards carry the initial SM-2 state; the cheat sheet, read back from its XML, has
//! the page setup, columns, fonts, heading styles and picture width it should.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use super::cheatsheet::{BODY_PT, EMU_PER_INCH, FIGURE_WIDTH_IN, HEADING_PT, MARGIN_TWIPS, page_twips};
use super::flashcards::{Card, Deck};
use super::quiz::{Kind, Question, Quiz};
use super::text::separate_run_on;
use super::words::{find_phrase, normalize_text, words};
use crate::config::GenerateConfig;
use crate::model::workdir::Page;

/// Problems found in one document's material; empty when everything holds.
pub fn check(quiz: &Quiz, deck: &Deck, pages: &[Page]) -> Vec<String> {
    check_with(quiz, deck, |_| Some(pages), |_| Some(pages))
}

/// Problems found in material over several documents: each question's and card's pages
/// are those of its own document.
pub fn check_with<'a>(
    quiz: &Quiz,
    deck: &Deck,
    pages_of_question: impl Fn(&Question) -> Option<&'a [Page]>,
    pages_of_card: impl Fn(&Card) -> Option<&'a [Page]>,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Read as the material reads pages: "geometry.The" is two words.
    let words_on = |pages: Option<&[Page]>, n: u32| {
        pages?.iter().find(|p| p.number == n).map(|p| words(&separate_run_on(&p.text())))
    };
    let mut prompts = HashSet::new();
    let mut sources = HashSet::new();
    for q in &quiz.questions {
        let at = format!("question {}", q.number);
        match words_on(pages_of_question(q), q.page) {
            Some(ws) if find_phrase(&ws, &words(&q.term)).is_some() => {}
            Some(_) => problems.push(format!("{at}: answer {:?} is not on page {}", q.term, q.page)),
            None => problems.push(format!("{at}: cites page {} which the document does not have", q.page)),
        }
        if !prompts.insert(normalize_text(&q.prompt)) || !sources.insert(normalize_text(&q.source)) {
            problems.push(format!("{at}: duplicates an earlier question"));
        }
        match q.kind {
            Kind::MultipleChoice => {
                let choices: HashSet<String> = q.choices.iter().map(|c| normalize_text(c)).collect();
                if choices.len() != q.choices.len() {
                    problems.push(format!("{at}: two choices are the same"));
                }
                if q.choices.iter().filter(|c| **c == q.answer).count() != 1 || q.choices.len() < 4 {
                    problems.push(format!("{at}: the answer is not exactly one of four or more choices"));
                }
            }
            Kind::TrueFalse => {
                let consistent = match q.answer.as_str() {
                    "True" => q.prompt == q.source,
                    "False" => q.prompt != q.source,
                    _ => false,
                };
                if !consistent {
                    problems.push(format!("{at}: true/false answer does not match the statement"));
                }
            }
            Kind::Cloze => {
                if !q.prompt.contains("_____") {
                    problems.push(format!("{at}: cloze without a blank"));
                }
            }
        }
    }
    let mut fronts = HashSet::new();
    let mut backs = HashSet::new();
    for card in &deck.cards {
        if !fronts.insert(normalize_text(&card.front)) || !backs.insert(normalize_text(&card.back)) {
            problems.push(format!("card {}: duplicates an earlier card", card.id));
        }
        if card.sm2.ease != 2.5 || card.sm2.interval_days != 0 || card.sm2.repetitions != 0 {
            problems.push(format!("card {}: not in the initial SM-2 state", card.id));
        }
        if words_on(pages_of_card(card), card.page).is_none() {
            problems.push(format!("card {}: cites page {} which the document does not have", card.id, card.page));
        }
    }
    problems
}

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const WP: &str = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing";

/// What [`cheatsheet`] read back from a .docx.
#[derive(Debug, Default)]
pub struct SheetFacts {
    pub headings: usize,
    pub bullets: usize,
    pub pictures: usize,
    pub problems: Vec<String>,
}

fn first<'a, 'input>(doc: &'a roxmltree::Document<'input>, tag: &str) -> Option<roxmltree::Node<'a, 'input>> {
    doc.descendants().find(|n| n.has_tag_name((W, tag)))
}

fn zip_text(path: &Path, name: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("{} is not a .docx: {e}", path.display()))?;
    let mut text = String::new();
    archive
        .by_name(name)
        .map_err(|e| format!("{name}: {e}"))?
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(text)
}

/// Reads a cheat sheet's XML back and checks it against `config`: page size, 0.5" margins,
/// two columns, Arial body at the body size, "heading 1/2" styles bold at the heading size
/// and used by paragraphs, every picture [`FIGURE_WIDTH_IN`] wide.
pub fn cheatsheet(path: &Path, config: &GenerateConfig) -> Result<SheetFacts, String> {
    let document = zip_text(path, "word/document.xml")?;
    let styles = zip_text(path, "word/styles.xml")?;
    let document = roxmltree::Document::parse(&document).map_err(|e| format!("document.xml: {e}"))?;
    let styles = roxmltree::Document::parse(&styles).map_err(|e| format!("styles.xml: {e}"))?;
    let w = |node: roxmltree::Node, attr: &str| node.attribute((W, attr)).map(str::to_string);
    let mut facts = SheetFacts::default();
    let expect = |problems: &mut Vec<String>, what: &str, got: Option<String>, want: String| {
        if got.as_deref() != Some(want.as_str()) {
            problems.push(format!("{what}: {got:?}, expected {want}"));
        }
    };

    let (pw, ph) = page_twips(config);
    let size = first(&document, "pgSz");
    expect(&mut facts.problems, "page width", size.and_then(|n| w(n, "w")), pw.to_string());
    expect(&mut facts.problems, "page height", size.and_then(|n| w(n, "h")), ph.to_string());
    let margins = first(&document, "pgMar");
    for side in ["top", "right", "bottom", "left"] {
        expect(
            &mut facts.problems,
            &format!("{side} margin"),
            margins.and_then(|n| w(n, side)),
            MARGIN_TWIPS.to_string(),
        );
    }
    expect(&mut facts.problems, "columns", first(&document, "cols").and_then(|n| w(n, "num")), "2".into());

    let defaults = first(&styles, "rPrDefault");
    let font = defaults.and_then(|d| d.descendants().find(|n| n.has_tag_name((W, "rFonts"))));
    expect(&mut facts.problems, "body font", font.and_then(|n| w(n, "ascii")), "Arial".into());
    let body = defaults.and_then(|d| d.descendants().find(|n| n.has_tag_name((W, "sz"))));
    expect(
        &mut facts.problems,
        "body size (half-points)",
        body.and_then(|n| w(n, "val")),
        ((BODY_PT * 2.0) as u32).to_string(),
    );
    let mut heading_ids = Vec::new();
    for name in ["heading 1", "heading 2"] {
        let style = styles.descendants().find(|n| {
            n.has_tag_name((W, "style"))
                && n.children().any(|c| c.has_tag_name((W, "name")) && w(c, "val").as_deref() == Some(name))
        });
        let Some(style) = style else {
            facts.problems.push(format!("no {name:?} style"));
            continue;
        };
        heading_ids.extend(w(style, "styleId"));
        let bold = style.descendants().find(|n| n.has_tag_name((W, "b")));
        if bold.is_none_or(|b| w(b, "val").is_some_and(|v| v == "false" || v == "0")) {
            facts.problems.push(format!("{name:?} is not bold"));
        }
        let sz = style.descendants().find(|n| n.has_tag_name((W, "sz")));
        expect(
            &mut facts.problems,
            &format!("{name:?} size"),
            sz.and_then(|n| w(n, "val")),
            ((HEADING_PT * 2.0) as u32).to_string(),
        );
    }

    let picture_cx = ((FIGURE_WIDTH_IN * EMU_PER_INCH) as u32).to_string();
    for p in document.descendants().filter(|n| n.has_tag_name((W, "p"))) {
        let style = p.descendants().find(|n| n.has_tag_name((W, "pStyle"))).and_then(|n| w(n, "val"));
        if style.is_some_and(|s| heading_ids.contains(&s)) {
            facts.headings += 1;
        }
        let text: String = p.descendants().filter(|n| n.has_tag_name((W, "t"))).filter_map(|n| n.text()).collect();
        if text.starts_with('•') {
            facts.bullets += 1;
        }
    }
    for extent in document.descendants().filter(|n| n.has_tag_name((WP, "extent"))) {
        facts.pictures += 1;
        if extent.attribute("cx") != Some(picture_cx.as_str()) {
            facts.problems.push(format!("a picture is {:?} EMU wide, expected {picture_cx}", extent.attribute("cx")));
        }
    }
    if facts.headings == 0 {
        facts.problems.push("no paragraph uses a heading style".into());
    }
    Ok(facts)
}

/// Converts a .docx to PDF with LibreOffice (headless) into `dir`; `None` without soffice.
pub fn docx_to_pdf(docx: &Path, dir: &Path) -> Option<std::path::PathBuf> {
    let profile = dir.join("lo-profile");
    let status = std::process::Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}", std::path::absolute(&profile).ok()?.display()))
        .args(["--headless", "--convert-to", "pdf", "--outdir"])
        .arg(dir)
        .arg(docx)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let pdf = dir.join(docx.file_stem()?).with_extension("pdf");
    (status.success() && pdf.exists()).then_some(pdf)
}
