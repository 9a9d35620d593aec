//! The cheat sheet (.docx, docx-rs): A4 or US Letter, 0.5" margins, two columns, Arial 9 pt
//! body, 11 pt bold headings in Word's built-in "heading 1"/"heading 2" styles (so the
//! navigation pane works). Content, extractive: key terms, then the document's sections in
//! order, each with its most important sentences (centrality and key terms, MMR over
//! sentence embeddings), and figures 3.2" wide with their captions — filled up to a page
//! budget estimated with Arial's metrics (Liberation Sans has the same widths).

use docx_rs::{Docx, PageMargin, Paragraph, Pic, Run, RunFonts, Style, StyleType};

use super::rank::{descending, mmr};
use super::text::Material;
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

/// Chooses the content: title, the summary when an LLM wrote one, key terms, then per
/// section its selected sentences and figures, adding sentences in MMR order while the
/// estimate fits `config.pages`.
pub fn plan(
    title: &str,
    material: &Material,
    figures: &[FigureInput],
    summary: Option<&str>,
    config: &GenerateConfig,
) -> Vec<Block> {
    let measure = Measure::new(config);
    let (_, h) = page_twips(config);
    let column_pt = (h - 2 * MARGIN_TWIPS) as f32 / 20.0;
    // Two columns per page; keep 10 % for what the estimate cannot see (widow and orphan
    // control, fallback fonts for symbols, rounding): with 5 % a short two-column paper
    // still ran onto a third page in LibreOffice.
    let budget = column_pt * 2.0 * config.pages as f32 * 0.90;
    let mut used = 0.0;

    let heading = format!("Cheat sheet: {title}");
    used += measure.height(&heading, HEADING_PT);
    let mut opening = Vec::new();
    if let Some(summary) = summary {
        opening.push(Block::Labelled { label: "Summary".into(), text: summary.to_string() });
    }
    let terms: Vec<&str> = material.terms.iter().take(12).map(|t| t.text.as_str()).collect();
    if !terms.is_empty() {
        opening.push(Block::Labelled { label: "Key terms".into(), text: terms.join(" · ") });
    }
    for block in &opening {
        if let Block::Labelled { label, text } = block {
            used += measure.height(&format!("{label}: {text}"), BODY_PT);
        }
    }

    // Figures first take their room (at most a quarter of the budget).
    let mut placed: Vec<(usize, Block)> = Vec::new();
    for f in figures.iter().take(MAX_FIGURES) {
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
        let cost = height_emu as f32 / EMU_PER_INCH * 72.0 + measure.height(&caption, BODY_PT - 1.0);
        if used + cost > budget * 0.25 + measure.height(&heading, HEADING_PT) {
            continue;
        }
        used += cost;
        let section = f.section.unwrap_or(usize::MAX);
        placed.push((section, Block::Figure { path: f.path.clone(), width_emu, height_emu, caption }));
    }

    // Sentences by MMR over importance (centrality and key terms), each costing its lines
    // (and its section's heading the first time), until the budget is spent.
    // Candidates: the 600 most important sentences (far more than two pages hold).
    let relevance = material.importances();
    let mut candidates = descending(&relevance);
    candidates.truncate(600);
    let order = if material.sentence_vectors.len() == material.sentences.len() {
        mmr(&candidates, &relevance, &material.sentence_vectors, candidates.len(), 0.7)
    } else {
        candidates
    };
    let mut chosen = vec![false; material.sentences.len()];
    let mut opened = vec![false; material.sections.len()];
    for i in order {
        let s = &material.sentences[i];
        let mut cost = measure.height(&format!("• {}", s.text), BODY_PT);
        if !opened[s.section] {
            cost += measure.height(section_title(material, s.section), HEADING_PT);
        }
        if used + cost > budget {
            continue;
        }
        used += cost;
        chosen[i] = true;
        opened[s.section] = true;
    }

    let mut blocks = vec![Block::Heading { level: 1, text: heading }];
    blocks.extend(opening);
    for (si, section) in material.sections.iter().enumerate() {
        let figures_here: Vec<Block> = placed.iter().filter(|(s, _)| *s == si).map(|(_, b)| b.clone()).collect();
        if !opened[si] && figures_here.is_empty() {
            continue;
        }
        let level = if section.path.len() <= 1 { 1 } else { 2 };
        blocks.push(Block::Heading { level, text: section_title(material, si).to_string() });
        for &i in &section.sentences {
            if chosen[i] {
                blocks.push(Block::Bullet(material.sentences[i].text.clone()));
            }
        }
        blocks.extend(figures_here);
    }
    blocks.extend(placed.into_iter().filter(|(s, _)| *s >= material.sections.len()).map(|(_, b)| b));
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
