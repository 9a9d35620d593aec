//! DOCX and PPTX uploads: text, headings, tables (as text), speaker notes and embedded
//! images, read from the Office Open XML parts (a ZIP of XML). Nothing is rendered: each
//! slide, or each page of a document (split at Word's page breaks, else every
//! [`LINES_PER_PAGE`] lines), becomes a page whose words are set in reading order on a
//! virtual page, with a region per block. Chunking, search and generation then see the
//! same page model as for PDFs. Embedded images become figures.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use roxmltree::Node;

use crate::error::StageError;
use crate::formats::sniff::MediaType;
use crate::model::workdir::{BBox, Page, Region, TextSource, Word};

/// A part larger than this (decompressed) is refused: ZIP bombs.
const MAX_PART_BYTES: u64 = 64 << 20;
/// All parts read through one [`Package`] together, decompressed.
const MAX_READ_BYTES: u64 = 256 << 20;
/// Content controls (`w:sdt`, custom XML) nested deeper than this are refused.
const MAX_NESTING: usize = 64;
/// Words on one virtual page (a dense printed page has about 1,000): a slide or a single
/// paragraph holding more is refused rather than laid out.
pub const MAX_WORDS_PER_PAGE: usize = 20_000;
/// Virtual page: US Letter, 1" margins, 10 pt text on 12 pt lines, 5 pt per character.
const PAGE_W: f32 = 612.0;
const PAGE_H: f32 = 792.0;
const MARGIN: f32 = 72.0;
const CHAR_W: f32 = 5.0;
const LINE_H: f32 = 12.0;
pub const LINES_PER_PAGE: usize = ((PAGE_H - 2.0 * MARGIN) / LINE_H) as usize;
/// Images are placed 3" wide (or less, keeping their aspect ratio).
const FIGURE_W: f32 = 216.0;

/// One piece of a document in reading order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading {
        level: u8,
        text: String,
    },
    Paragraph(String),
    /// One line per row, cells separated by " | ".
    Table(Vec<String>),
    /// A slide's speaker notes.
    Notes(String),
    /// An embedded image: its part name, read only when its page is rendered.
    Image(String),
    PageBreak,
}

/// A page laid out from blocks, and the images placed on it (box, part name for
/// [`Package::bytes`]).
pub struct LaidOut {
    pub page: Page,
    pub images: Vec<(BBox, String)>,
}

/// DOCX or PPTX, from the parts the ZIP holds; `None` for any other ZIP.
pub fn kind(path: &Path) -> Result<Option<MediaType>, StageError> {
    let package = Package::open(path)?;
    Ok(if package.has("word/document.xml") {
        Some(MediaType::Docx)
    } else if package.has("ppt/presentation.xml") {
        Some(MediaType::Pptx)
    } else {
        None
    })
}

/// The number of pages: a DOCX's blocks paginated (not laid out), a PPTX's slide list.
pub fn page_count(package: &mut Package, media: MediaType) -> Result<u32, StageError> {
    Ok(match media {
        MediaType::Docx => paginate(docx(package)?).len() as u32,
        MediaType::Pptx => slide_parts(package)?.len() as u32,
        other => return Err(not_office(other)),
    })
}

/// Reads the text of the pages in `range` and lays them out; image bytes stay in `package`.
pub fn read(
    package: &mut Package,
    media: MediaType,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Vec<LaidOut>, StageError> {
    let pages: Vec<(u32, Vec<Block>)> = match media {
        MediaType::Docx => (1..).zip(paginate(docx(package)?)).filter(|(n, _)| range.contains(n)).collect(),
        MediaType::Pptx => {
            let slides = slide_parts(package)?;
            let mut pages = Vec::new();
            for (number, slide) in (1..).zip(slides).filter(|(n, _)| range.contains(n)) {
                pages.push((number, slide_blocks(package, &slide)?));
            }
            pages
        }
        other => return Err(not_office(other)),
    };
    pages.into_iter().map(|(number, blocks)| lay_out(number, blocks)).collect()
}

fn not_office(media: MediaType) -> StageError {
    StageError::BadInput(format!("{} is not an Office document", media.mime()))
}

/// The ZIP package of a DOCX or PPTX.
pub struct Package {
    archive: zip::ZipArchive<std::fs::File>,
    /// Decompressed bytes read so far, against [`MAX_READ_BYTES`].
    read: u64,
}

impl Package {
    pub fn open(path: &Path) -> Result<Self, StageError> {
        let file = std::fs::File::open(path)?;
        let archive = zip::ZipArchive::new(file)
            .map_err(|e| StageError::BadInput(format!("not a readable DOCX/PPTX (ZIP) file: {e}")))?;
        Ok(Self { archive, read: 0 })
    }

    fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// A part's bytes (at most [`MAX_PART_BYTES`]), `None` when it is not there.
    pub fn bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, StageError> {
        let entry = match self.archive.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(StageError::BadInput(format!("cannot read {name} in the document: {e}"))),
        };
        let mut bytes = Vec::new();
        entry
            .take(MAX_PART_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| StageError::BadInput(format!("cannot read {name} in the document: {e}")))?;
        if bytes.len() as u64 > MAX_PART_BYTES {
            return Err(StageError::BadInput(format!("{name} is over {} MiB uncompressed", MAX_PART_BYTES >> 20)));
        }
        self.read += bytes.len() as u64;
        if self.read > MAX_READ_BYTES {
            return Err(StageError::BadInput(format!(
                "the document's parts add up to over {} MiB uncompressed",
                MAX_READ_BYTES >> 20
            )));
        }
        Ok(Some(bytes))
    }

    fn xml(&mut self, name: &str) -> Result<Option<String>, StageError> {
        let Some(bytes) = self.bytes(name)? else { return Ok(None) };
        String::from_utf8(bytes).map(Some).map_err(|_| StageError::BadInput(format!("{name} is not UTF-8 XML")))
    }

    /// Relationships of `part`: id → (type, target part name).
    fn rels(&mut self, part: &str) -> Result<HashMap<String, (String, String)>, StageError> {
        let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
        let Some(xml) = self.xml(&format!("{dir}/_rels/{file}.rels"))? else { return Ok(HashMap::new()) };
        let doc = parse(&xml, part)?;
        let mut rels = HashMap::new();
        for rel in doc.descendants().filter(|n| n.tag_name().name() == "Relationship") {
            if rel.attribute("TargetMode") == Some("External") {
                continue;
            }
            let (Some(id), Some(kind), Some(target)) =
                (rel.attribute("Id"), rel.attribute("Type"), rel.attribute("Target"))
            else {
                continue;
            };
            rels.insert(id.to_string(), (kind.to_string(), resolve(dir, target)));
        }
        Ok(rels)
    }

    /// The image a relationship points to, if it is there.
    fn image(&self, rels: &HashMap<String, (String, String)>, id: &str) -> Option<Block> {
        let (_, target) = rels.get(id)?;
        self.has(target).then(|| Block::Image(target.clone()))
    }
}

fn parse<'a>(xml: &'a str, part: &str) -> Result<roxmltree::Document<'a>, StageError> {
    roxmltree::Document::parse(xml).map_err(|e| StageError::BadInput(format!("{part} is not valid XML: {e}")))
}

/// A relationship target relative to `dir`, as a part name ("../media/a.png" from "ppt/slides").
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { dir.split('/').collect() };
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("/")
}

fn named<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |n| n.tag_name().name() == name)
}

/// An attribute by local name, whatever its namespace prefix (`w:val`, `r:embed`).
fn attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes().find(|a| a.name() == name).map(|a| a.value())
}

/// Text of the `t` elements under `node` (w:t in Word, a:t in DrawingML), tabs as spaces.
fn text_of(node: Node) -> String {
    let mut out = String::new();
    for n in node.descendants() {
        match n.tag_name().name() {
            "t" => out.push_str(n.text().unwrap_or("")),
            "tab" | "br" => out.push(' '),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn table_rows(table: Node) -> Vec<String> {
    table
        .descendants()
        .filter(|n| n.tag_name().name() == "tr")
        .map(|row| {
            row.children()
                .filter(|c| c.tag_name().name() == "tc")
                .map(text_of)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .filter(|r| !r.is_empty())
        .collect()
}

// ---- DOCX ----

fn docx(package: &mut Package) -> Result<Vec<Block>, StageError> {
    let headings = match package.xml("word/styles.xml")? {
        Some(xml) => heading_styles(&parse(&xml, "word/styles.xml")?),
        None => HashMap::new(),
    };
    let rels = package.rels("word/document.xml")?;
    let xml = package.xml("word/document.xml")?.ok_or_else(|| StageError::BadInput("no word/document.xml".into()))?;
    let doc = parse(&xml, "word/document.xml")?;
    let body = doc
        .descendants()
        .find(|n| n.tag_name().name() == "body")
        .ok_or_else(|| StageError::BadInput("word/document.xml has no body".into()))?;
    let mut blocks = Vec::new();
    docx_blocks(package, body, 0, &headings, &rels, &mut blocks)?;
    Ok(blocks)
}

fn docx_blocks(
    package: &mut Package,
    parent: Node,
    depth: usize,
    headings: &HashMap<String, u8>,
    rels: &HashMap<String, (String, String)>,
    blocks: &mut Vec<Block>,
) -> Result<(), StageError> {
    if depth > MAX_NESTING {
        return Err(StageError::BadInput(format!(
            "word/document.xml nests content controls deeper than {MAX_NESTING} levels"
        )));
    }
    for node in parent.children() {
        match node.tag_name().name() {
            "p" => {
                let breaks = node.descendants().any(|n| {
                    n.tag_name().name() == "lastRenderedPageBreak"
                        || (n.tag_name().name() == "br" && attr(n, "type") == Some("page"))
                });
                if breaks && !blocks.is_empty() {
                    blocks.push(Block::PageBreak);
                }
                let text = text_of(node);
                let ppr = named(node, "pPr").next();
                let style = ppr.and_then(|p| named(p, "pStyle").next()).and_then(|s| attr(s, "val"));
                let outline = ppr.and_then(|p| named(p, "outlineLvl").next()).and_then(|o| attr(o, "val"));
                let level = style
                    .and_then(|s| headings.get(s).copied())
                    .or_else(|| outline.and_then(|v| v.parse::<u8>().ok()).filter(|l| *l < 9).map(|l| l + 1));
                let listed = ppr.is_some_and(|p| named(p, "numPr").next().is_some());
                if !text.is_empty() {
                    blocks.push(match level {
                        Some(level) => Block::Heading { level, text },
                        None if listed => Block::Paragraph(format!("• {text}")),
                        None => Block::Paragraph(text),
                    });
                }
                for blip in node.descendants().filter(|n| n.tag_name().name() == "blip") {
                    if let Some(image) = attr(blip, "embed").and_then(|id| package.image(rels, id)) {
                        blocks.push(image);
                    }
                }
            }
            "tbl" => {
                let rows = table_rows(node);
                if !rows.is_empty() {
                    blocks.push(Block::Table(rows));
                }
            }
            "sdt" | "sdtContent" | "customXml" => docx_blocks(package, node, depth + 1, headings, rels, blocks)?,
            _ => {}
        }
    }
    Ok(())
}

/// Paragraph style id → heading level, from styles named "heading N" or "Title".
fn heading_styles(styles: &roxmltree::Document) -> HashMap<String, u8> {
    let mut out = HashMap::new();
    for style in styles.descendants().filter(|n| n.tag_name().name() == "style") {
        let (Some(id), Some(name)) = (attr(style, "styleId"), named(style, "name").next().and_then(|n| attr(n, "val")))
        else {
            continue;
        };
        let name = name.to_lowercase();
        let level = if name == "title" {
            Some(1)
        } else {
            name.strip_prefix("heading ").and_then(|n| n.trim().parse::<u8>().ok()).filter(|l| (1..=9).contains(l))
        };
        if let Some(level) = level {
            out.insert(id.to_string(), level);
        }
    }
    out
}

/// Splits blocks into pages at page breaks and every [`LINES_PER_PAGE`] lines.
fn paginate(blocks: Vec<Block>) -> Vec<Vec<Block>> {
    let mut pages = vec![Vec::new()];
    let mut lines = 0;
    for block in blocks {
        if matches!(block, Block::PageBreak) {
            if !pages.last().expect("one page").is_empty() {
                pages.push(Vec::new());
                lines = 0;
            }
            continue;
        }
        let height = block_lines(&block);
        if lines > 0 && lines + height > LINES_PER_PAGE {
            pages.push(Vec::new());
            lines = 0;
        }
        lines += height;
        pages.last_mut().expect("one page").push(block);
    }
    pages
}

// ---- PPTX ----

/// The slide parts in presentation order. A part listed twice is refused: no editor writes
/// that, and it would make one huge part count as thousands of slides.
fn slide_parts(package: &mut Package) -> Result<Vec<String>, StageError> {
    let xml =
        package.xml("ppt/presentation.xml")?.ok_or_else(|| StageError::BadInput("no ppt/presentation.xml".into()))?;
    let rels = package.rels("ppt/presentation.xml")?;
    let doc = parse(&xml, "ppt/presentation.xml")?;
    let slides: Vec<String> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "sldId")
        .filter_map(rel_id)
        .filter_map(|id| rels.get(id).map(|(_, target)| target.clone()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(again) = slides.iter().find(|s| !seen.insert(s.as_str())) {
        let times = slides.iter().filter(|s| *s == again).count();
        return Err(StageError::BadInput(format!("the presentation lists the slide {again} {times} times")));
    }
    Ok(slides)
}

/// The `r:id` of a node (its `id` attribute in the relationships namespace).
fn rel_id<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.name() == "id" && a.namespace().is_some_and(|ns| ns.ends_with("/relationships")))
        .map(|a| a.value())
}

fn slide_blocks(package: &mut Package, slide: &str) -> Result<Vec<Block>, StageError> {
    let Some(xml) = package.xml(slide)? else { return Ok(Vec::new()) };
    let rels = package.rels(slide)?;
    let doc = parse(&xml, slide)?;
    let mut blocks = Vec::new();
    for node in doc.descendants() {
        match node.tag_name().name() {
            "sp" => {
                let placeholder =
                    node.descendants().find(|n| n.tag_name().name() == "ph").and_then(|ph| attr(ph, "type"));
                let paragraphs = node.descendants().filter(|n| n.tag_name().name() == "p");
                if matches!(placeholder, Some("title" | "ctrTitle")) {
                    let text = text_of(node);
                    if !text.is_empty() {
                        blocks.push(Block::Heading { level: 1, text });
                    }
                } else {
                    blocks.extend(paragraphs.map(text_of).filter(|t| !t.is_empty()).map(Block::Paragraph));
                }
            }
            "tbl" => {
                let rows = table_rows(node);
                if !rows.is_empty() {
                    blocks.push(Block::Table(rows));
                }
            }
            "pic" => {
                let blip = node.descendants().find(|n| n.tag_name().name() == "blip");
                if let Some(image) = blip.and_then(|b| attr(b, "embed")).and_then(|id| package.image(&rels, id)) {
                    blocks.push(image);
                }
            }
            _ => {}
        }
    }
    let notes = rels.values().find(|(kind, _)| kind.ends_with("/notesSlide")).map(|(_, target)| target.clone());
    if let Some(notes) = notes
        && let Some(text) = notes_text(package, &notes)?
    {
        blocks.push(Block::Notes(text));
    }
    Ok(blocks)
}

/// Text of the body placeholder of a notes slide (not the slide image or number).
fn notes_text(package: &mut Package, part: &str) -> Result<Option<String>, StageError> {
    let Some(xml) = package.xml(part)? else { return Ok(None) };
    let doc = parse(&xml, part)?;
    let text = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "sp")
        .filter(|sp| sp.descendants().any(|n| n.tag_name().name() == "ph" && attr(n, "type") == Some("body")))
        .map(text_of)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((!text.trim().is_empty()).then_some(text))
}

// ---- Virtual page layout ----

const CHARS_PER_LINE: usize = ((PAGE_W - 2.0 * MARGIN) / CHAR_W) as usize;

/// Lines a block takes on the virtual page.
fn block_lines(block: &Block) -> usize {
    let wrapped = |text: &str| text.chars().count().div_ceil(CHARS_PER_LINE).max(1);
    match block {
        Block::Heading { text, .. } | Block::Paragraph(text) => wrapped(text) + 1,
        Block::Notes(text) => wrapped(text) + 2,
        Block::Table(rows) => rows.iter().map(|r| wrapped(r)).sum::<usize>() + 1,
        Block::Image(_) => (FIGURE_W / LINE_H) as usize + 1,
        Block::PageBreak => 0,
    }
}

/// Sets the blocks' words line by line on a virtual page, one region per block; the page
/// grows past Letter height when a slide holds more.
fn lay_out(number: u32, blocks: Vec<Block>) -> Result<LaidOut, StageError> {
    let count: usize = blocks
        .iter()
        .map(|b| match b {
            Block::Heading { text, .. } | Block::Paragraph(text) | Block::Notes(text) => {
                text.split_whitespace().count()
            }
            Block::Table(rows) => rows.iter().map(|r| r.split_whitespace().count()).sum(),
            Block::Image(_) | Block::PageBreak => 0,
        })
        .sum();
    if count > MAX_WORDS_PER_PAGE {
        return Err(StageError::BadInput(format!(
            "page {number} holds {count} words, over the limit of {MAX_WORDS_PER_PAGE} for one page or slide"
        )));
    }
    let mut words = Vec::new();
    let mut regions = Vec::new();
    let mut images = Vec::new();
    let mut y = MARGIN;
    for block in blocks {
        let (label, level, lines): (&str, Option<u8>, Vec<String>) = match block {
            Block::Heading { level, text } => ("title", Some(level), vec![text]),
            Block::Paragraph(text) => ("text", None, vec![text]),
            Block::Notes(text) => ("notes", None, vec![format!("Notes: {text}")]),
            Block::Table(rows) => ("table", None, rows),
            Block::Image(part) => {
                let bbox = [MARGIN, y, MARGIN + FIGURE_W, y + FIGURE_W];
                images.push((bbox, part));
                y += FIGURE_W + LINE_H;
                continue;
            }
            Block::PageBreak => continue,
        };
        let first = words.len();
        for line in &lines {
            let mut x = MARGIN;
            for word in line.split_whitespace() {
                let w = word.chars().count() as f32 * CHAR_W;
                if x > MARGIN && x + w > PAGE_W - MARGIN {
                    x = MARGIN;
                    y += LINE_H;
                }
                words.push(Word {
                    text: word.to_string(),
                    bbox: [x, y, x + w, y + LINE_H * 0.8],
                    conf: None,
                    bold: false,
                });
                x += w + CHAR_W;
            }
            y += LINE_H;
        }
        if let Some(bbox) = crate::model::workdir::union(words[first..].iter().map(|w| w.bbox)) {
            regions.push(Region { label: label.to_string(), score: 1.0, bbox, level });
        }
        y += LINE_H;
    }
    let page = Page {
        number,
        width: PAGE_W,
        height: (y + MARGIN).max(PAGE_H),
        source: TextSource::TextLayer,
        words,
        layout_image: None,
        ocr_image: None,
        regions,
        ocr_confidence: None,
        skew: None,
        turn: None,
        invisible_text: false,
        layer_agreement: None,
        ocr_language: None,
        images: Vec::new(),
    };
    Ok(LaidOut { page, images })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_targets_resolve_to_part_names() {
        assert_eq!(resolve("ppt/slides", "../media/image1.png"), "ppt/media/image1.png");
        assert_eq!(resolve("word", "media/image1.png"), "word/media/image1.png");
        assert_eq!(resolve("ppt", "/ppt/slides/slide1.xml"), "ppt/slides/slide1.xml");
    }

    #[test]
    fn pages_break_at_page_breaks_and_when_full() {
        let para = || Block::Paragraph("word ".repeat(90));
        let mut blocks = vec![para(), Block::PageBreak, para()];
        blocks.extend((0..40).map(|_| para()));
        let pages = paginate(blocks);
        assert_eq!(pages[0].len(), 1);
        assert!(pages.len() >= 3, "{} pages", pages.len());
        assert!(pages.iter().all(|p| p.iter().map(block_lines).sum::<usize>() <= LINES_PER_PAGE));
        let laid = lay_out(2, pages[1].clone()).unwrap();
        assert!(laid.page.words.iter().all(|w| w.bbox[2] <= PAGE_W - MARGIN + 0.1 && w.bbox[3] <= laid.page.height));
        assert!(laid.page.regions.iter().all(|r| r.label == "text"));
    }
}
