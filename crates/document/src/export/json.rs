//! The page model as JSON: the document, then its pages, each with its blocks in reading
//! order. Written page by page; `jobs/export.schema.json` describes it.

use std::io::{self, Write};

use serde::Serialize;

use super::{Headings, PageWriter, Source, figure_file, page_figures, table};
use crate::model::workdir::{BBox, Page, TextSource};
use crate::text::blocks::{self, Block, Kind, running_text};

pub struct Writer<'a> {
    source: &'a Source<'a>,
    /// Reading-order index of the next block, counted over the whole document.
    order: usize,
}

impl<'a> Writer<'a> {
    pub fn new(source: &'a Source<'a>) -> Self {
        Self { source, order: 0 }
    }
}

#[derive(Serialize)]
struct Head<'a> {
    document_id: &'a str,
    filename: &'a str,
    language: Option<&'a str>,
}

#[derive(Serialize)]
struct PageOut<'a> {
    number: u32,
    width: f32,
    height: f32,
    source: TextSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    ocr_confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ocr_language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skew: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    turn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_agreement: Option<f32>,
    blocks: Vec<BlockOut<'a>>,
    /// Running headers and footers, top to bottom: not in `blocks` (nor in chunks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    furniture: Vec<FurnitureOut<'a>>,
    figures: Vec<FigureOut>,
}

#[derive(Serialize)]
struct FurnitureOut<'a> {
    label: &'a str,
    text: String,
    bbox: BBox,
}

#[derive(Serialize)]
struct BlockOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The layout label the block came from.
    label: &'a str,
    text: String,
    bbox: BBox,
    page: u32,
    order: usize,
    heading_path: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<Vec<String>>>,
    /// Mean OCR confidence of the block's words (0–100); absent for the text layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f32>,
}

#[derive(Serialize)]
struct FigureOut {
    bbox: [f64; 4],
    url: String,
}

impl PageWriter for Writer<'_> {
    fn start(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let head = serde_json::to_string(&Head {
            document_id: self.source.document_id,
            filename: self.source.filename,
            language: self.source.language,
        })?;
        // The head object, left open for the pages array.
        write!(out, "{},\"pages\":[", head.trim_end_matches('}'))
    }

    fn page(
        &mut self,
        out: &mut dyn Write,
        index: usize,
        page: &Page,
        blocks: &[Block],
        headings: &mut Headings,
    ) -> io::Result<()> {
        let mut out_blocks = Vec::with_capacity(blocks.len());
        for block in blocks {
            let text = running_text(&block.words);
            let level = (block.kind == Kind::Heading).then(|| headings.enter(&text, block.level));
            let confs: Vec<f32> = block.words.iter().filter_map(|w| w.1.conf).collect();
            out_blocks.push(BlockOut {
                kind: match block.kind {
                    Kind::Heading => "heading",
                    Kind::Text => "paragraph",
                    Kind::Table => "table",
                    Kind::Caption => "caption",
                    Kind::Notes => "notes",
                },
                label: block.label,
                text,
                bbox: block.bbox,
                page: page.number,
                order: self.order,
                heading_path: headings.path().into_iter().map(String::from).collect(),
                level,
                rows: (block.kind == Kind::Table).then(|| table::rows(&block.words)),
                confidence: (!confs.is_empty()).then(|| confs.iter().sum::<f32>() / confs.len() as f32),
            });
            self.order += 1;
        }
        let figures = page_figures(self.source.figures, page.number)
            .into_iter()
            .map(|f| FigureOut { bbox: f.bbox, url: format!("{}{}", self.source.figure_base, figure_file(f)) })
            .collect();
        let page_out = PageOut {
            number: page.number,
            width: page.width,
            height: page.height,
            source: page.source,
            ocr_confidence: page.ocr_confidence,
            ocr_language: page.ocr_language.as_deref(),
            skew: page.skew,
            turn: page.turn,
            layer_agreement: page.layer_agreement,
            blocks: out_blocks,
            furniture: blocks::furniture(page)
                .iter()
                .map(|b| FurnitureOut { label: b.label, text: running_text(&b.words), bbox: b.bbox })
                .collect(),
            figures,
        };
        if index > 0 {
            write!(out, ",")?;
        }
        serde_json::to_writer(&mut *out, &page_out)?;
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "]}}")
    }
}
