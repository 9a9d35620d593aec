//! What study material must not be drawn from, and why: tables of contents and indexes,
//! reference lists, acknowledgements, copyright and licence text, front matter (authors,
//! affiliations, addresses, classification boilerplate) and lines that are not prose (title
//! case, a slide's navigation bar). Found from
//! section titles, from how a page is laid out (page numbers after entries), and from
//! patterns in a sentence. [`Skipped`] counts what was left out under each reason.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::workdir::Page;
use crate::text::wordfreq::WordFreq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Listing,
    References,
    Acknowledgements,
    Licence,
    FrontMatter,
    NotProse,
    NotEnglish,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Listing => "table of contents or index",
            Reason::References => "reference list",
            Reason::Acknowledgements => "acknowledgements",
            Reason::Licence => "copyright or licence text",
            Reason::FrontMatter => "front matter and links (authors, affiliations, addresses, keywords, URLs)",
            Reason::NotProse => "titles, names or navigation lines, not prose",
            Reason::NotEnglish => "text not in English (placeholder text such as lorem ipsum, another language)",
        }
    }
}

/// A page number or range as an index or contents prints it: "55", "65–67,".
pub fn is_page_number(w: &str) -> bool {
    let w = w.trim_end_matches(',');
    !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '–' || c == '-')
}

/// A dot leader (". . . ." comes as words of dots).
pub fn is_leader(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c == '.')
}

/// Of a sentence's words, the share that must be among the most common English words
/// for it to read as English; lorem ipsum falls below, and so does terse technical
/// prose, which [`ENGLISH_MARKS`] then keeps.
const ENGLISH_SHARE: f32 = 0.6;
const ENGLISH_WORDS: u32 = 30_000;
/// English function words that Latin placeholder text and the Romance languages lack
/// ("a", "in", "non" and "per" are shared, so not here).
const ENGLISH_MARKS: &[&str] = &[
    "the", "is", "are", "of", "to", "and", "for", "with", "this", "that", "be", "by", "it", "as", "from", "or", "on",
    "can", "which", "not", "an", "will", "when", "if", "you", "we",
];

/// Whether a sentence is not English: few of its words are common English words and none
/// is an English function word. The study material is English-only (its question
/// patterns and word list are).
pub fn not_english(text: &str, freq: &WordFreq) -> Option<Reason> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()).to_lowercase())
        .filter(|w| w.chars().count() >= 2 && w.chars().all(char::is_alphabetic))
        .collect();
    let known = words.iter().filter(|w| freq.is_top(w, ENGLISH_WORDS)).count();
    let marked = words.iter().any(|w| ENGLISH_MARKS.contains(&w.as_str()));
    (words.len() >= 4 && !marked && (known as f32) < ENGLISH_SHARE * words.len() as f32).then_some(Reason::NotEnglish)
}

/// Pages that list entries with page numbers: tables of contents and indexes. A reference is
/// a number or range after a dot leader, a comma or another reference ("binary . . . 55",
/// "errorbars, 65–67, 70"); such a page has at least 20 and they make 15 % of its words.
pub fn listing_pages(pages: &[Page]) -> HashSet<u32> {
    let mut out = HashSet::new();
    for page in pages {
        let words: Vec<&str> = page.words.iter().map(|w| w.text.as_str()).collect();
        let mut marks = 0;
        // A number after a number counts only when that one was a reference (so a table of
        // figures does not make a page a listing).
        let mut last_was_reference = false;
        for (i, w) in words.iter().enumerate() {
            let reference = if is_leader(w) {
                true
            } else if is_page_number(w) && i > 0 {
                let before = words[i - 1];
                is_leader(before)
                    || before.ends_with(',')
                    || before.ends_with("..")
                    || (is_page_number(before) && last_was_reference)
            } else {
                false
            };
            marks += reference as usize;
            last_was_reference = reference;
        }
        if marks >= 20 && marks * 100 >= words.len() * 15 {
            out.insert(page.number);
        }
    }
    out
}

/// A section title without its numbering ("2.1", "Appendix D:", "Chapter 3:"), lower case.
fn bare_title(title: &str) -> String {
    let lower = title.trim().to_lowercase();
    let mut rest = lower.as_str();
    for lead in ["appendix", "chapter", "part", "section"] {
        // "Part 2", "Appendix D:", not "Partial index".
        let word_ends = |r: &str| r.chars().next().is_none_or(|c| c.is_whitespace() || c.is_ascii_digit());
        if let Some(r) = rest.strip_prefix(lead).filter(|r| word_ends(r)) {
            rest = r.trim_start().trim_start_matches(|c: char| c.is_alphanumeric() && c.is_ascii()).trim_start();
            rest = rest.trim_start_matches([':', '.', ' ']);
            break;
        }
    }
    rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

/// Kinds of back-of-book index ("Concept index", "Function and variable index"); a title
/// like "Refractive index" is a topic, not a listing.
const INDEX_TITLES: &[&str] = &[
    "concept",
    "subject",
    "author",
    "general",
    "name",
    "function",
    "variable",
    "function and variable",
    "command",
    "keyword",
    "program",
    "option",
    "topic",
];

/// Why every sentence under a heading path is skipped, if one of its titles says so.
pub fn section_reason(path: &[String]) -> Option<Reason> {
    path.iter().find_map(|title| {
        let t = bare_title(title);
        Some(match t.as_str() {
            "references"
            | "bibliography"
            | "works cited"
            | "literature cited"
            | "reference list"
            | "references and notes" => Reason::References,
            "acknowledgments" | "acknowledgements" | "acknowledgment" | "acknowledgement" | "funding" => {
                Reason::Acknowledgements
            }
            "contents" | "table of contents" | "index" | "list of figures" | "list of tables" => Reason::Listing,
            _ if INDEX_TITLES.iter().any(|k| t == format!("{k} index")) => Reason::Listing,
            "copyright" | "copyright notice" | "license" | "licence" | "copying" | "rights information" => {
                Reason::Licence
            }
            _ if t.starts_with("gnu ") && (t.contains("license") || t.contains("licence")) => Reason::Licence,
            "author note"
            | "about the author"
            | "about the authors"
            | "author contributions"
            | "conflict of interest"
            | "conflicts of interest"
            | "declaration of competing interest"
            | "index terms"
            | "keywords" => Reason::FrontMatter,
            // "CCS Concepts and user-defined keywords"
            _ if t.starts_with("ccs concepts") => Reason::FrontMatter,
            _ => return None,
        })
    })
}

/// Phrases of copyright and licence text (not the words alone: "a licence plate reader").
const LICENCE: &[&str] = &[
    "©",
    "copyright (c)",
    "copyright c ",
    "copyright 19",
    "copyright 20",
    "permission is granted",
    "permission to make",
    "all rights reserved",
    "licensed under",
    "under the terms of the",
    "public license",
    "documentation license",
    "creative commons",
    "registered trademark",
    "trademark of",
    "trademarks of",
];

const FRONT: &[&str] = &[
    "http://",
    "https://",
    "www.",
    "doi:",
    "doi.org",
    "orcid",
    "ccs concepts",
    "key words and phrases",
    "keywords:",
    "index terms:",
    "index terms—",
    "acm reference format",
    "publication date",
    "authors’ addresses",
    "authors' addresses",
    "author’s address",
    "author's address",
    "correspondence concerning",
    "corresponding author",
    "preprint submitted",
    "manuscript received",
    "accepted for publication",
    "contributed equally",
];

const AFFILIATION: &[&str] = &[
    "university",
    "institute",
    "department",
    "laboratory",
    "laboratories",
    "consortium",
    "inc.",
    "ltd",
    "corporation",
    "college",
    "school of",
    "faculty of",
    "research center",
    "research centre",
];

/// Marks of a reference-list entry: phrases, then whole words; a sentence with three of
/// them (a year counts as one, an author–year entry as three) is one.
const REFERENCE_PHRASES: &[&str] = &["et al", " pp.", " vol.", "in proceedings", "conference on"];
const REFERENCE_WORDS: &[&str] = &["proc", "journal", "press", "arxiv", "isbn", "retrieved", "thesis", "doi"];

/// How many author–year reference entries a text holds: an author's initial right before a
/// year in parentheses ("Sailor, W. (2006).", APA's form). In-text citations ("Smith
/// (2006)", "(Smith, 2006)") have no initial there.
pub fn author_year_entries(text: &str) -> usize {
    let words: Vec<&str> = text.split_whitespace().collect();
    let initial = |w: &str| {
        let w = w.trim_end_matches(',');
        let mut cs = w.chars();
        matches!((cs.next(), cs.next(), cs.next()), (Some(c), Some('.'), None) if c.is_uppercase())
    };
    let year = |w: &str| {
        let inner = w.trim_end_matches(['.', ',']);
        inner.starts_with('(')
            && inner.ends_with(')')
            && inner[1..inner.len() - 1].trim_end_matches(char::is_alphabetic).len() == 4
            && inner[1..5].chars().all(|c| c.is_ascii_digit())
    };
    words.windows(2).filter(|w| initial(w[0]) && year(w[1])).count()
}

fn has_email(text: &str) -> bool {
    text.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        w.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    })
}

/// A word that is a year, as references print it: "2003.", "(2018)", "2010,".
fn has_year(text: &str) -> bool {
    text.split_whitespace().any(|w| {
        let d = w.trim_matches(|c: char| "().,;:[]".contains(c));
        d.len() == 4 && d.chars().all(|c| c.is_ascii_digit()) && (d.starts_with("19") || d.starts_with("20"))
    })
}

/// Share of a sentence's words after the first that start with a capital (of those with letters).
fn capitalised_share(text: &str) -> f32 {
    let words: Vec<&str> = text.split_whitespace().skip(1).filter(|w| w.chars().any(char::is_alphabetic)).collect();
    let caps = words.iter().filter(|w| w.chars().find(|c| c.is_alphabetic()).is_some_and(char::is_uppercase)).count();
    caps as f32 / words.len().max(1) as f32
}

/// The longest run of consecutive words that start with a capital ("KUMQUAT, The Kumquat
/// Consortium, USA").
fn capitalised_run(text: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for w in text.split_whitespace() {
        if w.chars().find(|c| c.is_alphabetic()).is_some_and(char::is_uppercase) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// Why a sentence is skipped on its own, whatever its section.
pub fn sentence_reason(text: &str) -> Option<Reason> {
    let lower = text.to_lowercase();
    let has = |list: &[&str]| list.iter().any(|p| lower.contains(p));
    if has(LICENCE) {
        return Some(Reason::Licence);
    }
    if has_email(text) || has(FRONT) {
        return Some(Reason::FrontMatter);
    }
    let cited = text.starts_with('[') && text[1..].split(']').next().is_some_and(|n| n.parse::<u32>().is_ok());
    let tokens: HashSet<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    let marks = REFERENCE_PHRASES.iter().filter(|p| lower.contains(*p)).count()
        + REFERENCE_WORDS.iter().filter(|w| tokens.contains(*w)).count()
        + has_year(text) as usize
        + 2 * cited as usize
        + 3 * author_year_entries(text);
    if marks >= 3 {
        return Some(Reason::References);
    }
    let capitals = capitalised_share(text);
    if has(AFFILIATION) && (capitals >= 0.4 || capitalised_run(text) >= 3) {
        return Some(Reason::FrontMatter);
    }
    // Title case, or a phrase said twice in a row (a slide's navigation bar).
    let ws: Vec<String> = text.split_whitespace().map(|w| w.to_lowercase()).collect();
    let stutter = ws.windows(4).any(|w| w[0] == w[2] && w[1] == w[3]);
    if (capitals >= 0.6 && ws.len() >= 4) || stutter {
        return Some(Reason::NotProse);
    }
    None
}

/// Sentences left out, counted per reason with their pages.
#[derive(Debug, Clone, Default)]
pub struct Skipped {
    by_reason: BTreeMap<Reason, (usize, BTreeSet<u32>)>,
}

impl Skipped {
    pub fn add(&mut self, reason: Reason, page: u32) {
        let entry = self.by_reason.entry(reason).or_default();
        entry.0 += 1;
        entry.1.insert(page);
    }

    /// One line per reason: "reference list: 23 sentence(s) not used (pages 9–10)".
    pub fn lines(&self) -> Vec<String> {
        self.by_reason
            .iter()
            .map(|(reason, (n, pages))| {
                format!("{}: {n} sentence(s) not used (pages {})", reason.describe(), ranges(pages))
            })
            .collect()
    }
}

/// "1–3, 7, 9–10".
fn ranges(pages: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for &p in pages {
        run = match run {
            Some((a, b)) if p == b + 1 => Some((a, p)),
            Some((a, b)) => {
                out.push(if a == b { a.to_string() } else { format!("{a}–{b}") });
                Some((p, p))
            }
            None => Some((p, p)),
        };
    }
    if let Some((a, b)) = run {
        out.push(if a == b { a.to_string() } else { format!("{a}–{b}") });
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_titles_and_sentences() {
        let path = |t: &str| vec!["Paper".to_string(), t.to_string()];
        assert_eq!(section_reason(&path("REFERENCES")), Some(Reason::References));
        assert_eq!(section_reason(&path("Appendix E: Concept index")), Some(Reason::Listing));
        assert_eq!(section_reason(&path("5 Acknowledgments")), Some(Reason::Acknowledgements));
        assert_eq!(section_reason(&path("2.7 Index vectors; selecting and modifying subsets")), None);
        assert_eq!(section_reason(&path("3 Results")), None);
        assert_eq!(section_reason(&path("8 CCS CONCEPTS AND USER-DEFINED KEYWORDS")), Some(Reason::FrontMatter));
        assert_eq!(section_reason(&path("7 Rights information")), Some(Reason::Licence));
        let s = |t: &str| sentence_reason(t);
        assert_eq!(
            s("Authors’ addresses: Ben Trovato, trovato@corporation.com; G.K.M. Tobin."),
            Some(Reason::FrontMatter)
        );
        assert_eq!(
            s("Permission to make digital or hard copies of all or part of this work is granted."),
            Some(Reason::Licence)
        );
        assert_eq!(
            s("Ben Trovato, Institute for Clarity in Documentation, Dublin, Ohio, USA."),
            Some(Reason::FrontMatter)
        );
        assert_eq!(
            s("[4] David A. Anisi. 2003. Optimal Motion Control of a Ground Vehicle. Master’s thesis."),
            Some(Reason::References)
        );
        assert_eq!(s("The Name of the Title Is Hope And More."), Some(Reason::NotProse));
        assert_eq!(s("Genotype matrix perfect phylogeny perfect phylogeny how blocks help."), Some(Reason::NotProse));
        assert_eq!(
            s("KUMQUAT, The Kumquat Consortium, USA A clear and well-documented document is presented as an article."),
            Some(Reason::FrontMatter)
        );
        assert_eq!(s("As Smith et al. (2018) showed, a lease expires when heartbeats stop."), None);
        assert_eq!(s("A data frame is a list of vectors of equal length."), None);
        assert_eq!(s("Our hypothesis is that pressure above 2000 kPa stops the synthesis."), None);
        assert_eq!(s("The licence plate reader sends each image to the queue."), None);
        assert_eq!(section_reason(&path("Refractive index")), None);
        assert_eq!(section_reason(&path("Partial index")), None);
        let mut skipped = Skipped::default();
        for p in [9, 10, 12] {
            skipped.add(Reason::References, p);
        }
        assert_eq!(skipped.lines(), ["reference list: 3 sentence(s) not used (pages 9–10, 12)"]);
    }

    #[test]
    fn reference_entries_and_foreign_text() {
        let list = "Lassen, S. R., Steele, M. M., & Sailor, W. (2006). The relationship of school-wide support. \
                    Shotton, M. A. (1989). Computer addiction? A study of computer dependency.";
        assert_eq!(author_year_entries(list), 2);
        assert_eq!(sentence_reason("Carstensen, C. H. (2011). Measuring growth in a model."), Some(Reason::References));
        assert_eq!(author_year_entries("As Smith (2006) and Lee et al. (2019a) showed (Smith, 2006)."), 0);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/cache/wordfreq/small_en.msgpack.gz");
        let freq = WordFreq::load(std::path::Path::new(path)).expect("run scripts/setup.sh");
        let latin = "Nam lacus libero, pretium at, lobortis vitae, ultricies et, tellus.";
        assert_eq!(not_english(latin, &freq), Some(Reason::NotEnglish));
        let terse =
            "A linestyle is a temporary association of properties linecolor, linewidth, dashtype, and pointtype.";
        assert_eq!(not_english(terse, &freq), None);
        assert_eq!(not_english("A data frame is a list of vectors of equal length.", &freq), None);
    }
}
