//! Key terms: the words and phrases a document is about. A candidate is a run of one to three
//! words inside a sentence, not across punctuation, with no stop-word at either end. It is
//! weighed by how much rarer it is in general English than here (wordfreq's Zipf values:
//! specificity), how often the document uses it, in how many sections, and whether the
//! document defines it. One-word candidates among the 5,000 most common English words
//! ("document", "work", "text") are never terms; a phrase of common words ("data frame")
//! is one only when its words mostly occur together. Names before "et al." are left out, and
//! so are verb forms and adverbs by their ending ("specified", "briefly"); a candidate that
//! ends like an adjective ("optional", "resonant") must be seen used as a noun phrase (a word
//! after a determiner, a phrase after a determiner or preposition, either followed by
//! punctuation, a stop-word or a verb form). Inside a phrase the only stop-word allowed is "of".

use std::collections::{HashMap, HashSet};

use super::words::{find_phrase, is_stopword, normalize};
use crate::text::wordfreq::WordFreq;

/// Words at or above this Zipf value carry no specificity ("use" 6.0; "vector" 4.6).
const COMMON_ZIPF: f32 = 6.0;
/// One-word terms must be rarer than the this many most common English words.
pub const COMMON_WORDS: u32 = 5000;
/// How much more a candidate weighs when a section title names it.
const HEADING_BOOST: f64 = 2.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// As written most often in the document.
    pub text: String,
    /// Normalised words.
    pub words: Vec<String>,
    /// Higher is more important.
    pub weight: f64,
    pub count: usize,
}

/// A word that may be part of a key term.
fn is_term_word(w: &str) -> bool {
    w.chars().count() >= 2 && w.chars().all(|c| c.is_alphabetic() || c == '-') && !w.starts_with('-')
}

/// Words after which a noun follows: "the X", "a X", "of X".
const DETERMINERS: &[&str] =
    &["a", "an", "the", "this", "that", "these", "those", "each", "every", "its", "their", "our", "no", "any", "of"];
/// Words after which a noun phrase of several words follows ("with exponential backoff").
const PREPOSITIONS: &[&str] = &["in", "on", "at", "by", "for", "from", "with", "into", "to", "as", "and", "or"];

/// Endings of verb forms and adverbs ("specified", "specifies", "localized", "briefly").
fn verb_or_adverb(w: &str) -> bool {
    ["ed", "ly", "izes", "ises", "ize", "ise", "ates", "ifies", "ify"].iter().any(|e| w.ends_with(e))
}

/// Endings of adjectives and participles ("optional", "geometric", "attributive",
/// "resonant", "plotting"): a candidate ending so must be seen used as a noun phrase.
pub(super) const ADJECTIVE_ENDINGS: &[&str] =
    &["al", "ar", "ic", "ive", "ous", "able", "ible", "ful", "less", "ary", "ant", "ent", "ing"];

/// The words with the last one made singular ("data frames" → "data frame"), so that a
/// term and its plural are one term.
fn singular(words: &[String]) -> Vec<String> {
    let mut out = words.to_vec();
    if let Some(last) = out.last_mut() {
        *last = singular_word(last);
    }
    out
}

/// Plurals no ending rule undoes ("devices" is not "devix").
pub const IRREGULAR_PLURALS: &[(&str, &str)] = &[
    ("matrices", "matrix"),
    ("indices", "index"),
    ("vertices", "vertex"),
    ("appendices", "appendix"),
    ("axes", "axis"),
    ("analyses", "analysis"),
    ("hypotheses", "hypothesis"),
];

fn singular_word(w: &str) -> String {
    if let Some((_, one)) = IRREGULAR_PLURALS.iter().find(|(many, _)| *many == w) {
        return one.to_string();
    }
    let mut w = w.to_string();
    if ["sses", "xes", "ches", "shes"].iter().any(|e| w.ends_with(e)) {
        w.truncate(w.len() - 2);
    } else if w.len() > 4 && w.ends_with("ies") {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.len() > 3 && w.ends_with('s') && !["ss", "is", "us"].iter().any(|e| w.ends_with(e)) {
        w.pop();
    }
    w
}

#[derive(Default)]
struct Candidate {
    count: usize,
    /// Seen once at least where a noun phrase stands.
    noun_use: bool,
    sections: HashSet<usize>,
    surfaces: HashMap<String, usize>,
}

/// The document's key terms, best first, none overlapping a better one word for word.
/// `sentences` are (text, section index); `defined` holds the normalised subjects of the
/// document's definitions.
pub fn key_terms(
    sentences: &[(&str, usize)],
    defined: &HashSet<Vec<String>>,
    headings: &[Vec<String>],
    freq: &WordFreq,
    limit: usize,
) -> Vec<Term> {
    let headings: Vec<Vec<String>> = headings.iter().map(|h| h.iter().map(|w| singular_word(w)).collect()).collect();
    let in_heading = |ws: &[String]| {
        let ws: Vec<String> = ws.iter().map(|w| singular_word(w)).collect();
        headings.iter().any(|h| find_phrase(h, &ws).is_some())
    };
    let mut word_count: HashMap<String, usize> = HashMap::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut candidates: HashMap<Vec<String>, Candidate> = HashMap::new();
    for &(text, section) in sentences {
        let raw: Vec<&str> = text.split_whitespace().collect();
        let norm: Vec<String> = raw.iter().map(|w| normalize(w)).collect();
        for (i, w) in norm.iter().enumerate() {
            *word_count.entry(w.clone()).or_default() += 1;
            if norm.get(i + 1).is_some_and(|n| n == "et") && norm.get(i + 2).is_some_and(|n| n == "al") {
                names.insert(w.clone());
            }
        }
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
                    || ws.iter().skip(1).take(len.saturating_sub(2)).any(|w| is_stopword(w) && w != "of")
                    || ws.iter().all(|w| w.chars().count() < 4)
                    || raw[start..end - 1]
                        .iter()
                        .any(|w| w.ends_with([',', ';', ':', '.', ')', '?', '!', '"', '”', '’']))
                    || raw[start + 1..end].iter().any(|w| w.starts_with(['(', '[', '"', '“']))
                {
                    continue;
                }
                let surface: String = raw[start..end]
                    .iter()
                    .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let before = start.checked_sub(1).map(|k| (norm[k].as_str(), raw[k]));
                let opened = before.is_some_and(|(n, r)| {
                    (DETERMINERS.contains(&n) || (len > 1 && PREPOSITIONS.contains(&n))) && !r.ends_with([',', '.'])
                });
                // Closed by punctuation, a stop-word or a verb form ("the package contains"); a
                // word ending in -s after an adjective is rather a plural noun ("graphical
                // functions").
                let adjective = ADJECTIVE_ENDINGS.iter().any(|e| ws[len - 1].ends_with(e));
                let closed = raw[end - 1].ends_with([',', ';', ':', '.', ')', '?', '!'])
                    || norm.get(end).is_none_or(|n| {
                        is_stopword(n)
                            || n.is_empty()
                            || (!adjective && n.ends_with('s') && !n.ends_with("ss"))
                            || n.ends_with("ed")
                    });
                let c = candidates.entry(ws.to_vec()).or_default();
                c.noun_use |= opened && closed;
                c.count += 1;
                c.sections.insert(section);
                *c.surfaces.entry(surface).or_default() += 1;
            }
        }
    }
    let enough_repeated = candidates.values().filter(|c| c.count >= 2).count() >= 10;
    let min_count = if enough_repeated { 2 } else { 1 };
    let rarity = |w: &str| (COMMON_ZIPF - freq.zipf(w)).clamp(0.0, 3.5) as f64;
    let mut terms: Vec<Term> = candidates
        .into_iter()
        .filter(|(ws, c)| c.count >= min_count && !ws.iter().any(|w| names.contains(w)))
        .filter(|(ws, c)| {
            let last = &ws[ws.len() - 1];
            !verb_or_adverb(last) && (c.noun_use || !ADJECTIVE_ENDINGS.iter().any(|e| last.ends_with(e)))
        })
        .filter_map(|(ws, c)| {
            // How often the words occur as this phrase rather than apart.
            let cohesion = c.count as f64 / ws.iter().map(|w| word_count[w]).min().unwrap_or(1).max(1) as f64;
            let all_common = ws.iter().all(|w| freq.is_top(w, COMMON_WORDS));
            if all_common && (ws.len() == 1 || cohesion < 0.3 || c.count < 2) {
                return None;
            }
            let specificity = ws.iter().map(|w| rarity(w)).fold(0.0, f64::max) + 0.5 * (ws.len() - 1) as f64 * cohesion;
            let spread = 1.0 + (c.sections.len() as f64).ln();
            let defined = if defined.contains(&ws) { 1.5 } else { 1.0 };
            let titled = if in_heading(&ws) { HEADING_BOOST } else { 1.0 };
            let weight = specificity * (1.0 + c.count as f64).ln() * spread * defined * titled;
            let text = c
                .surfaces
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .map(|(s, _)| s)
                .unwrap_or_else(|| ws.join(" "));
            (weight > 0.0).then_some(Term { text, words: ws, weight, count: c.count })
        })
        .collect();
    terms.sort_by(|a, b| b.weight.total_cmp(&a.weight).then_with(|| a.words.cmp(&b.words)));
    let mut kept: Vec<Term> = Vec::new();
    for t in terms {
        let singular_t = singular(&t.words);
        let overlaps = kept.iter().any(|k| {
            find_phrase(&k.words, &t.words).is_some()
                || find_phrase(&t.words, &k.words).is_some()
                || singular(&k.words) == singular_t
        });
        if !overlaps {
            kept.push(t);
            if kept.len() >= limit {
                break;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_terms_are_specific_nouns() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/cache/wordfreq/small_en.msgpack.gz");
        let freq = WordFreq::load(std::path::Path::new(path)).expect("run scripts/setup.sh");
        assert!(freq.is_top("document", COMMON_WORDS) && !freq.is_top("polariton", COMMON_WORDS));
        let text = [
            ("The scheduler gives each job a lease in this document.", 0),
            ("A lease expires when the worker stops sending heartbeats.", 0),
            ("The scheduler retries a job with exponential backoff in this document.", 1),
            ("Exponential backoff spreads retries over time, as Smith et al. showed.", 1),
            ("Heartbeats renew the lease of a running job.", 2),
            ("A data frame is specified once; the data frame holds columns.", 2),
            ("Each data frame is specified by the worker and the heartbeats.", 3),
        ];
        let defined: HashSet<Vec<String>> = [vec!["lease".to_string()]].into();
        let terms = key_terms(&text, &defined, &[], &freq, 10);
        let names: Vec<&str> = terms.iter().map(|t| t.text.as_str()).collect();
        for want in ["heartbeats", "lease", "data frame", "exponential backoff"] {
            assert!(names.iter().any(|n| n.eq_ignore_ascii_case(want)), "{want} missing from {names:?}");
        }
        assert_eq!(singular(&["data".into(), "frames".into()]), ["data", "frame"]);
        assert_eq!(singular(&["boxes".into()]), ["box"]);
        assert_eq!(singular(&["matrices".into()]), ["matrix"]);
        // Common words, verb forms and names are not terms.
        for not in ["document", "job", "specified", "Smith"] {
            assert!(!names.contains(&not), "{not} in {names:?}");
        }
        for (i, a) in terms.iter().enumerate() {
            for b in &terms[i + 1..] {
                assert!(find_phrase(&a.words, &b.words).is_none() && find_phrase(&b.words, &a.words).is_none());
            }
        }
    }
}
