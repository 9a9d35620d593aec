//! Questions answered from what was indexed, with their sources.
//!
//! Hybrid search ([`crate::search`]) retrieves `top_k` passages. Without an LLM the passages'
//! sentences are scored against the question ([`Scoring`]: the cosine similarity of their
//! vectors, the IDF-weighted share of the question's words they contain, and how well their
//! passage ranked) and the best ones are the answer, each cited by document, page and box.
//! When no sentence reaches the threshold, the answer is that the documents do not say. With `[generate.llm]` the LLM answers from
//! the numbered passages only and cites them as `[n]`; a citation of a passage that was not
//! retrieved is dropped, also from the text streamed as it is written. When the LLM cannot
//! be reached the answer is extractive and says why.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::generate::llm;
use crate::generate::rank::cosine;
use crate::generate::text::split_sentences;
use crate::generate::words::{is_stopword, words};
use crate::search::{NamedHit, SearchError, SearchRequest, search};
use crate::stages::ingest::DEFAULT_COLLECTION;

/// The body of `POST /v1/ask`, also built by `lectern ask`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
    #[serde(default = "default_collection")]
    pub collection: String,
    /// Only these documents.
    #[serde(default)]
    pub documents: Option<Vec<String>>,
    /// Passages retrieved.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn default_collection() -> String {
    DEFAULT_COLLECTION.to_string()
}

fn default_top_k() -> usize {
    8
}

impl AskRequest {
    pub fn new(question: impl Into<String>) -> Self {
        Self { question: question.into(), collection: default_collection(), documents: None, top_k: default_top_k() }
    }

    /// The hybrid search that retrieves the passages.
    fn search_request(&self) -> SearchRequest {
        let mut req = SearchRequest::new(self.question.clone(), self.top_k, crate::index::Mode::Hybrid);
        req.collection = self.collection.clone();
        req.document_ids = self.documents.clone();
        req
    }

    /// What search would refuse, found before an answer starts streaming.
    pub fn validate(&self) -> Result<(), SearchError> {
        self.search_request().validate()
    }
}

/// Answer text when the passages do not answer the question.
pub const NOT_FOUND: &str = "Not found in these documents.";

/// How an extractive answer scores sentences. The default is calibrated on
/// `benches/quality/ask_questions.toml` with `lectern-eval ask --sweep`: the threshold gives
/// the most right decisions (answer among the top 3, or "not found" out of scope).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    /// Weight of the question words a sentence contains, beside its vector's similarity.
    pub word_weight: f32,
    /// Weight of its passage's rank: 1 for the first passage, falling linearly to 1/k for the last.
    pub passage_weight: f32,
    /// The least score of a sentence that answers.
    pub not_found_below: f32,
}

impl Default for Scoring {
    fn default() -> Self {
        Self { word_weight: 0.35, passage_weight: 0.1, not_found_below: 0.78 }
    }
}

/// Sentences returned as the extractive answer.
const ANSWER_SENTENCES: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    /// False when the documents do not answer: `answer` is then [`NOT_FOUND`].
    pub found: bool,
    pub answer: String,
    /// `extractive` (sentences of the passages) or `llm`.
    pub method: &'static str,
    /// Extractive: the best sentences, best first. LLM: the passages the answer cites.
    pub citations: Vec<Citation>,
    /// The retrieved passages; citations number them from 1.
    pub passages: Vec<NamedHit>,
    /// Why the configured LLM did not answer (the answer is then extractive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    /// 1-based index into `passages`.
    pub passage: usize,
    pub document_id: String,
    pub name: String,
    pub page: i32,
    /// The passage's box on `page`, in PDF points from the top-left corner.
    pub bbox: [f32; 4],
    pub chunk_id: String,
    /// Extractive answers: the sentence and its score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl Citation {
    fn of(passages: &[NamedHit], passage: usize) -> Self {
        let p = &passages[passage - 1];
        Self {
            passage,
            document_id: p.hit.document_id.clone(),
            name: p.name.clone(),
            page: p.hit.page,
            bbox: p.hit.bbox,
            chunk_id: p.hit.chunk_id.clone(),
            sentence: None,
            score: None,
        }
    }
}

/// What an answer in progress reports, for answers streamed as they are written.
pub enum Progress<'a> {
    Passages(&'a [NamedHit]),
    /// A piece of the LLM's answer.
    Delta(&'a str),
}

/// Answers `req`; `progress` sees the passages, then (with an LLM) the answer as it is written.
pub async fn ask(
    ctx: &Context,
    req: &AskRequest,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Answer, SearchError> {
    ask_with(ctx, req, Scoring::default(), progress).await
}

/// [`ask`] with other [`Scoring`] (`lectern-eval ask` calibrates the default with it).
pub async fn ask_with(
    ctx: &Context,
    req: &AskRequest,
    scoring: Scoring,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Answer, SearchError> {
    let passages = search(ctx, &req.search_request()).await?;
    progress(Progress::Passages(&passages));
    let Some(config) = ctx.pipeline.generate.llm.as_ref().filter(|_| !passages.is_empty()) else {
        return extract(ctx, &req.question, passages, scoring).await;
    };
    // The answer as the client saw it stream: citations of no passage already dropped.
    let mut filter = CitationFilter::new(passages.len());
    let mut kept = String::new();
    let mut on_delta = |delta: &str| {
        let piece = filter.push(delta);
        if !piece.is_empty() {
            progress(Progress::Delta(&piece));
            kept.push_str(&piece);
        }
    };
    let written = llm::chat_stream(config, LLM_SYSTEM, &llm_prompt(&req.question, &passages), &mut on_delta).await;
    match written {
        Ok(_) => {
            kept.push_str(&filter.finish());
            Ok(llm_answer(&req.question, &kept, passages))
        }
        Err(e) => {
            tracing::warn!(error = %e, "LLM did not answer; answering with extracted sentences");
            let mut answer = extract(ctx, &req.question, passages, scoring).await?;
            answer.llm_error = Some(e.to_string());
            Ok(answer)
        }
    }
}

const LLM_SYSTEM: &str = "You answer questions from numbered passages of the user's documents. \
    Use only facts in the passages. Cite each fact with the passage number in brackets, like [2]. \
    Be brief. If the passages do not answer the question, reply exactly: Not found in these documents.";

fn llm_prompt(question: &str, passages: &[NamedHit]) -> String {
    let mut prompt = String::from("Passages:\n");
    for (i, p) in passages.iter().enumerate() {
        prompt.push_str(&format!("[{}] ({}, page {}) {}\n", i + 1, p.name, p.hit.page, p.hit.text));
    }
    prompt.push_str(&format!("\nQuestion: {question}"));
    prompt
}

/// The LLM's answer from its text with citations of no passage already dropped.
fn llm_answer(question: &str, text: &str, passages: Vec<NamedHit>) -> Answer {
    let answer = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cited: Vec<usize> = {
        let mut seen = Vec::new();
        for n in cited_numbers(&answer) {
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen
    };
    let found = !answer.to_lowercase().contains("not found in these documents");
    Answer {
        question: question.to_string(),
        found,
        answer,
        method: "llm",
        citations: cited.into_iter().map(|n| Citation::of(&passages, n)).collect(),
        passages,
        llm_error: None,
    }
}

/// Numbers cited as `[n]` in `text`.
fn cited_numbers(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.split('[').skip(1).filter_map(|rest| rest.split_once(']')?.0.trim().parse().ok())
}

/// Drops `[n]` citations of passages that do not exist from text that arrives in pieces:
/// from an opening bracket on, text is held until the bracket closes (or turns out not to
/// be a citation).
pub struct CitationFilter {
    passages: usize,
    held: String,
}

impl CitationFilter {
    pub fn new(passages: usize) -> Self {
        Self { passages, held: String::new() }
    }

    /// The text that can be passed on after `piece`.
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            if self.held.is_empty() {
                if c == '[' {
                    self.held.push(c)
                } else {
                    out.push(c)
                }
                continue;
            }
            self.held.push(c);
            if c == ']' {
                let inner = &self.held[1..self.held.len() - 1];
                match inner.trim().parse::<usize>() {
                    Ok(n) if n == 0 || n > self.passages => {}
                    _ => out.push_str(&self.held),
                }
                self.held.clear();
            } else if !(c.is_ascii_digit() || c == ' ') || self.held.len() > 6 {
                out.push_str(&std::mem::take(&mut self.held));
            }
        }
        out
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// A sentence of a passage, scored against the question.
struct Candidate {
    passage: usize,
    text: String,
    score: f32,
}

/// The extractive answer: the passages' best sentences.
async fn extract(
    ctx: &Context,
    question: &str,
    passages: Vec<NamedHit>,
    scoring: Scoring,
) -> Result<Answer, SearchError> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in passages.iter().enumerate() {
        for text in sentences(&p.hit.text) {
            if seen.insert(text.to_lowercase()) {
                candidates.push(Candidate { passage: i + 1, text, score: 0.0 });
            }
        }
    }
    if !candidates.is_empty() {
        let embedder = ctx.query_embedder().await?;
        let mut texts = vec![question.to_string()];
        texts.extend(candidates.iter().map(|c| c.text.clone()));
        let vectors = embedder.embed(texts).await?;
        let lexical = WordOverlap::new(question, candidates.iter().map(|c| c.text.as_str()));
        let k = passages.len() as f32;
        for (c, v) in candidates.iter_mut().zip(&vectors[1..]) {
            c.score = cosine(&vectors[0], v)
                + scoring.word_weight * lexical.share(&c.text)
                + scoring.passage_weight * (k - (c.passage - 1) as f32) / k;
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    }
    let found = candidates.first().is_some_and(|c| c.score >= scoring.not_found_below);
    let citations: Vec<Citation> = candidates
        .into_iter()
        .take(if found { ANSWER_SENTENCES } else { 0 })
        .map(|c| Citation { sentence: Some(c.text), score: Some(c.score), ..Citation::of(&passages, c.passage) })
        .collect();
    let answer = citations.first().and_then(|c| c.sentence.clone()).unwrap_or_else(|| NOT_FOUND.to_string());
    Ok(Answer {
        question: question.to_string(),
        found,
        answer,
        method: "extractive",
        citations,
        passages,
        llm_error: None,
    })
}

/// A passage's sentences: its lines split at sentence ends; a fragment under 4 words joins
/// the next, and a run-on over 60 words (a table, a list without stops) is cut into 30s.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut short = String::new();
    for s in text.lines().flat_map(split_sentences) {
        let s = if short.is_empty() { s } else { format!("{} {s}", std::mem::take(&mut short)) };
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.len() < 4 {
            short = s;
        } else if words.len() > 60 {
            out.extend(words.chunks(30).map(|w| w.join(" ")));
        } else {
            out.push(s);
        }
    }
    if !short.is_empty() {
        out.push(short);
    }
    out
}

/// The share of the question's content words (stop words aside) a sentence contains, each
/// weighted by its inverse frequency among the candidate sentences.
struct WordOverlap {
    weights: HashMap<String, f32>,
    total: f32,
}

impl WordOverlap {
    fn new<'a>(question: &str, sentences: impl Iterator<Item = &'a str>) -> Self {
        let asked: HashSet<String> = words(question).into_iter().filter(|w| !is_stopword(w)).map(stem).collect();
        let mut df: HashMap<&str, usize> = HashMap::new();
        let mut n = 0;
        for s in sentences {
            n += 1;
            let present: HashSet<String> = words(s).into_iter().map(stem).collect();
            for w in &asked {
                if present.contains(w) {
                    *df.entry(w.as_str()).or_default() += 1;
                }
            }
        }
        let weights: HashMap<String, f32> = asked
            .iter()
            .map(|w| {
                let idf = (1.0 + n as f32 / (1.0 + *df.get(w.as_str()).unwrap_or(&0) as f32)).ln();
                (w.clone(), idf)
            })
            .collect();
        let total = weights.values().sum();
        Self { weights, total }
    }

    fn share(&self, sentence: &str) -> f32 {
        if self.total == 0.0 {
            return 0.0;
        }
        let present: HashSet<String> = words(sentence).into_iter().map(stem).collect();
        self.weights.iter().filter(|(w, _)| present.contains(*w)).map(|(_, idf)| idf).sum::<f32>() / self.total
    }
}

/// A word without a plural or verb ending, so "shares", "shared" and "sharing" meet.
fn stem(word: String) -> String {
    for suffix in ["ing", "ies", "es", "ed", "s"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.chars().count() >= 3
        {
            return base.to_string();
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_of_passages_not_retrieved_are_dropped_even_when_split_across_pieces() {
        let mut f = CitationFilter::new(3);
        let mut out = String::new();
        for piece in ["Maps are shared [", "2] by agencies [", "7", "]. See [a] and [3][12", "] and [1"] {
            out.push_str(&f.push(piece));
        }
        out.push_str(&f.finish());
        assert_eq!(out, "Maps are shared [2] by agencies . See [a] and [3] and [1");
    }

    #[test]
    fn cited_numbers_are_read_in_order() {
        assert_eq!(cited_numbers("a [2] b [ 1 ] c [x] [2]").collect::<Vec<_>>(), vec![2, 1, 2]);
    }

    #[test]
    fn sentences_split_at_lines_and_stops_and_cut_run_ons() {
        let long = vec!["word"; 70].join(" ");
        let text = format!("Title\nThe first sentence is here. The second one follows it.\n{long}");
        let s = sentences(&text);
        assert_eq!(s[0], "Title The first sentence is here.");
        assert_eq!(s[1], "The second one follows it.");
        assert_eq!(s[2].split_whitespace().count(), 30);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn rare_question_words_weigh_more() {
        let sentences = ["the data model is shared", "the data is stored", "the data is old"];
        let overlap = WordOverlap::new("who shared the data models", sentences.into_iter());
        assert!(overlap.share(sentences[0]) > overlap.share(sentences[1]));
        assert_eq!(overlap.share("nothing here"), 0.0);
    }
}
