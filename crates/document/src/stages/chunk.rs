//! Stage 5, chunk: page words and layout regions into chunks that follow the document's
//! structure. Titles start a new chunk and become the heading path carried by the chunks
//! under them; paragraphs are cut only between sentences; a table or a caption stays whole;
//! a caption links the figure it belongs to. Sizes are counted in tokens of the embedding
//! model's tokenizer. Pages are read as [`blocks`]: headers and footers left out, the rest
//! in reading order (column by column on multi-column pages).

use sha2::{Digest, Sha256};

use super::Payload;
use crate::config::ChunkConfig;
use crate::context::Context;
use crate::error::StageError;
use crate::model::chunk::{Chunk, Span};
use crate::model::workdir::{Page, Word, read_json, union, write_json};
use crate::text::blocks::{Kind, blocks, heading_level};
use lectern_queue::storage::Figure;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let workdir = ctx.workdir(document_id);
    let pages = ctx.load_pages(document_id).await?;
    let figures = ctx.store.figures(document_id).await?;
    let tokenizer = ctx.tokenizer().await?;
    let config = ctx.pipeline.chunk;
    let id = document_id.to_string();
    let file = workdir.chunks_file();
    crate::engines::cpu::spawn_cpu(move || {
        let words = WordTokens::new(&tokenizer);
        write_json(&file, &chunk_pages(&id, &pages, &figures, &config, &|text: &str| words.count(text)))
    })
    .await??;
    Ok(ctx.blobs.publish(&workdir.chunks_key()).await?)
}

/// A document's chunks, fetched and read off the runtime.
pub async fn load(ctx: &Context, document_id: &str) -> Result<Vec<Chunk>, StageError> {
    let path = ctx.blobs.fetch(&ctx.workdir(document_id).chunks_key()).await?;
    tokio::task::spawn_blocking(move || read_json(&path)).await?
}

/// Token counts of texts whose words are joined by spaces, added up from each word's count,
/// which is remembered: a tokenizer that normalises character by character and splits at
/// spaces before anything else (BERT's) counts the same, and a document repeats its words,
/// so most of its words are tokenized once. Other tokenizers count the whole text.
struct WordTokens<'t> {
    tokenizer: &'t tokenizers::Tokenizer,
    by_word: bool,
    known: std::cell::RefCell<std::collections::HashMap<String, usize>>,
}

impl<'t> WordTokens<'t> {
    fn new(tokenizer: &'t tokenizers::Tokenizer) -> Self {
        use tokenizers::normalizers::NormalizerWrapper as N;
        use tokenizers::pre_tokenizers::PreTokenizerWrapper as P;
        let by_word = matches!(tokenizer.get_normalizer(), None | Some(N::BertNormalizer(_) | N::Lowercase(_)))
            && matches!(
                tokenizer.get_pre_tokenizer(),
                Some(P::BertPreTokenizer(_) | P::Whitespace(_) | P::WhitespaceSplit(_))
            );
        Self { tokenizer, by_word, known: Default::default() }
    }

    fn count(&self, text: &str) -> usize {
        if !self.by_word {
            return self.tokenizer.encode(text, false).map(|e| e.len()).unwrap_or(text.len() / 4);
        }
        let mut known = self.known.borrow_mut();
        text.split(' ')
            .map(|word| match known.get(word) {
                Some(&n) => n,
                None => {
                    let n = self.tokenizer.encode(word, false).map(|e| e.len()).unwrap_or(word.len() / 4);
                    known.insert(word.to_string(), n);
                    n
                }
            })
            .sum()
    }
}

/// A piece the packer never cuts: a sentence, a table, a caption.
struct Unit<'a> {
    words: Vec<(u32, &'a Word)>,
    tokens: usize,
    sentence: bool,
    figure: Option<String>,
}

const MAX_HEADING_DEPTH: usize = 3;

pub fn chunk_pages(
    document_id: &str,
    pages: &[Page],
    figures: &[Figure],
    config: &ChunkConfig,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let mut packer = Packer {
        document_id,
        config,
        count,
        chunks: Vec::new(),
        heading_path: Vec::new(),
        heading_tokens: 0,
        units: Vec::new(),
    };
    for block in blocks(pages) {
        match block.kind {
            Kind::Heading => {
                packer.flush(false);
                let path = push_heading(&packer.heading_path, &join(&block.words), block.level);
                packer.set_heading_path(path);
            }
            Kind::Text | Kind::Notes => {
                for sentence in sentences(&block.words) {
                    packer.add(unit(sentence, true, None, count));
                }
            }
            Kind::Table | Kind::Caption => {
                let figure = if block.kind == Kind::Caption { caption_figure(&block.words, figures) } else { None };
                packer.add(unit(block.words, false, figure, count));
            }
        }
    }
    packer.flush(false);
    packer.chunks
}

struct Packer<'a, 'w> {
    document_id: &'a str,
    config: &'a ChunkConfig,
    count: &'a dyn Fn(&str) -> usize,
    chunks: Vec<Chunk>,
    heading_path: Vec<String>,
    /// Tokens the heading path takes in a chunk's embedding text.
    heading_tokens: usize,
    units: Vec<Unit<'w>>,
}

impl<'w> Packer<'_, 'w> {
    fn budget(&self) -> usize {
        // One token of slack after a heading path.
        let heading = self.heading_tokens + usize::from(!self.heading_path.is_empty());
        self.config.max_tokens.saturating_sub(heading).max(self.config.max_tokens / 2)
    }

    /// Sets the heading path, counting its tokens once for every chunk under it.
    fn set_heading_path(&mut self, path: Vec<String>) {
        self.heading_tokens = if path.is_empty() { 0 } else { (self.count)(&path.join(" > ")) };
        self.heading_path = path;
    }

    fn add(&mut self, unit: Unit<'w>) {
        let budget = self.budget();
        if unit.tokens > budget {
            // Longer than a whole chunk: cut it into word windows of the budget.
            self.flush(false);
            for piece in split_words(unit, budget, self.count) {
                self.units.push(piece);
                self.flush(false);
            }
            return;
        }
        let used: usize = self.units.iter().map(|u| u.tokens).sum();
        if used + unit.tokens > budget {
            self.flush(true);
        }
        self.units.push(unit);
    }

    /// Closes the current chunk; with `overlap`, its last whole sentences open the next one.
    fn flush(&mut self, overlap: bool) {
        if self.units.is_empty() {
            return;
        }
        let units = std::mem::take(&mut self.units);
        let words: Vec<(u32, &Word)> = units.iter().flat_map(|u| u.words.iter().copied()).collect();
        let figures: Vec<String> = units.iter().filter_map(|u| u.figure.clone()).collect();
        // The tokenizer reads words on their own (it splits at spaces first), so a chunk's
        // tokens are its heading path's and its units' added up: no second pass over the text.
        let tokens = self.heading_tokens + units.iter().map(|u| u.tokens).sum::<usize>();
        self.push_chunk(&words, figures, tokens as u32);
        if overlap && self.config.overlap_tokens > 0 {
            let mut carried = Vec::new();
            let mut tokens = 0;
            for u in units.into_iter().rev() {
                if !u.sentence || tokens + u.tokens > self.config.overlap_tokens {
                    break;
                }
                tokens += u.tokens;
                carried.push(u);
            }
            carried.reverse();
            self.units = carried;
        }
    }

    fn push_chunk(&mut self, words: &[(u32, &Word)], figures: Vec<String>, tokens: u32) {
        let text = join(words);
        let index = self.chunks.len() as u32;
        let mut spans: Vec<Span> = Vec::new();
        for (page, word) in words {
            match spans.last_mut() {
                Some(span) if span.page == *page => span.bbox = union([span.bbox, word.bbox]).expect("two boxes"),
                _ => spans.push(Span { page: *page, bbox: word.bbox }),
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(self.document_id.as_bytes());
        hasher.update(index.to_le_bytes());
        hasher.update(self.heading_path.join("\u{1f}").as_bytes());
        hasher.update(text.as_bytes());
        self.chunks.push(Chunk {
            id: hex::encode(&hasher.finalize()[..12]),
            document_id: self.document_id.to_string(),
            index,
            page: spans[0].page,
            bbox: spans[0].bbox,
            spans,
            heading_path: self.heading_path.clone(),
            figures,
            tokens,
            text,
        });
    }
}

/// New heading path after `title` at `level` when known; else "2.1 Methods" is level 2 and
/// unnumbered titles level 1.
fn push_heading(path: &[String], title: &str, level: Option<u8>) -> Vec<String> {
    let level = heading_level(title, level).min(MAX_HEADING_DEPTH);
    let mut path: Vec<String> = path.iter().take(level - 1).cloned().collect();
    path.push(title.to_string());
    path
}

/// Splits a paragraph after words ending a sentence when the next word starts a new one.
fn sentences<'a>(words: &[(u32, &'a Word)]) -> Vec<Vec<(u32, &'a Word)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (i, w) in words.iter().enumerate() {
        current.push(*w);
        let ends = w.1.text.ends_with(['.', '?', '!']);
        let next_starts =
            words.get(i + 1).is_some_and(|n| n.1.text.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit()));
        if ends && next_starts {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn unit<'a>(
    words: Vec<(u32, &'a Word)>,
    sentence: bool,
    figure: Option<String>,
    count: &dyn Fn(&str) -> usize,
) -> Unit<'a> {
    let tokens = count(&join(&words));
    Unit { words, tokens, sentence, figure }
}

fn split_words<'a>(unit: Unit<'a>, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Unit<'a>> {
    let mut out: Vec<Unit> = Vec::new();
    let mut current = Vec::new();
    let mut tokens = 0;
    for w in unit.words {
        let t = count(&w.1.text).max(1);
        if tokens + t > budget && !current.is_empty() {
            out.push(Unit { words: std::mem::take(&mut current), tokens, sentence: false, figure: None });
            tokens = 0;
        }
        current.push(w);
        tokens += t;
    }
    if !current.is_empty() {
        out.push(Unit { words: current, tokens, sentence: false, figure: None });
    }
    if let Some(first) = out.first_mut() {
        first.figure = unit.figure;
    }
    out
}

/// The figure on the caption's page whose box is vertically closest to the caption.
fn caption_figure(words: &[(u32, &Word)], figures: &[Figure]) -> Option<String> {
    let page = words.first()?.0;
    let bbox = union(words.iter().map(|w| w.1.bbox))?;
    let gap = |f: &Figure| {
        let (top, bottom) = (f.bbox[1] as f32, f.bbox[3] as f32);
        if bbox[1] >= bottom {
            bbox[1] - bottom
        } else if bbox[3] <= top {
            top - bbox[3]
        } else {
            0.0
        }
    };
    figures
        .iter()
        .filter(|f| f.page == page as i64 && gap(f) < 72.0)
        .min_by(|a, b| gap(a).total_cmp(&gap(b)))
        .map(|f| f.path.clone())
}

fn join(words: &[(u32, &Word)]) -> String {
    words.iter().map(|w| w.1.text.as_str()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workdir::{Region, TextSource};

    /// One token per word, like a whitespace tokenizer.
    fn count(text: &str) -> usize {
        text.split_whitespace().count()
    }

    fn page(number: u32, lines: &[&str]) -> Page {
        let mut words = Vec::new();
        for (row, line) in lines.iter().enumerate() {
            for (i, t) in line.split_whitespace().enumerate() {
                let (x, y) = (50.0 + i as f32 * 20.0, 100.0 + row as f32 * 14.0);
                words.push(Word { text: t.to_string(), bbox: [x, y, x + 18.0, y + 10.0], conf: None, bold: false });
            }
        }
        Page {
            number,
            width: 600.0,
            height: 800.0,
            source: TextSource::TextLayer,
            words,
            layout_image: None,
            ocr_image: None,
            regions: vec![],
            ocr_confidence: None,
            skew: None,
            turn: None,
            invisible_text: false,
            layer_agreement: None,
            ocr_language: None,
            images: Vec::new(),
        }
    }

    fn region(label: &str, rows: std::ops::Range<usize>) -> Region {
        let y = |r: usize| 100.0 + r as f32 * 14.0;
        Region {
            label: label.into(),
            score: 0.9,
            bbox: [0.0, y(rows.start) - 2.0, 600.0, y(rows.end) - 2.0],
            level: None,
        }
    }

    fn config(max_tokens: usize) -> ChunkConfig {
        ChunkConfig { max_tokens, overlap_tokens: 0 }
    }

    #[test]
    fn chunks_keep_page_bbox_and_stable_ids() {
        let p = page(3, &["Alpha beta. Gamma delta."]);
        let a = chunk_pages("doc", std::slice::from_ref(&p), &[], &config(100), &count);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].page, 3);
        assert_eq!(a[0].text, "Alpha beta. Gamma delta.");
        assert_eq!(a[0].bbox, [50.0, 100.0, 128.0, 110.0]);
        assert_eq!(a[0].tokens, 4);
        assert_eq!(a, chunk_pages("doc", &[p], &[], &config(100), &count), "re-chunking gives the same ids");
    }

    #[test]
    fn titles_start_chunks_and_form_the_heading_path() {
        let mut p = page(1, &["2 Methods", "We measure things. It works.", "2.1 Setup", "Two machines were used."]);
        p.regions = vec![region("title", 0..1), region("text", 1..2), region("title", 2..3), region("text", 3..4)];
        let chunks = chunk_pages("doc", &[p], &[], &config(100), &count);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, ["2 Methods"]);
        assert_eq!(chunks[0].text, "We measure things. It works.");
        assert_eq!(chunks[1].heading_path, ["2 Methods", "2.1 Setup"]);
        assert_eq!(chunks[1].embedding_text(), "2 Methods > 2.1 Setup\nTwo machines were used.");
    }

    #[test]
    fn paragraphs_split_between_sentences_within_the_token_budget() {
        let text: Vec<String> = (0..30).map(|i| format!("Sentence number {i} has six words.")).collect();
        let p = page(1, &[&text.join(" ")]);
        let chunks = chunk_pages("doc", &[p], &[], &config(20), &count);
        assert_eq!(chunks.len(), 10, "three six-word sentences per 20-token chunk");
        for c in &chunks {
            assert!(c.tokens <= 20, "{} tokens", c.tokens);
            assert!(c.text.starts_with("Sentence") && c.text.ends_with("words."), "{}", c.text);
        }
    }

    #[test]
    fn overlap_repeats_the_last_sentence() {
        let p = page(1, &["One two three. Four five six. Seven eight nine."]);
        let chunks = chunk_pages("doc", &[p], &[], &ChunkConfig { max_tokens: 6, overlap_tokens: 3 }, &count);
        assert_eq!(chunks[0].text, "One two three. Four five six.");
        assert_eq!(chunks[1].text, "Four five six. Seven eight nine.");
    }

    #[test]
    fn tables_stay_whole_and_captions_link_their_figure() {
        let mut p = page(2, &["Intro text here.", "a b c d e f", "g h i j k l", "Figure 1. A chart.", "PAGEFOOTER 2"]);
        p.regions =
            vec![region("text", 0..1), region("table", 1..3), region("figure_caption", 3..4), region("footer", 4..5)];
        let figure = Figure {
            page: 2,
            idx: 0,
            label: "figure".into(),
            score: 0.9,
            bbox: [50.0, 60.0, 300.0, 95.0],
            path: "figures/p0002-0.png".into(),
        };
        let chunks = chunk_pages("doc", &[p], &[figure], &config(14), &count);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["Intro text here.", "a b c d e f g h i j k l", "Figure 1. A chart."]);
        assert!(chunks[1].figures.is_empty());
        assert_eq!(chunks[2].figures, ["figures/p0002-0.png"], "the figure within an inch is linked");
    }

    #[test]
    fn columns_read_one_after_the_other_when_the_text_layer_interleaves_them() {
        let mut p = page(1, &[]);
        for row in 0..3 {
            for (x, side) in [(50.0, "left"), (320.0, "right")] {
                for i in 0..2 {
                    let (x, y) = (x + i as f32 * 40.0, 100.0 + row as f32 * 14.0);
                    p.words.push(Word {
                        text: format!("{side}{row}{i}"),
                        bbox: [x, y, x + 35.0, y + 10.0],
                        conf: None,
                        bold: false,
                    });
                }
            }
        }
        let column =
            |x0: f32| Region { label: "text".into(), score: 0.9, bbox: [x0, 95.0, x0 + 250.0, 145.0], level: None };
        p.regions = vec![column(45.0), column(315.0)];
        let chunks = chunk_pages("doc", &[p], &[], &config(100), &count);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].text,
            "left00 left01 left10 left11 left20 left21 right00 right01 right10 right11 right20 right21"
        );
    }

    #[test]
    fn a_paragraph_over_a_page_break_has_a_span_per_page() {
        let chunks =
            chunk_pages("doc", &[page(1, &["It starts here"]), page(2, &["and ends here."])], &[], &config(50), &count);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].spans.iter().map(|s| s.page).collect::<Vec<_>>(), [1, 2]);
    }
}
