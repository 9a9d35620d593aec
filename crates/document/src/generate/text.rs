//! What the study artifacts are made of: the document's sections in reading order (from the
//! chunks' heading paths), their prose sentences, and key phrases scored YAKE-style
//! (Campos et al., 2020: casing, position, frequency, context spread, sentence spread).
//! Sentence centrality and term neighbours come from embeddings ([`super::rank`]).

use std::collections::{HashMap, HashSet};

use crate::model::chunk::Chunk;
use crate::model::workdir::Page;

const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "as",
    "at",
    "be",
    "by",
    "do",
    "if",
    "in",
    "is",
    "it",
    "of",
    "on",
    "or",
    "so",
    "to",
    "up",
    "we",
    "no",
    "the",
    "and",
    "for",
    "are",
    "but",
    "not",
    "you",
    "all",
    "any",
    "can",
    "had",
    "her",
    "was",
    "one",
    "our",
    "out",
    "has",
    "have",
    "been",
    "this",
    "that",
    "with",
    "from",
    "they",
    "will",
    "would",
    "there",
    "their",
    "what",
    "which",
    "when",
    "where",
    "who",
    "whom",
    "into",
    "than",
    "then",
    "them",
    "these",
    "those",
    "some",
    "such",
    "only",
    "other",
    "also",
    "more",
    "most",
    "very",
    "just",
    "over",
    "each",
    "about",
    "after",
    "before",
    "between",
    "both",
    "does",
    "doing",
    "during",
    "here",
    "its",
    "itself",
    "may",
    "might",
    "must",
    "should",
    "could",
    "being",
    "were",
    "while",
    "your",
    "yours",
    "how",
    "why",
    "use",
    "used",
    "using",
    "his",
    "she",
    "him",
    "because",
    "same",
    "many",
    "much",
    "own",
    "per",
    "via",
    "etc",
    "see",
    "upon",
    "within",
    "without",
    "shall",
    "let",
    "like",
    "new",
    "two",
    "three",
    "first",
    "second",
    "however",
    "thus",
    "therefore",
    "given",
    "following",
    "section",
    "figure",
    "table",
    "page",
    "example",
    "e.g",
    "i.e",
    "et",
    "al",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Lower-case word without surrounding punctuation.
pub fn normalize(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

/// Words of `text`, normalised; empty strings dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(normalize).filter(|w| !w.is_empty()).collect()
}

/// True for letters of right-to-left scripts (Hebrew, Arabic and their presentation forms).
pub fn has_rtl(text: &str) -> bool {
    text.chars().any(|c| matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub text: String,
    pub page: u32,
    /// Index into [`Material::sections`].
    pub section: usize,
    /// Centrality (TextRank over sentence embeddings), set by [`Material::rank`].
    pub score: f32,
    /// False when the sentence runs over a page break onto the next page.
    pub within_page: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading path, outermost first (empty before the first heading).
    pub path: Vec<String>,
    pub page: u32,
    /// Indices into [`Material::sentences`], in reading order.
    pub sentences: Vec<usize>,
}

impl Section {
    pub fn title(&self) -> Option<&str> {
        self.path.last().map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// As written most often in the document.
    pub text: String,
    /// Normalised words.
    pub words: Vec<String>,
    /// YAKE score: lower is more important.
    pub score: f64,
    pub count: usize,
}

/// A document's sentences, sections and key phrases; with embeddings once ranked.
#[derive(Debug, Clone, Default)]
pub struct Material {
    pub sentences: Vec<Sentence>,
    pub sections: Vec<Section>,
    /// Key phrases, most important first.
    pub terms: Vec<Term>,
    /// Unit vectors, parallel to `sentences` and `terms` (empty until ranked).
    pub sentence_vectors: Vec<Vec<f32>>,
    pub term_vectors: Vec<Vec<f32>>,
}

/// Splits text into sentences at `.`, `?` or `!` (or one followed by a reference mark such
/// as `[3]`, which OCR may read as `!3]`) followed by a space and a capital or digit.
pub fn split_sentences(text: &str) -> Vec<String> {
    let text = separate_run_on(text);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        current.push(w);
        let next_starts =
            words.get(i + 1).and_then(|n| n.chars().next()).is_none_or(|c| c.is_uppercase() || c.is_numeric());
        let abbreviation = matches!(w.to_lowercase().as_str(), "e.g." | "i.e." | "et" | "al." | "fig." | "eq.");
        let cited =
            w.ends_with(']') && w.trim_end_matches(|c: char| c.is_ascii_digit() || "[]!,".contains(c)).ends_with('.');
        if (w.ends_with(['.', '?', '!']) || cited) && next_starts && !abbreviation && current.len() >= 3 {
            out.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// Puts a space into "geometry.The", where a text layer lost the one between sentences:
/// after two lower-case letters and a period, before a capital and a lower-case letter
/// (so "U.S.A." and "e.g.The" stay as they are).
fn separate_run_on(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        let at = |k: usize| chars.get(k).copied().unwrap_or(' ');
        if c == '.'
            && i >= 2
            && at(i - 1).is_lowercase()
            && at(i - 2).is_lowercase()
            && at(i + 1).is_uppercase()
            && at(i + 2).is_lowercase()
        {
            out.push(' ');
        }
    }
    out
}

/// Prose worth studying: 6–45 words, mostly letters, ends like a sentence.
fn is_prose(s: &str) -> bool {
    let n = s.split_whitespace().count();
    let chars = s.chars().count();
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    (6..=45).contains(&n) && letters * 10 >= chars * 7 && s.ends_with(['.', '?', '!', ':'])
}

impl Material {
    /// Sentences of the chunks, each placed on the page (of those its chunk spans) where
    /// its first words are written.
    pub fn from_chunks(chunks: &[Chunk], pages: &[Page]) -> Self {
        let page_words: HashMap<u32, Vec<String>> = pages.iter().map(|p| (p.number, words(&p.text()))).collect();
        let on = |page: u32, probe: &[String]| page_words.get(&page).is_some_and(|ws| find_phrase(ws, probe).is_some());
        let repeated = repeated_ngrams(pages);
        let mut m = Material::default();
        let mut seen = HashSet::new();
        for chunk in chunks {
            if m.sections.last().is_none_or(|s| s.path != chunk.heading_path) {
                m.sections.push(Section { path: chunk.heading_path.clone(), page: chunk.page, sentences: Vec::new() });
            }
            let section = m.sections.len() - 1;
            let mut span_pages: Vec<u32> = chunk.spans.iter().map(|s| s.page).collect();
            span_pages.dedup();
            if span_pages.is_empty() {
                span_pages.push(chunk.page);
            }
            let mut at = 0;
            for text in split_sentences(&strip_ngrams(&chunk.text, &repeated)) {
                let ws = words(&text);
                let (head, tail) = (&ws[..ws.len().min(4)], &ws[ws.len().saturating_sub(4)..]);
                if let Some(k) = (at..span_pages.len()).find(|&k| on(span_pages[k], head)) {
                    at = k;
                }
                let page = span_pages[at];
                let within_page = span_pages.len() == 1 || on(page, tail);
                if !within_page && let Some(k) = (at + 1..span_pages.len()).find(|&k| on(span_pages[k], tail)) {
                    at = k;
                }
                if is_prose(&text) && seen.insert(text.to_lowercase()) {
                    m.sections[section].sentences.push(m.sentences.len());
                    m.sentences.push(Sentence { text, page, section, score: 0.0, within_page });
                }
            }
        }
        m.terms = key_phrases(&m.sentences, 60);
        m
    }

    /// Takes unit vectors for the sentences and terms and scores sentences by TextRank.
    pub fn rank(&mut self, sentence_vectors: Vec<Vec<f32>>, term_vectors: Vec<Vec<f32>>) {
        if sentence_vectors.len() == self.sentences.len() {
            for (s, score) in self.sentences.iter_mut().zip(super::rank::textrank(&sentence_vectors)) {
                s.score = score;
            }
            self.sentence_vectors = sentence_vectors;
        }
        if term_vectors.len() == self.terms.len() {
            self.term_vectors = term_vectors;
        }
    }

    /// Index of the best term whose words occur, in order, in `sentence` and that `skip`
    /// does not rule out.
    pub fn key_term_in(&self, sentence: &str, skip: impl Fn(&Term) -> bool) -> Option<usize> {
        let ws = words(sentence);
        self.terms.iter().position(|t| !skip(t) && find_phrase(&ws, &t.words).is_some())
    }
}

/// Length of the word runs [`repeated_ngrams`] looks for.
const BOILERPLATE_N: usize = 5;

/// Runs of [`BOILERPLATE_N`] words printed on at least 40 % of the pages (and at least 3):
/// running heads, slide navigation bars, footers that layout did not mark as such.
pub fn repeated_ngrams(pages: &[Page]) -> HashSet<Vec<String>> {
    let min = (pages.len() * 2).div_ceil(5).max(3);
    if pages.len() < min {
        return HashSet::new();
    }
    let mut count: HashMap<Vec<String>, usize> = HashMap::new();
    for page in pages {
        let ws = words(&page.text());
        let grams: HashSet<&[String]> = ws.windows(BOILERPLATE_N).collect();
        for g in grams {
            *count.entry(g.to_vec()).or_default() += 1;
        }
    }
    count.into_iter().filter(|(_, c)| *c >= min).map(|(g, _)| g).collect()
}

/// `text` without the words that form one of `grams`.
pub fn strip_ngrams(text: &str, grams: &HashSet<Vec<String>>) -> String {
    if grams.is_empty() {
        return text.to_string();
    }
    let raw: Vec<&str> = text.split_whitespace().collect();
    let norm: Vec<String> = raw.iter().map(|w| normalize(w)).collect();
    // Positions of real words (punctuation-only tokens are not words on the page either).
    let at: Vec<usize> = (0..raw.len()).filter(|&i| !norm[i].is_empty()).collect();
    let mut drop = vec![false; raw.len()];
    for window in at.windows(BOILERPLATE_N) {
        let gram: Vec<String> = window.iter().map(|&i| norm[i].clone()).collect();
        if grams.contains(&gram) {
            drop[window[0]..=window[BOILERPLATE_N - 1]].fill(true);
        }
    }
    raw.iter().zip(drop).filter(|(_, d)| !d).map(|(w, _)| *w).collect::<Vec<_>>().join(" ")
}

/// Position of `phrase` as consecutive words in `words`.
pub fn find_phrase(words: &[String], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > words.len() {
        return None;
    }
    (0..=words.len() - phrase.len()).find(|&i| words[i..i + phrase.len()] == *phrase)
}

/// Replaces the first occurrence of `phrase` (normalised words) with a blank, keeping the
/// punctuation around it.
pub fn blank_out(sentence: &str, phrase: &[String]) -> Option<String> {
    replace_phrase(sentence, phrase, "_____")
}

/// Replaces the first occurrence of `phrase` with `with`, keeping surrounding punctuation.
pub fn replace_phrase(sentence: &str, phrase: &[String], with: &str) -> Option<String> {
    let raw: Vec<&str> = sentence.split_whitespace().collect();
    let norm: Vec<String> = raw.iter().map(|w| normalize(w)).collect();
    let start = (0..raw.len()).find(|&i| {
        i + phrase.len() <= raw.len() && norm[i..i + phrase.len()].iter().zip(phrase).all(|(a, b)| a == b)
    })?;
    let end = start + phrase.len() - 1;
    let lead: String = raw[start].chars().take_while(|c| !c.is_alphanumeric()).collect();
    let trail: String = {
        let t: Vec<char> = raw[end].chars().rev().take_while(|c| !c.is_alphanumeric()).collect();
        t.into_iter().rev().collect()
    };
    let mut out: Vec<String> = raw[..start].iter().map(|s| s.to_string()).collect();
    // At the start of a capitalised sentence the replacement takes the capital.
    let capital = start == 0 && raw[0].chars().find(|c| c.is_alphanumeric()).is_some_and(char::is_uppercase);
    let with = if capital {
        let mut cs = with.chars();
        cs.next().map(|f| f.to_uppercase().chain(cs).collect()).unwrap_or_default()
    } else {
        with.to_string()
    };
    out.push(format!("{lead}{with}{trail}"));
    out.extend(raw[end + 1..].iter().map(|s| s.to_string()));
    Some(out.join(" "))
}

/// A word that may be part of a key phrase.
fn is_term_word(w: &str) -> bool {
    w.chars().count() >= 2 && w.chars().all(|c| c.is_alphabetic() || c == '-') && !w.starts_with('-')
}

/// YAKE-style key phrases of 1–3 words, best first, with near-duplicates removed.
pub fn key_phrases(sentences: &[Sentence], limit: usize) -> Vec<Term> {
    #[derive(Default)]
    struct Stats {
        tf: f64,
        upper: f64,
        sentences: Vec<usize>,
        left: HashSet<String>,
        right: HashSet<String>,
    }
    let mut stats: HashMap<String, Stats> = HashMap::new();
    let mut candidates: HashMap<Vec<String>, (usize, HashMap<String, usize>)> = HashMap::new();
    for (si, s) in sentences.iter().enumerate() {
        let raw: Vec<&str> = s.text.split_whitespace().collect();
        let norm: Vec<String> = raw.iter().map(|w| normalize(w)).collect();
        for (i, w) in norm.iter().enumerate() {
            if w.is_empty() {
                continue;
            }
            let st = stats.entry(w.clone()).or_default();
            st.tf += 1.0;
            let first = raw[i].chars().find(|c| c.is_alphanumeric());
            if i > 0 && first.is_some_and(char::is_uppercase) {
                st.upper += 1.0;
            }
            st.sentences.push(si);
            if i > 0 {
                st.left.insert(norm[i - 1].clone());
            }
            if i + 1 < norm.len() {
                st.right.insert(norm[i + 1].clone());
            }
        }
        // Candidates: 1–3 term words, not across punctuation, no stopword at either end.
        for start in 0..raw.len() {
            for len in 1..=3 {
                let end = start + len;
                if end > raw.len() {
                    break;
                }
                let ws = &norm[start..end];
                if !ws.iter().all(|w| is_term_word(w))
                    || is_stopword(&ws[0])
                    || is_stopword(&ws[len - 1])
                    || ws.iter().all(|w| w.chars().count() < 4)
                    || raw[start..end - 1].iter().any(|w| w.ends_with([',', ';', ':', '.', ')', '?', '!']))
                {
                    continue;
                }
                let surface: String = raw[start..end]
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let w = if k == len - 1 { w.trim_end_matches(|c: char| !c.is_alphanumeric()) } else { w };
                        if k == 0 { w.trim_start_matches(|c: char| !c.is_alphanumeric()) } else { w }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let entry = candidates.entry(ws.to_vec()).or_default();
                entry.0 += 1;
                *entry.1.entry(surface).or_default() += 1;
            }
        }
    }
    if stats.is_empty() {
        return Vec::new();
    }
    let n_sentences = sentences.len().max(1) as f64;
    let mut content: Vec<f64> = stats.iter().filter(|(w, _)| !is_stopword(w)).map(|(_, s)| s.tf).collect();
    // Summed in a fixed order: in the map's (random per process) order the sums differ in
    // the last bits, and so did near-tied terms between two runs on the same document.
    content.sort_by(f64::total_cmp);
    let mean = content.iter().sum::<f64>() / content.len().max(1) as f64;
    let std = (content.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / content.len().max(1) as f64).sqrt();
    let max_tf = content.iter().cloned().fold(1.0, f64::max);
    let word_score = |w: &str| -> f64 {
        let s = &stats[w];
        let case = s.upper / (1.0 + s.tf.ln());
        let mut positions = s.sentences.clone();
        positions.sort_unstable();
        let position = (3.0 + positions[positions.len() / 2] as f64).ln().ln();
        let frequency = s.tf / (mean + std).max(1.0);
        let relatedness = 1.0 + (s.left.len() + s.right.len()) as f64 / s.tf * (s.tf / max_tf);
        let spread = s.sentences.iter().collect::<HashSet<_>>().len() as f64 / n_sentences;
        (relatedness * position) / (case + frequency / relatedness + spread / relatedness + 1e-9)
    };
    let min_count = if candidates.values().filter(|(c, _)| *c >= 2).count() >= 10 { 2 } else { 1 };
    let mut terms: Vec<Term> = candidates
        .into_iter()
        .filter(|(_, (count, _))| *count >= min_count)
        .map(|(ws, (count, surfaces))| {
            let scores: Vec<f64> = ws.iter().map(|w| word_score(w)).collect();
            let product: f64 = scores.iter().product();
            let score = product / (count as f64 * (1.0 + scores.iter().sum::<f64>()));
            let text = surfaces
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .map(|(s, _)| s)
                .unwrap_or_else(|| ws.join(" "));
            Term { text, words: ws, score, count }
        })
        .collect();
    terms.sort_by(|a, b| a.score.total_cmp(&b.score).then_with(|| a.words.cmp(&b.words)));
    // Keep a phrase only if it does not overlap a better one word for word.
    let mut kept: Vec<Term> = Vec::new();
    for t in terms {
        let overlaps =
            kept.iter().any(|k| find_phrase(&k.words, &t.words).is_some() || find_phrase(&t.words, &k.words).is_some());
        if !overlaps {
            kept.push(t);
            if kept.len() == limit {
                break;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str) -> Sentence {
        Sentence { text: text.into(), page: 1, section: 0, score: 0.0, within_page: true }
    }

    #[test]
    fn sentences_split_and_phrases_blank() {
        let s = split_sentences("Tesseract reads text. It runs offline! See e.g. small words. Done");
        assert_eq!(s, ["Tesseract reads text.", "It runs offline!", "See e.g. small words.", "Done"]);
        let s = split_sentences("Reading devices for the blind.!3] In 1914, a machine. As in [2, 3] we read.[4] Done.");
        assert_eq!(
            s,
            ["Reading devices for the blind.!3]", "In 1914, a machine.", "As in [2, 3] we read.[4]", "Done."]
        );
        let s = split_sentences("It has Hydro geometry.The Metadata package is in the U.S.A. today.");
        assert_eq!(s, ["It has Hydro geometry.", "The Metadata package is in the U.S.A. today."]);
        assert_eq!(replace_phrase("Kernels run.", &words("kernels"), "shells").unwrap(), "Shells run.");
        let term = words("neural network");
        assert_eq!(blank_out("A (neural network) learns.", &term).unwrap(), "A (_____) learns.");
        assert_eq!(replace_phrase("The kernel runs.", &words("kernel"), "shell").unwrap(), "The shell runs.");
        assert!(blank_out("Nothing here.", &term).is_none());
        let grams: HashSet<Vec<String>> = [words("intro bad news good news")].into();
        assert_eq!(strip_ngrams("Intro – Bad News: Good News. Blocks help.", &grams), "Blocks help.");
        assert!(has_rtl("שלום") && has_rtl("مرحبا") && !has_rtl("Ærøskøbing café"));
    }

    #[test]
    fn key_phrases_prefer_repeated_specific_terms() {
        let text = [
            "The Lectern scheduler assigns each job a lease.",
            "A lease expires when the worker stops sending heartbeats.",
            "The Lectern scheduler retries failed jobs with exponential backoff.",
            "Exponential backoff spreads retries over time.",
            "Heartbeats renew the lease of a running job.",
            "Workers claim jobs from the queue in priority order.",
        ];
        let sentences: Vec<Sentence> = text.iter().map(|t| sentence(t)).collect();
        let terms = key_phrases(&sentences, 10);
        let names: Vec<&str> = terms.iter().map(|t| t.text.as_str()).collect();
        assert!(names.contains(&"Lectern scheduler"), "{names:?}");
        assert!(names.contains(&"exponential backoff") || names.contains(&"Exponential backoff"), "{names:?}");
        assert!(!names.iter().any(|n| is_stopword(&n.to_lowercase())), "{names:?}");
        // No phrase overlaps a better one.
        for (i, a) in terms.iter().enumerate() {
            for b in &terms[i + 1..] {
                assert!(find_phrase(&a.words, &b.words).is_none() && find_phrase(&b.words, &a.words).is_none());
            }
        }
    }
}
