//! The cheat sheet (.docx, docx-rs): A4 or US Letter, 0.5" margins, two columns, Arial 9 pt
//! body, 11 pt bold headings in Word's built-in "heading 1"/"heading 2" styles (so the
//! navigation pane works). Content, extractive: key terms, then the document's sections in
//! order, each with its most important sentences (centrality and key terms, MMR over
//! sentence embeddings), and figures 3.2" wide with their captions — filled up to a page
//! budget estimated with Arial's metrics (Liberation Sans has the same widths). A course's
//! sheet ([`plan_course`]) gives each document a heading and a share of the budget.

use docx_rs::{Docx, PageMargin, Paragraph, Pic, Run, RunFonts, Style, StyleType};

use super::rank::{cosine, descending, mmr};
use super::text::Material;
use super::words::normalize_text;
use crate::config::GenerateConfig;
use crate::error::StageError;

pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const EMU_PER_INCH: f32 = 914_400.0;
pub const FIGURE_WIDTH_IN: f32 = 3.2;
pub const MARGIN_TWIPS: u32 = 720;
const COLUMN_GAP_TWIPS: u32 = 360;
pub const BODY_PT: f32 = 9.0;
pub const HEADING_PT: f32 = 11.0;
/// Single line spacing of Arial is about 1.15 × the font size.
const LINE_FACTOR: f32 = 1.15;
/// Space after each paragraph, in points (set on every paragraph below).
const PARAGRAPH_GAP_PT: f32 = 2.0;
const MAX_FIGURES: usize = 4;

/// Fonts whose advance widths stand in for Arial's when estimating line breaks.
const METRIC_FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

/// A figure to place, with its caption when one was found.
#[derive(Debug, Clone)]
pub struct FigureInput {
    pub path: String,
    pub page: u32,
    pub caption: Option<String>,
    /// Section it belongs after (index into `Material::sections`).
    pub section: Option<usize>,
}

/// Page size in twips.
pub fn page_twips(config: &GenerateConfig) -> (u32, u32) {
    match config.paper.as_str() {
        "letter" => (12_240, 15_840),
        _ => (11_906, 16_838),
    }
}

/// Estimates how many lines text takes in a column, from real glyph advances.
struct Measure {
    face_data: Option<Vec<u8>>,
    column_pt: f32,
}

impl Measure {
    fn new(config: &GenerateConfig) -> Self {
        let (w, _) = page_twips(config);
        let column_pt = (w - 2 * MARGIN_TWIPS - COLUMN_GAP_TWIPS) as f32 / 20.0 / 2.0;
        let face_data = METRIC_FONTS.iter().find_map(|p| std::fs::read(p).ok());
        Self { face_data, column_pt }
    }

    fn lines(&self, text: &str, size: f32) -> usize {
        let face = self.face_data.as_deref().and_then(|d| ttf_parser::Face::parse(d, 0).ok());
        let width = |s: &str| -> f32 {
            match &face {
                Some(f) => {
                    let scale = size / f.units_per_em() as f32;
                    s.chars()
                        .map(|c| f.glyph_index(c).and_then(|g| f.glyph_hor_advance(g)).unwrap_or(1000) as f32)
                        .sum::<f32>()
                        * scale
                }
                None => s.chars().count() as f32 * size * 0.55,
            }
        };
        let mut lines = 1;
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if width(&candidate) > self.column_pt && !line.is_empty() {
                lines += 1;
                line = word.to_string();
            } else {
                line = candidate;
            }
        }
        lines
    }

    /// Points of column height a paragraph takes.
    fn height(&self, text: &str, size: f32) -> f32 {
        self.lines(text, size) as f32 * size * LINE_FACTOR + PARAGRAPH_GAP_PT
    }
}

/// What goes on the sheet, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading {
        level: usize,
        text: String,
    },
    /// A paragraph opening with a bold label: key terms, the summary.
    Labelled {
        label: String,
        text: String,
    },
    Bullet(String),
    Figure {
        path: String,
        width_emu: u32,
        height_emu: u32,
        caption: String,
    },
}

/// One document's share of a sheet: its name, material and figures.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    pub name: &'a str,
    pub material: &'a Material,
    pub figures: &'a [FigureInput],
}

/// Chooses the content of one document's sheet: title, the summary when an LLM wrote one,
/// key terms, then per section its selected sentences and figures, adding sentences in MMR
/// order while the estimate fits `config.pages`.
pub fn plan(
    title: &str,
    material: &Material,
    figures: &[FigureInput],
    summary: Option<&str>,
    config: &GenerateConfig,
) -> Vec<Block> {
    plan_parts(title, &[Part { name: title, material, figures }], summary, config)
}

/// Chooses the content of a sheet over several documents (a course): one level-1 heading
/// per document with its key terms, its sections below at level 2. The page budget is
/// shared in proportion to each document's sentences, taken in turn so every document is
/// represented, and a sentence already on the sheet (same words, or a near-identical
/// embedding from another document) is not repeated.
pub fn plan_course(title: &str, parts: &[Part<'_>], config: &GenerateConfig) -> Vec<Block> {
    plan_parts(title, parts, None, config)
}

/// Near-identical sentences of different documents (the same definition in two lectures).
const SAME_SENTENCE: f32 = 0.92;

fn plan_parts(title: &str, parts: &[Part<'_>], summary: Option<&str>, config: &GenerateConfig) -> Vec<Block> {
    let measure = Measure::new(config);
    let (_, h) = page_twips(config);
    let column_pt = (h - 2 * MARGIN_TWIPS) as f32 / 20.0;
    // Two columns per page; keep 10 % for what the estimate cannot see (widow and orphan
    // control, fallback fonts for symbols, rounding): with 5 % a short two-column paper
    // still ran onto a third page in LibreOffice.
    let budget = column_pt * 2.0 * config.pages as f32 * 0.90;
    let course = parts.len() > 1;
    let mut used = 0.0;

    let heading = format!("Cheat sheet: {title}");
    used += measure.height(&heading, HEADING_PT);
    let mut opening = Vec::new();
    if let Some(summary) = summary {
        opening.push(Block::Labelled { label: "Summary".into(), text: summary.to_string() });
    }
    // Key terms: twelve for one document, six under each document's heading in a course.
    let key_terms = |m: &Material, n: usize| -> Option<Block> {
        let terms: Vec<&str> = m.terms.iter().take(n).map(|t| t.text.as_str()).collect();
        (!terms.is_empty()).then(|| Block::Labelled { label: "Key terms".into(), text: terms.join(" · ") })
    };
    let part_terms: Vec<Option<Block>> = if course {
        parts.iter().map(|p| key_terms(p.material, 6)).collect()
    } else {
        opening.extend(key_terms(parts[0].material, 12));
        vec![None]
    };
    let labelled = |block: &Block| match block {
        Block::Labelled { label, text } => measure.height(&format!("{label}: {text}"), BODY_PT),
        _ => 0.0,
    };
    used += opening.iter().map(labelled).sum::<f32>();
    // In a course, a document's heading and key terms are paid for with its first sentence
    // or figure; a document with neither gets no part.
    let mut paid = vec![false; parts.len()];
    let part_cost: Vec<f32> = parts
        .iter()
        .zip(&part_terms)
        .map(
            |(p, terms)| {
                if course { measure.height(p.name, HEADING_PT) + terms.as_ref().map_or(0.0, labelled) } else { 0.0 }
            },
        )
        .collect();

    // Figures first take their room (at most a quarter of the budget), one document's
    // first figure after another's.
    let mut placed: Vec<(usize, usize, Block)> = Vec::new();
    let longest = parts.iter().map(|p| p.figures.len()).max().unwrap_or(0);
    let in_turn = (0..longest)
        .flat_map(|i| parts.iter().enumerate().filter_map(move |(p, part)| Some((p, part.figures.get(i)?))));
    for (p, f) in in_turn.take(MAX_FIGURES) {
        let Ok(bytes) = std::fs::read(&f.path) else { continue };
        let Ok((w, h)) = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|_| ())
            .and_then(|r| r.into_dimensions().map_err(|_| ()))
        else {
            continue;
        };
        let width_emu = (FIGURE_WIDTH_IN * EMU_PER_INCH) as u32;
        let height_emu = (width_emu as f32 * h as f32 / w.max(1) as f32) as u32;
        let caption = f.caption.clone().unwrap_or_else(|| format!("Figure from page {}", f.page));
        let mut cost = height_emu as f32 / EMU_PER_INCH * 72.0 + measure.height(&caption, BODY_PT - 1.0);
        if !paid[p] {
            cost += part_cost[p];
        }
        if used + cost > budget * 0.25 + measure.height(&heading, HEADING_PT) {
            continue;
        }
        used += cost;
        paid[p] = true;
        let section = f.section.unwrap_or(usize::MAX);
        placed.push((p, section, Block::Figure { path: f.path.clone(), width_emu, height_emu, caption }));
    }

    // Each document's sentences by MMR over importance (centrality and key terms).
    // Candidates: the 600 most important sentences of each (far more than two pages hold).
    let orders: Vec<Vec<usize>> = parts
        .iter()
        .map(|p| {
            let m = p.material;
            let relevance = m.importances();
            let mut candidates = descending(&relevance);
            candidates.truncate(600);
            if m.sentence_vectors.len() == m.sentences.len() {
                mmr(&candidates, &relevance, &m.sentence_vectors, candidates.len(), 0.7)
            } else {
                candidates
            }
        })
        .collect();
    // Every document first gets a sentence; then they take turns in proportion to their
    // sentences: next is the one furthest below its share.
    let weights: Vec<f32> = parts.iter().map(|p| p.material.sentences.len().max(1) as f32).collect();
    let mut taken = vec![0usize; parts.len()];
    let turn = |p: usize, taken: &[usize]| if taken[p] == 0 { 0.0 } else { (taken[p] + 1) as f32 / weights[p] };
    let mut next = vec![0usize; parts.len()];
    let mut chosen: Vec<Vec<bool>> = parts.iter().map(|p| vec![false; p.material.sentences.len()]).collect();
    let mut opened: Vec<Vec<bool>> = parts.iter().map(|p| vec![false; p.material.sections.len()]).collect();
    let mut seen_text = std::collections::HashSet::new();
    let mut on_sheet: Vec<(usize, usize)> = Vec::new();
    while let Some(p) = (0..parts.len())
        .filter(|&p| next[p] < orders[p].len())
        .min_by(|&a, &b| turn(a, &taken).total_cmp(&turn(b, &taken)))
    {
        let i = orders[p][next[p]];
        next[p] += 1;
        let m = parts[p].material;
        let s = &m.sentences[i];
        let mut cost = measure.height(&format!("• {}", s.text), BODY_PT);
        if !opened[p][s.section] {
            cost += measure.height(section_title(m, s.section), HEADING_PT);
        }
        if !paid[p] {
            cost += part_cost[p];
        }
        if used + cost > budget || seen_text.contains(&normalize_text(&s.text)) {
            continue;
        }
        let vector = m.sentence_vectors.get(i);
        let repeated = on_sheet.iter().any(|&(q, j)| {
            q != p
                && vector
                    .zip(parts[q].material.sentence_vectors.get(j))
                    .is_some_and(|(a, b)| cosine(a, b) >= SAME_SENTENCE)
        });
        if repeated {
            continue;
        }
        used += cost;
        seen_text.insert(normalize_text(&s.text));
        on_sheet.push((p, i));
        taken[p] += 1;
        paid[p] = true;
        chosen[p][i] = true;
        opened[p][s.section] = true;
    }

    let mut blocks = vec![Block::Heading { level: 1, text: heading }];
    blocks.extend(opening);
    for (p, part) in parts.iter().enumerate() {
        let m = part.material;
        let figures_of = |section: usize| -> Vec<Block> {
            placed.iter().filter(|(q, s, _)| *q == p && *s == section).map(|(_, _, b)| b.clone()).collect()
        };
        if course && paid[p] {
            blocks.push(Block::Heading { level: 1, text: part.name.to_string() });
            blocks.extend(part_terms[p].clone());
        }
        for (si, section) in m.sections.iter().enumerate() {
            let figures_here = figures_of(si);
            if !opened[p][si] && figures_here.is_empty() {
                continue;
            }
            let level = if course || section.path.len() > 1 { 2 } else { 1 };
            blocks.push(Block::Heading { level, text: section_title(m, si).to_string() });
            for &i in &section.sentences {
                if chosen[p][i] {
                    blocks.push(Block::Bullet(m.sentences[i].text.clone()));
                }
            }
            blocks.extend(figures_here);
        }
        blocks.extend(placed.iter().filter(|(q, s, _)| *q == p && *s >= m.sections.len()).map(|(_, _, b)| b.clone()));
    }
    blocks
}

fn section_title(material: &Material, section: usize) -> &str {
    material.sections[section].title().unwrap_or("Overview")
}

/// Writes the planned blocks as a .docx.
pub fn build(blocks: &[Block], config: &GenerateConfig) -> Result<Vec<u8>, StageError> {
    let arial = || RunFonts::new().ascii("Arial").hi_ansi("Arial").cs("Arial").east_asia("Arial");
    let (w, h) = page_twips(config);
    let m = MARGIN_TWIPS as i32;
    let gap = (PARAGRAPH_GAP_PT * 20.0) as u32;
    let heading = |id: &str, name: &str, level: usize| {
        Style::new(id, StyleType::Paragraph)
            .name(name)
            .based_on("Normal")
            .next("Normal")
            .size((HEADING_PT * 2.0) as usize)
            .bold()
            .fonts(arial())
            .outline_lvl(level)
            .line_spacing(docx_rs::LineSpacing::new().before(60).after(gap))
    };
    let mut docx = Docx::new()
        .page_size(w, h)
        .page_margin(PageMargin { top: m, left: m, bottom: m, right: m, header: 360, footer: 360, gutter: 0 })
        .default_fonts(arial())
        .default_size((BODY_PT * 2.0) as usize)
        // Single spacing said outright: LibreOffice reads `line="240"` without a rule as 12 pt
        // (a third more than single at 9 pt), and the sheet ran a page over its budget.
        .default_line_spacing(
            docx_rs::LineSpacing::new().after(gap).line(240).line_rule(docx_rs::LineSpacingType::Auto),
        )
        .add_style(heading("Heading1", "heading 1", 0))
        .add_style(heading("Heading2", "heading 2", 1));
    docx.document.section_property.columns = 2;
    docx.document.section_property.space = COLUMN_GAP_TWIPS as usize;
    for block in blocks {
        let p = match block {
            Block::Heading { level, text } => Paragraph::new()
                .style(if *level == 1 { "Heading1" } else { "Heading2" })
                .add_run(Run::new().add_text(text)),
            Block::Labelled { label, text } => Paragraph::new()
                .add_run(Run::new().add_text(format!("{label}: ")).bold())
                .add_run(Run::new().add_text(text)),
            Block::Bullet(text) => Paragraph::new().add_run(Run::new().add_text(format!("• {text}"))),
            Block::Figure { path, width_emu, height_emu, caption } => {
                let bytes = std::fs::read(path).map_err(|e| StageError::transient("read figure", e))?;
                docx = docx.add_paragraph(
                    Paragraph::new().add_run(Run::new().add_image(Pic::new(&bytes).size(*width_emu, *height_emu))),
                );
                Paragraph::new().add_run(Run::new().add_text(caption).italic().size(((BODY_PT - 1.0) * 2.0) as usize))
            }
        };
        docx = docx.add_paragraph(p);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    docx.build().pack(&mut out).map_err(|e| StageError::transient("write cheat sheet", e))?;
    Ok(out.into_inner())
}
