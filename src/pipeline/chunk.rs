//! Stage 5, chunk: page text in reading order into chunks of whole sentences that keep
//! document id, page number and bounding box. Words inside header/footer regions found by
//! the layout model are left out of the body text.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StageError;
use super::workdir::{BBox, Page, Word, read_json, union, write_json};
use crate::context::Context;

/// Upper bound on words per chunk (MiniLM reads up to 256 tokens; ~1.3 tokens per word).
pub const MAX_WORDS: usize = 120;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Chunk {
    /// Stable id from document, page and position: re-chunking gives the same ids.
    pub id: String,
    pub document_id: String,
    pub page: u32,
    pub index: u32,
    pub text: String,
    pub bbox: BBox,
}

pub async fn run(ctx: &Context, document_id: &str) -> Result<(), StageError> {
    let workdir = ctx.workdir(document_id);
    let pages = workdir.load_pages()?;
    let chunks = chunk_pages(document_id, &pages);
    write_json(&workdir.chunks_file(), &chunks)
}

pub fn load(ctx: &Context, document_id: &str) -> Result<Vec<Chunk>, StageError> {
    read_json(&ctx.workdir(document_id).chunks_file())
}

pub fn chunk_pages(document_id: &str, pages: &[Page]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for page in pages {
        let body: Vec<&Word> = page.words.iter().filter(|w| !in_margin_region(page, w)).collect();
        let mut current: Vec<&Word> = Vec::new();
        let mut index = 0;
        for (i, word) in body.iter().enumerate() {
            current.push(word);
            let sentence_end = word.text.ends_with(['.', '?', '!', ':']);
            let last = i + 1 == body.len();
            // Close at a sentence end once the chunk is reasonably full, or hard at MAX_WORDS.
            if last || current.len() >= MAX_WORDS || (sentence_end && current.len() >= MAX_WORDS * 2 / 3) {
                chunks.push(make_chunk(document_id, page.number, index, &current));
                index += 1;
                current.clear();
            }
        }
    }
    chunks
}

fn make_chunk(document_id: &str, page: u32, index: u32, words: &[&Word]) -> Chunk {
    let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
    let mut hasher = Sha256::new();
    hasher.update(document_id.as_bytes());
    hasher.update(page.to_le_bytes());
    hasher.update(index.to_le_bytes());
    hasher.update(text.as_bytes());
    Chunk {
        id: hex::encode(&hasher.finalize()[..12]),
        document_id: document_id.to_string(),
        page,
        index,
        text,
        bbox: union(words.iter().map(|w| w.bbox)).unwrap_or_default(),
    }
}

fn in_margin_region(page: &Page, word: &Word) -> bool {
    let cx = (word.bbox[0] + word.bbox[2]) / 2.0;
    let cy = (word.bbox[1] + word.bbox[3]) / 2.0;
    page.regions.iter().any(|r| {
        (r.label == "header" || r.label == "footer")
            && cx >= r.bbox[0]
            && cx <= r.bbox[2]
            && cy >= r.bbox[1]
            && cy <= r.bbox[3]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::workdir::{Region, TextSource};

    fn page(words: &[&str]) -> Page {
        Page {
            number: 3,
            width: 600.0,
            height: 800.0,
            source: TextSource::TextLayer,
            words: words
                .iter()
                .enumerate()
                .map(|(i, t)| Word { text: t.to_string(), bbox: [i as f32, 100.0, i as f32 + 5.0, 110.0], conf: None })
                .collect(),
            layout_image: None,
            ocr_image: None,
            regions: vec![],
            ocr_confidence: None,
        }
    }

    #[test]
    fn chunks_keep_page_bbox_and_stable_ids() {
        let p = page(&["Alpha", "beta.", "Gamma", "delta."]);
        let a = chunk_pages("doc", std::slice::from_ref(&p));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].page, 3);
        assert_eq!(a[0].text, "Alpha beta. Gamma delta.");
        assert_eq!(a[0].bbox, [0.0, 100.0, 8.0, 110.0]);
        assert_eq!(a, chunk_pages("doc", &[p]), "re-chunking gives the same ids");
    }

    #[test]
    fn long_pages_split_and_footer_is_dropped() {
        let words: Vec<String> =
            (0..300).map(|i| if i % 10 == 9 { format!("w{i}.") } else { format!("w{i}") }).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let mut p = page(&refs);
        p.words.push(Word { text: "PAGEFOOTER".into(), bbox: [10.0, 780.0, 50.0, 790.0], conf: None });
        p.regions.push(Region { label: "footer".into(), score: 0.9, bbox: [0.0, 770.0, 600.0, 800.0] });
        let chunks = chunk_pages("doc", &[p]);
        assert!(chunks.len() >= 3);
        assert!(chunks.iter().all(|c| c.text.split(' ').count() <= MAX_WORDS));
        assert!(chunks.iter().all(|c| !c.text.contains("PAGEFOOTER")));
        assert!(chunks[0].text.ends_with('.'), "chunks end at sentence ends: {}", chunks[0].text);
    }
}
