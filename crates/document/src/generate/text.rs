//! What the study artifacts are made of: the document's sections in reading order (from the
//! chunks' heading paths), their prose sentences (without what [`super::skip`] rules out),
//! the definitions among them, and the key terms ([`super::terms`]). Sentence centrality and
//! term neighbours come from embeddings ([`super::rank`]).

use std::collections::{HashMap, HashSet};

use super::skip::{self, Skipped};
pub use super::terms::Term;
use super::words::{find_phrase, normalize, words};
use crate::model::chunk::Chunk;
use crate::model::workdir::Page;
use crate::text::wordfreq::WordFreq;

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

/// A sentence that says what something is: "A mutex is a lock …", "X refers to …",
/// "We define X as …".
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Index into [`Material::sentences`].
    pub sentence: usize,
    /// The noun phrase defined, as written, without a leading article.
    pub subject: String,
    /// Its article as written ("a", "an", "the"), lower case, if it had one.
    pub article: Option<String>,
    /// "is", "are", or "means" for "refers to", "means", "denotes", "is defined as", "we define".
    pub verb: &'static str,
}

impl Definition {
    /// The flashcard question: "What is a mutex?", "What are lists?", "What is meant by X?".
    pub fn question(&self) -> String {
        let article = self.article.as_deref().map(|a| format!("{a} ")).unwrap_or_default();
        match self.verb {
            "means" => format!("What is meant by {article}{}?", self.subject),
            verb => format!("What {verb} {article}{}?", self.subject),
        }
    }
}

/// Words that cannot open a noun phrase (pronouns, prepositions, conjunctions, determiners
/// that point elsewhere) or stand inside one (auxiliaries).
const NOT_IN_NOUN_PHRASE: &[&str] = &[
    "this", "that", "these", "those", "there", "here", "it", "its", "they", "their", "we", "our", "you", "your", "he",
    "she", "his", "her", "i", "my", "if", "when", "while", "although", "because", "since", "as", "in", "on", "at",
    "for", "to", "of", "and", "or", "but", "with", "by", "from", "so", "then", "which", "what", "who", "how", "why",
    "where", "each", "every", "all", "some", "any", "one", "such", "note", "thus", "hence", "also", "both", "another",
    "other", "is", "are", "was", "were", "be", "been", "can", "could", "will", "would", "should", "may", "might",
    "must", "do", "does", "did", "has", "have", "had", "not", "only", "now", "however", "suppose", "even", "around",
    "about", "just", "still", "again", "let", "see", "consider", "assume", "most", "many", "more", "few", "several",
    "first", "next", "last", "same",
];

/// Words after "are" that start a verb phrase rather than a class: "The frequencies are
/// ordered …", "Options are given …" are not definitions.
const NOT_A_CLASS: &[&str] = &[
    "not",
    "also",
    "only",
    "often",
    "usually",
    "then",
    "in",
    "on",
    "at",
    "of",
    "to",
    "by",
    "for",
    "from",
    "with",
    "used",
    "given",
    "shown",
    "made",
    "done",
    "seen",
    "known",
    "taken",
    "set",
    "put",
    "read",
    "written",
    "drawn",
    "always",
    "never",
    "kept",
    "found",
    "both",
    "all",
    "now",
    "available",
    "able",
    "likely",
    "very",
    "more",
    "less",
    "same",
    "different",
];

/// Whether the word after "are" can open the class a plural subject belongs to ("lists",
/// "an", "those"): not a verb form, adverb, number or adjective or participle (the
/// adjective endings hold "-ing"; "Font names are case-insensitive", "… are similar in
/// effect" describe, they do not define).
fn names_a_class(next: &str) -> bool {
    !(NOT_A_CLASS.contains(&next)
        || ["ed", "ly"].iter().any(|e| next.ends_with(e))
        || super::terms::ADJECTIVE_ENDINGS.iter().any(|e| next.ends_with(e))
        || next.starts_with(|c: char| c.is_ascii_digit()))
}

/// The definition a sentence makes, if it is one whose subject reads as a noun phrase of
/// one to five words (after an optional article).
pub fn definition(sentence: &str) -> Option<(String, Option<String>, &'static str)> {
    // ASCII lower case keeps every byte where it was, so positions found in `lower` slice
    // `sentence` (the patterns are ASCII).
    let lower = sentence.to_ascii_lowercase();
    let (subject, verb) = if let Some(rest) = lower.strip_prefix("we define ") {
        let end = rest.find(" as ")?;
        (&sentence["we define ".len().."we define ".len() + end], "means")
    } else {
        let patterns = [
            (" is a ", "is"),
            (" is an ", "is"),
            (" is the ", "is"),
            (" is defined as ", "means"),
            (" are ", "are"),
            (" refers to ", "means"),
            (" means ", "means"),
            (" denotes ", "means"),
        ];
        let (pos, pattern, verb) =
            patterns.iter().filter_map(|(p, v)| lower.find(p).map(|i| (i, *p, *v))).min_by_key(|m| m.0)?;
        let next = lower[pos + pattern.len()..].split_whitespace().next().unwrap_or("");
        if verb == "are" && !names_a_class(next) {
            return None;
        }
        (&sentence[..pos], verb)
    };
    let mut words: Vec<&str> = subject.split_whitespace().collect();
    let article = words.first().map(|w| w.to_lowercase()).filter(|w| ["a", "an", "the"].contains(&w.as_str()));
    if article.is_some() {
        words.remove(0);
    }
    let plain = |w: &str| {
        w.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
            && w.chars().next().is_some_and(char::is_alphanumeric)
            && !w.ends_with('.')
    };
    let lower_words: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let noun_phrase = (1..=5).contains(&words.len())
        && words.iter().all(|w| plain(w))
        && !lower_words.iter().any(|w| NOT_IN_NOUN_PHRASE.contains(&w.as_str()) || w.ends_with("ly"))
        && sentence.chars().next().is_some_and(char::is_uppercase);
    noun_phrase.then(|| (words.join(" "), article, verb))
}

/// A document's sentences, sections, definitions and key terms; with embeddings once ranked.
#[derive(Debug, Clone, Default)]
pub struct Material {
    pub sentences: Vec<Sentence>,
    pub sections: Vec<Section>,
    /// Definitions whose subject is specific (a key term, or a word outside the most
    /// common English words), in reading order.
    pub definitions: Vec<Definition>,
    /// Key terms, most important first.
    pub terms: Vec<Term>,
    /// Sentences left out, and why.
    pub skipped: Skipped,
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
pub fn separate_run_on(text: &str) -> String {
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
    /// its first words are written; sentences [`skip`] rules out are counted, not kept.
    pub fn from_chunks(chunks: &[Chunk], pages: &[Page], freq: &WordFreq) -> Self {
        let page_words: HashMap<u32, Vec<String>> =
            pages.iter().map(|p| (p.number, words(&separate_run_on(&p.text())))).collect();
        let on = |page: u32, probe: &[String]| page_words.get(&page).is_some_and(|ws| find_phrase(ws, probe).is_some());
        let repeated = repeated_ngrams(pages);
        let listings = skip::listing_pages(pages);
        let mut m = Material::default();
        let mut seen = HashSet::new();
        for chunk in chunks {
            // A chunk with two author–year entries is a reference list, even when its
            // "References" title was not read as a heading.
            let section_skip = skip::section_reason(&chunk.heading_path)
                .or((skip::author_year_entries(&chunk.text) >= 2).then_some(skip::Reason::References));
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
                if !is_prose(&text) || !seen.insert(text.to_lowercase()) {
                    continue;
                }
                let listing = listings.contains(&page).then_some(skip::Reason::Listing);
                if let Some(reason) = listing
                    .or(section_skip)
                    .or_else(|| skip::sentence_reason(&text))
                    .or_else(|| skip::not_english(&text, freq))
                {
                    m.skipped.add(reason, page);
                    continue;
                }
                m.sections[section].sentences.push(m.sentences.len());
                m.sentences.push(Sentence { text, page, section, score: 0.0, within_page });
            }
        }
        let found: Vec<Definition> = (0..m.sentences.len())
            .filter_map(|i| {
                let (subject, article, verb) = definition(&m.sentences[i].text)?;
                Some(Definition { sentence: i, subject, article, verb })
            })
            .collect();
        let defined: HashSet<Vec<String>> = found.iter().map(|d| words(&d.subject)).collect();
        let texts: Vec<(&str, usize)> = m.sentences.iter().map(|s| (s.text.as_str(), s.section)).collect();
        let mut headings: Vec<Vec<String>> = m
            .sections
            .iter()
            .filter(|s| skip::section_reason(&s.path).is_none())
            .filter_map(|s| s.path.last().map(|t| words(t)))
            .collect();
        headings.sort();
        headings.dedup();
        m.terms = super::terms::key_terms(&texts, &defined, &headings, freq, 60);
        // A subject the document names only once ("Suppose the data vectors are …") is
        // rarely what it defines.
        let texts: Vec<Vec<String>> = m.sentences.iter().map(|s| words(&s.text)).collect();
        let named_again = |ws: &[String]| texts.iter().filter(|t| find_phrase(t, ws).is_some()).count() >= 2;
        m.definitions = found
            .into_iter()
            .filter(|d| {
                let ws = words(&d.subject);
                m.terms.iter().any(|t| t.words == ws)
                    || (ws.iter().any(|w| !freq.is_top(w, super::terms::COMMON_WORDS)) && named_again(&ws))
            })
            .collect();
        m
    }

    /// The document's own title when it heads nearly every section (a paper's title above
    /// its numbered sections): not a section to study.
    pub fn document_title(&self) -> Option<&str> {
        let first = self.sections.first()?.path.first()?;
        let under = self.sections.iter().filter(|s| s.path.first() == Some(first)).count();
        (self.sections.len() >= 3 && under * 5 >= self.sections.len() * 4).then_some(first.as_str())
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

    /// How central each sentence is and how much it is about the key terms: its centrality
    /// times (1 + the weight of the best key term in it relative to the best term overall).
    /// The cheat sheet, the quiz and the LLM's passages are chosen by it.
    pub fn importances(&self) -> Vec<f32> {
        let best = self.terms.first().map_or(1.0, |t| t.weight).max(f64::MIN_POSITIVE);
        self.sentences
            .iter()
            .map(|s| {
                let ws = words(&s.text);
                let key =
                    self.terms.iter().find(|t| find_phrase(&ws, &t.words).is_some()).map_or(0.0, |t| t.weight / best);
                s.score * (1.0 + key as f32)
            })
            .collect()
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

/// Replaces the first occurrence of `phrase` (normalised words) with a blank, keeping the
/// punctuation around it.
pub fn blank_out(sentence: &str, phrase: &[String]) -> Option<String> {
    replace_phrase(sentence, phrase, "_____")
}

/// Replaces the first occurrence of `phrase` with `with`, keeping surrounding punctuation.
pub fn replace_phrase(sentence: &str, phrase: &[String], with: &str) -> Option<String> {
    if phrase.is_empty() {
        return None;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
