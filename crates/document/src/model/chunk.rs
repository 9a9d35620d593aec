//! Chunks: what the chunk stage cuts a document into and every later stage reads (the
//! index, classification, study material).

use serde::{Deserialize, Serialize};

use super::workdir::BBox;

/// Where a chunk lies on one page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Span {
    pub page: u32,
    pub bbox: BBox,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Chunk {
    /// Stable id from document, position and content: re-chunking gives the same ids.
    pub id: String,
    pub document_id: String,
    pub index: u32,
    /// First page of the chunk and its box there.
    pub page: u32,
    pub bbox: BBox,
    /// Every page the chunk touches (a paragraph may run over a page break).
    pub spans: Vec<Span>,
    /// Section titles above this chunk, outermost first.
    pub heading_path: Vec<String>,
    /// Figure images (their blob-store keys) whose captions are in this chunk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<String>,
    /// Tokens of [`Chunk::embedding_text`].
    pub tokens: u32,
    pub text: String,
}

impl Chunk {
    /// What the embedding model reads: heading path, then the text.
    pub fn embedding_text(&self) -> String {
        embedding_text(&self.heading_path, &self.text)
    }
}

pub fn embedding_text(heading_path: &[String], text: &str) -> String {
    if heading_path.is_empty() { text.to_string() } else { format!("{}\n{}", heading_path.join(" > "), text) }
}
