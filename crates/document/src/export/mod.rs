//! A processed document's content out: Markdown, JSON (the page model as blocks) or plain
//! text. Pages are read from the work directory one at a time and written as they come,
//! so memory stays bounded by one page whatever the document's length.
//!
//! - [`markdown`] — headings by level, paragraphs with line-end hyphens joined, lists,
//!   tables as GitHub tables, figures as image links, page markers, speaker notes quoted.
//! - [`json`] — every block with its type, text, box, page, reading-order index, heading
//!   path and where its text came from (schema: `jobs/export.schema.json`).
//! - [`table`] — a table region's words as rows of cells.
//!
//! Plain text is the Markdown's reading order without markup: one paragraph per block.

use std::io::Write;
use std::str::FromStr;

use lectern_queue::storage::Figure;

use crate::error::StageError;
use crate::model::workdir::{Page, WorkDir};
use crate::text::blocks::{self, Block, heading_level};

pub mod json;
pub mod markdown;
pub mod table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Text,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
            Format::Text => "text/plain; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Json => "json",
            Format::Text => "txt",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "markdown" | "md" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            "text" | "txt" => Ok(Format::Text),
            other => Err(format!("unknown export format {other:?} (markdown, json or text)")),
        }
    }
}

/// What the export says about the document besides its pages.
pub struct Source<'a> {
    pub document_id: &'a str,
    pub filename: &'a str,
    pub language: Option<&'a str>,
    pub figures: &'a [Figure],
    /// Prefix of figure links; a figure's file name follows it.
    pub figure_base: &'a str,
}

/// Writes the document's content to `out`, page after page.
pub fn write(workdir: &WorkDir, source: &Source, format: Format, out: &mut dyn Write) -> Result<(), StageError> {
    let numbers = workdir.page_numbers()?;
    let mut writer: Box<dyn PageWriter + '_> = match format {
        Format::Markdown => Box::new(markdown::Writer::new(source, false)),
        Format::Text => Box::new(markdown::Writer::new(source, true)),
        Format::Json => Box::new(json::Writer::new(source)),
    };
    writer.start(out)?;
    let mut headings = Headings::default();
    for (i, number) in numbers.into_iter().enumerate() {
        let page = workdir.load_page(number)?;
        writer.page(out, i, &page, &blocks::page_blocks(&page), &mut headings)?;
    }
    writer.finish(out)?;
    out.flush()?;
    Ok(())
}

/// One output format, fed page by page.
trait PageWriter {
    fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
    /// `index` counts pages from 0; `blocks` are the page's in reading order.
    fn page(
        &mut self,
        out: &mut dyn Write,
        index: usize,
        page: &Page,
        blocks: &[Block],
        headings: &mut Headings,
    ) -> std::io::Result<()>;
    fn finish(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// The headings above the current block, outermost first, with their levels.
#[derive(Default)]
pub struct Headings {
    path: Vec<(usize, String)>,
}

impl Headings {
    /// Enters a heading with this text and source level; returns its level.
    fn enter(&mut self, title: &str, level: Option<u8>) -> usize {
        let level = heading_level(title, level);
        self.path.retain(|(l, _)| *l < level);
        self.path.push((level, title.to_string()));
        level
    }

    fn path(&self) -> Vec<&str> {
        self.path.iter().map(|(_, t)| t.as_str()).collect()
    }
}

/// Figures of one page, top to bottom.
fn page_figures(figures: &[Figure], page: u32) -> Vec<&Figure> {
    let mut on_page: Vec<&Figure> = figures.iter().filter(|f| f.page == i64::from(page)).collect();
    on_page.sort_by(|a, b| a.bbox[1].total_cmp(&b.bbox[1]));
    on_page
}

fn figure_file(figure: &Figure) -> &str {
    std::path::Path::new(&figure.path).file_name().and_then(|n| n.to_str()).unwrap_or(&figure.path)
}
