//! Sentences and key terms shared by the three study artifacts.

use std::collections::HashMap;

use crate::pipeline::chunk::Chunk;

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out",
    "has", "have", "been", "this", "that", "with", "from", "they", "will", "would", "there", "their", "what", "which",
    "when", "where", "who", "whom", "into", "than", "then", "them", "these", "those", "some", "such", "only", "other",
    "also", "more", "most", "very", "just", "over", "each", "about", "after", "before", "between", "both", "does",
    "doing", "during", "here", "its", "itself", "may", "might", "must", "should", "could", "being", "were", "while",
    "your", "yours", "how", "why", "use", "used", "using", "his", "she", "him", "because", "same", "many", "much",
    "own", "per", "via", "etc", "see", "upon", "within", "without", "shall", "let", "like",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub text: String,
    pub page: u32,
    pub score: f32,
    /// Position in the document, for keeping reading order.
    pub order: usize,
}

/// Sentences of a document with scores and the document's key terms.
#[derive(Debug, Clone)]
pub struct Material {
    pub sentences: Vec<Sentence>,
    /// Terms by descending weight.
    pub terms: Vec<String>,
    pub pages: Vec<u32>,
}

pub fn normalize(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

fn is_content_word(w: &str) -> bool {
    w.chars().count() >= 4 && w.chars().all(char::is_alphabetic) && !is_stopword(w)
}

/// Splits text into sentences at `.`, `?` or `!` followed by a space and a capital or digit.
pub fn split_sentences(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        current.push(w);
        let next_starts =
            words.get(i + 1).and_then(|n| n.chars().next()).is_none_or(|c| c.is_uppercase() || c.is_numeric());
        if w.ends_with(['.', '?', '!']) && next_starts && current.len() >= 3 {
            out.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

impl Material {
    pub fn from_chunks(chunks: &[Chunk]) -> Self {
        let mut raw = Vec::new();
        for chunk in chunks {
            for s in split_sentences(&chunk.text) {
                let n = s.split_whitespace().count();
                let letters = s.chars().filter(|c| c.is_alphabetic()).count();
                // Prose only: not too short or long, mostly letters.
                if (6..=45).contains(&n) && letters * 10 >= s.chars().count() * 6 {
                    raw.push((s, chunk.page));
                }
            }
        }
        let mut freq: HashMap<String, f32> = HashMap::new();
        for (s, _) in &raw {
            for w in s.split_whitespace().map(normalize).filter(|w| is_content_word(w)) {
                *freq.entry(w).or_default() += 1.0;
            }
        }
        let mut sentences: Vec<Sentence> = raw
            .into_iter()
            .enumerate()
            .map(|(order, (text, page))| {
                let words: Vec<String> =
                    text.split_whitespace().map(normalize).filter(|w| is_content_word(w)).collect();
                let weight: f32 = words.iter().map(|w| (1.0 + freq[w]).ln()).sum();
                let score = weight / (text.split_whitespace().count() as f32).sqrt();
                Sentence { text, page, score, order }
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        sentences.retain(|s| seen.insert(s.text.to_lowercase()));
        let mut terms: Vec<(String, f32)> = freq.into_iter().filter(|(_, f)| *f >= 2.0).collect();
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut pages: Vec<u32> = chunks.iter().map(|c| c.page).collect();
        pages.dedup();
        Material { sentences, terms: terms.into_iter().map(|t| t.0).collect(), pages }
    }

    /// The `n` best sentences, in document order.
    pub fn top_sentences(&self, n: usize) -> Vec<&Sentence> {
        let mut best: Vec<&Sentence> = self.sentences.iter().collect();
        best.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.order.cmp(&b.order)));
        best.truncate(n);
        best.sort_by_key(|s| s.order);
        best
    }

    /// The highest-weighted key term that occurs in `sentence` as a whole word.
    pub fn key_term_in(&self, sentence: &str) -> Option<&str> {
        let words: Vec<String> = sentence.split_whitespace().map(normalize).collect();
        self.terms.iter().find(|t| words.contains(t)).map(String::as_str)
    }
}

/// Replaces the first whole-word occurrence of `term` (case-insensitive) with a blank.
pub fn blank_out(sentence: &str, term: &str) -> Option<String> {
    let mut done = false;
    let words: Vec<String> = sentence
        .split_whitespace()
        .map(|w| {
            if !done && normalize(w) == term {
                done = true;
                let lead: String = w.chars().take_while(|c| !c.is_alphanumeric()).collect();
                let trail: String = w
                    .chars()
                    .rev()
                    .take_while(|c| !c.is_alphanumeric())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("{lead}_____{trail}")
            } else {
                w.to_string()
            }
        })
        .collect();
    done.then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_and_terms_rank() {
        let s = split_sentences("Tesseract reads text. It runs offline! e.g. small words. Done");
        assert_eq!(s, ["Tesseract reads text.", "It runs offline! e.g. small words.", "Done"]);
        assert_eq!(blank_out("The kernel schedules threads.", "kernel").unwrap(), "The _____ schedules threads.");
        assert_eq!(blank_out("Threads (kernel) run.", "kernel").unwrap(), "Threads (_____) run.");
        assert!(blank_out("Nothing here.", "kernel").is_none());
    }
}
