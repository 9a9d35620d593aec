//! The quiz PDF (krilla): fill-in-the-blank questions from key sentences, each with four
//! choices and its source page; the answer key is on a page of its own. Text is wrapped
//! with the font's own glyph widths; the font is embedded (subset).

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};

use super::text::{Material, blank_out};
use crate::pipeline::StageError;

pub const MEDIA_TYPE: &str = "application/pdf";
pub const QUESTIONS: usize = 10;
/// DejaVu Sans (fonts-dejavu-core), installed by scripts/setup.sh.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const SIZE: f32 = 11.0;
const LEADING: f32 = 15.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub prompt: String,
    pub choices: Vec<String>,
    pub answer: String,
    pub page: u32,
}

pub fn questions(material: &Material) -> Vec<Question> {
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    for s in material.top_sentences(QUESTIONS * 3) {
        let Some(term) = material.key_term_in(&s.text) else { continue };
        if !used.insert(term.to_string()) {
            continue;
        }
        let Some(prompt) = blank_out(&s.text, term) else { continue };
        // Distractors: other key terms of similar length, so the answer does not stand out.
        let mut others: Vec<&String> = material.terms.iter().filter(|t| t.as_str() != term).collect();
        others.sort_by_key(|t| (t.len() as i64 - term.len() as i64).abs());
        let mut choices: Vec<String> = others.into_iter().take(3).cloned().collect();
        if choices.len() < 3 {
            continue;
        }
        let slot = out.len() % 4;
        choices.insert(slot, term.to_string());
        out.push(Question { prompt, choices, answer: term.to_string(), page: s.page });
        if out.len() == QUESTIONS {
            break;
        }
    }
    out
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

pub fn build(title: &str, material: &Material) -> Result<Vec<u8>, StageError> {
    let font_data = std::fs::read(FONT_PATH)
        .map_err(|e| StageError::Transient(format!("read font {FONT_PATH} (run scripts/setup.sh): {e}")))?;
    let face = ttf_parser::Face::parse(&font_data, 0).map_err(|e| StageError::transient("parse font", e))?;
    let font = Font::new(font_data.clone().into(), 0)
        .ok_or_else(|| StageError::Transient("krilla rejected the font".into()))?;
    let qs = questions(material);
    let width = PAGE_W - 2.0 * MARGIN;

    let mut w = Writer::new();
    for l in wrap(&face, &format!("Quiz: {title}"), width) {
        w.line(MARGIN, l);
    }
    w.gap();
    if qs.is_empty() {
        w.line(MARGIN, "Not enough text in this document to write questions.".into());
    }
    for (i, q) in qs.iter().enumerate() {
        for (j, l) in wrap(&face, &format!("{}. {} (page {})", i + 1, q.prompt, q.page), width).into_iter().enumerate()
        {
            w.line(if j == 0 { MARGIN } else { MARGIN + 14.0 }, l);
        }
        for (k, c) in q.choices.iter().enumerate() {
            w.line(MARGIN + 14.0, format!("{}) {c}", (b'a' + k as u8) as char));
        }
        w.gap();
    }
    w.new_page();
    w.line(MARGIN, "Answer key".into());
    w.gap();
    for (i, q) in qs.iter().enumerate() {
        let letter = q.choices.iter().position(|c| *c == q.answer).map(|k| (b'a' + k as u8) as char).unwrap_or('?');
        w.line(MARGIN, format!("{}. {letter}) {} — page {}", i + 1, q.answer, q.page));
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
