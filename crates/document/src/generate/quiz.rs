//! The quiz PDF (krilla): multiple-choice, cloze and true/false questions from the most
//! important sentences, each citing its source page; the answer key is on a page of its own.
//! Distractors are the answer's embedding neighbours among the document's key terms. Text
//! is wrapped with the font's own glyph widths; the font is embedded (subset).

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};

use serde::{Deserialize, Serialize};

use super::rank::{descending, neighbours};
use super::text::{Material, blank_out, has_rtl, replace_phrase};
use super::words::{find_phrase, is_stopword, normalize, words};
use crate::error::StageError;

pub const MEDIA_TYPE: &str = "application/pdf";
/// DejaVu Sans (fonts-dejavu-core), installed by scripts/setup.sh.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const SIZE: f32 = 11.0;
const LEADING: f32 = 15.0;

/// A quiz as generated; also written as `quiz.json` next to the PDF, which
/// `lectern eval study` checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiz {
    pub title: String,
    pub questions: Vec<Question>,
    /// Why sentences were left out (e.g. right-to-left scripts this writer cannot lay out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MultipleChoice,
    Cloze,
    TrueFalse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub number: usize,
    pub kind: Kind,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The choice, the missing words, or "True"/"False".
    pub answer: String,
    /// The key term the question is about, as it stands in the source sentence.
    pub term: String,
    /// Page of the source sentence (where `term` is written).
    pub page: u32,
    pub source: String,
    /// In a quiz over several documents: the cited document's id and file name, and the
    /// question's difficulty (true/false easy, multiple choice medium, cloze hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<String>,
}

/// Where something is: "page 4", or "lecture2.pdf, page 4" in material over several documents.
pub fn citation(document: Option<&str>, page: u32) -> String {
    match document {
        Some(name) => format!("{name}, page {page}"),
        None => format!("page {page}"),
    }
}

impl Question {
    /// Where the answer is (see [`citation`]).
    pub fn citation(&self) -> String {
        citation(self.document.as_deref(), self.page)
    }
}

/// True when two words look like forms of one word ("list"/"lists", "plots"/"plotting").
fn same_stem(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    let common = short.iter().zip(long.iter()).take_while(|(x, y)| x == y).count();
    (short.len() >= 3 && common == short.len()) || (common >= 4 && common * 5 >= short.len() * 4)
}

/// A sentence that leans on the one before it ("In fact, they are …"): out of context its
/// question would be ambiguous.
fn leans_on_context(sentence: &str) -> bool {
    words(sentence).iter().take(3).any(|w| {
        matches!(w.as_str(), "they" | "it" | "this" | "these" | "those" | "he" | "she" | "them" | "its" | "their")
    })
}

/// True when the sentence gives the blank away: a word outside the term's own place in it
/// (not a stop-word, four letters or more) is a form of one of the term's words ("lists,
/// which are of mode _____" for "list"; "the" does not give away "theorem").
pub fn gives_away(sentence: &str, term: &[String]) -> bool {
    let ws = words(sentence);
    let Some(at) = find_phrase(&ws, term) else { return false };
    ws.iter()
        .enumerate()
        .filter(|(i, w)| !(at..at + term.len()).contains(i) && w.chars().count() >= 4 && !is_stopword(w))
        .any(|(_, w)| term.iter().any(|t| same_stem(w, t)))
}

/// Whether a term is written with a capital (a name, an acronym) or not: distractors match.
fn capitalised(text: &str) -> bool {
    text.chars().next().is_some_and(char::is_uppercase)
}

/// Distractors for term `t`: its nearest terms by embedding with as many words (capitalised
/// like it first, others only when those run out), that are not a form of it or of each
/// other (no plurals or synonyms-by-spelling), not near-identical in meaning (cosine < 0.9)
/// and not in the question's sentence.
pub fn distractors(material: &Material, t: usize, sentence: &str, n: usize) -> Vec<usize> {
    if material.term_vectors.len() != material.terms.len() {
        return Vec::new();
    }
    let in_sentence = words(sentence);
    let answer = &material.terms[t];
    let mut used: Vec<String> = answer.words.clone();
    let mut out = Vec::new();
    let shaped = neighbours(t, &material.term_vectors, |i, sim| {
        let other = &material.terms[i];
        sim < 0.9 && other.words.len() == answer.words.len() && find_phrase(&in_sentence, &other.words).is_none()
    });
    // Same capitalisation first; a short document may need the others too.
    let (alike, unlike): (Vec<usize>, Vec<usize>) =
        shaped.into_iter().partition(|&i| capitalised(&material.terms[i].text) == capitalised(&answer.text));
    for i in alike.into_iter().chain(unlike) {
        let other = &material.terms[i].words;
        if other.iter().any(|w| used.iter().any(|u| same_stem(w, u))) {
            continue;
        }
        used.extend(other.iter().cloned());
        out.push(i);
        if out.len() == n {
            break;
        }
    }
    out
}

/// How many of the best key terms a question may blank out.
const QUIZ_TERMS: usize = 30;

/// Up to `n` questions, cycling multiple choice, cloze and true/false, from the most
/// central sentences that carry a key term the sentence does not give away; no sentence or
/// term is used twice. What the material skipped is listed in the quiz's `skipped`.
pub fn questions(title: &str, material: &Material, n: usize) -> Quiz {
    let order = descending(&material.importances());
    // Answers come from the best key terms only.
    let floor = material.terms.get(QUIZ_TERMS - 1).map_or(0.0, |t| t.weight);
    let mut quiz = Quiz { title: title.to_string(), questions: Vec::new(), skipped: material.skipped.lines() };
    let mut rtl = 0;
    let mut used_terms = std::collections::HashSet::new();
    let mut true_false = 0;
    for i in order {
        if quiz.questions.len() == n {
            break;
        }
        let s = &material.sentences[i];
        // A sentence over a page break cannot cite one page for its answer; captions and
        // sentences that need the one before make poor questions.
        if !s.within_page || is_caption(&s.text) || leans_on_context(&s.text) {
            continue;
        }
        if has_rtl(&s.text) {
            rtl += 1;
            continue;
        }
        let skip = |term: &super::text::Term| {
            term.weight < floor || used_terms.contains(&term.words) || gives_away(&s.text, &term.words)
        };
        let Some(t) = material.key_term_in(&s.text, skip) else {
            continue;
        };
        let term = &material.terms[t];
        let Some(blank) = blank_out(&s.text, &term.words) else { continue };
        used_terms.insert(term.words.clone());
        let written = written_form(&s.text, &term.words).unwrap_or_else(|| term.text.clone());
        let number = quiz.questions.len() + 1;
        let wanted = [Kind::MultipleChoice, Kind::Cloze, Kind::TrueFalse][(number - 1) % 3];
        let others = distractors(material, t, &s.text, 3);
        let base = Question {
            number,
            kind: Kind::Cloze,
            prompt: blank.clone(),
            choices: Vec::new(),
            answer: written.clone(),
            term: written.clone(),
            page: s.page,
            source: s.text.clone(),
            document_id: None,
            document: None,
            difficulty: None,
        };
        let q = match wanted {
            Kind::MultipleChoice if others.len() == 3 => {
                let mut choices: Vec<String> = others.iter().map(|&o| material.terms[o].text.clone()).collect();
                choices.insert((number - 1) % 4, written.clone());
                Question { kind: Kind::MultipleChoice, choices, ..base }
            }
            Kind::TrueFalse => {
                true_false += 1;
                // Every other statement is made false by swapping in the nearest other term.
                let swapped = (true_false % 2 == 0)
                    .then(|| others.first())
                    .flatten()
                    .and_then(|&o| replace_phrase(&s.text, &term.words, &material.terms[o].text));
                match swapped {
                    Some(statement) => {
                        Question { kind: Kind::TrueFalse, prompt: statement, answer: "False".into(), ..base }
                    }
                    None => Question { kind: Kind::TrueFalse, prompt: s.text.clone(), answer: "True".into(), ..base },
                }
            }
            _ => base,
        };
        quiz.questions.push(q);
    }
    if rtl > 0 {
        quiz.skipped.push(format!(
            "{rtl} sentence(s) in right-to-left scripts were not used: this PDF writer does not lay out bidirectional lines"
        ));
    }
    quiz
}

/// "Figure 3: …", "Fig. 2 …", "Table 1. …".
pub fn is_caption(sentence: &str) -> bool {
    let mut ws = sentence.split_whitespace();
    let first = ws.next().unwrap_or("").to_lowercase();
    matches!(first.as_str(), "figure" | "fig." | "table")
        && ws.next().is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

/// The words of `phrase` as written in `sentence` (case kept, punctuation trimmed).
fn written_form(sentence: &str, phrase: &[String]) -> Option<String> {
    let raw: Vec<&str> = sentence.split_whitespace().collect();
    let norm: Vec<String> = raw.iter().map(|w| normalize(w)).collect();
    let at = find_phrase(&norm, phrase)?;
    Some(
        raw[at..at + phrase.len()]
            .iter()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Lines of `text` no wider than `width` points.
fn wrap(face: &ttf_parser::Face, text: &str, width: f32) -> Vec<String> {
    let scale = SIZE / face.units_per_em() as f32;
    let measure = |s: &str| -> f32 {
        s.chars()
            .map(|c| face.glyph_index(c).and_then(|g| face.glyph_hor_advance(g)).unwrap_or(500) as f32 * scale)
            .sum()
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if measure(&candidate) > width && !line.is_empty() {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Lays out blocks of text over as many pages as needed.
struct Writer {
    pages: Vec<Vec<(f32, f32, String)>>,
    y: f32,
}

impl Writer {
    fn new() -> Self {
        Writer { pages: vec![Vec::new()], y: MARGIN }
    }
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }
    fn line(&mut self, x: f32, text: String) {
        if self.y + LEADING > PAGE_H - MARGIN {
            self.new_page();
        }
        self.y += LEADING;
        self.pages.last_mut().expect("a page").push((x, self.y, text));
    }
    fn gap(&mut self) {
        self.y += LEADING / 2.0;
    }
}

pub fn build(quiz: &Quiz) -> Result<Vec<u8>, StageError> {
    let font_data = std::fs::read(FONT_PATH)
        .map_err(|e| StageError::Transient(format!("read font {FONT_PATH} (run scripts/setup.sh): {e}")))?;
    let face = ttf_parser::Face::parse(&font_data, 0).map_err(|e| StageError::transient("parse font", e))?;
    let font = Font::new(font_data.clone().into(), 0)
        .ok_or_else(|| StageError::Transient("krilla rejected the font".into()))?;
    let width = PAGE_W - 2.0 * MARGIN;
    let indent = MARGIN + 14.0;

    let mut w = Writer::new();
    for l in wrap(&face, &format!("Quiz: {}", quiz.title), width) {
        w.line(MARGIN, l);
    }
    w.gap();
    if quiz.questions.is_empty() {
        w.line(MARGIN, "Not enough text in this document to write questions.".into());
    }
    for q in &quiz.questions {
        let lead = match q.kind {
            Kind::MultipleChoice => "Choose the missing words:",
            Kind::Cloze => "Fill in the blank:",
            Kind::TrueFalse => "True or false?",
        };
        let text = format!("{}. {lead} {} ({})", q.number, q.prompt, q.citation());
        for (j, l) in wrap(&face, &text, width).into_iter().enumerate() {
            w.line(if j == 0 { MARGIN } else { indent }, l);
        }
        for (k, c) in q.choices.iter().enumerate() {
            for l in wrap(&face, &format!("{}) {c}", (b'a' + k as u8) as char), width - 14.0) {
                w.line(indent, l);
            }
        }
        w.gap();
    }
    for note in &quiz.skipped {
        for l in wrap(&face, &format!("Note: {note}."), width) {
            w.line(MARGIN, l);
        }
    }
    w.new_page();
    w.line(MARGIN, "Answer key".into());
    w.gap();
    for q in &quiz.questions {
        let answer = match q.kind {
            Kind::MultipleChoice => {
                let k = q.choices.iter().position(|c| *c == q.answer).unwrap_or(0);
                format!("{}) {}", (b'a' + k as u8) as char, q.answer)
            }
            Kind::TrueFalse if q.answer == "False" => format!("False — the text says “{}”", q.term),
            _ => q.answer.clone(),
        };
        for (j, l) in wrap(&face, &format!("{}. {answer} — {}", q.number, q.citation()), width).into_iter().enumerate()
        {
            w.line(if j == 0 { MARGIN } else { indent }, l);
        }
    }

    let mut document = Document::new();
    for lines in &w.pages {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H).expect("valid page size");
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for (x, y, text) in lines {
            surface.draw_text(Point::from_xy(*x, *y), font.clone(), SIZE, text, false, TextDirection::Auto);
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| StageError::Transient(format!("write quiz PDF: {e:?}")))
}
