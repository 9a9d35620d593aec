//! Flashcards (JSON) with SM-2 scheduling state (ease 2.5, interval 0, no repetitions,
//! due now): definitions ("What is a mutex?" → the sentence that defines it), sections →
//! their key points ("What does the section “…” cover?"), and key terms → the sentence that
//! defines or explains them best.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::HashSet;

use super::skip;
use super::text::Material;
use super::words::{find_phrase, words};
use crate::error::StageError;
use crate::schedule::sm2::{self, Sm2};

pub const MEDIA_TYPE: &str = "application/json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub id: String,
    /// definition | key_points | term | figure
    pub kind: String,
    pub front: String,
    pub back: String,
    pub page: u32,
    pub sm2: Sm2,
    /// In a deck over several documents: the file name of the card's document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// A figure card's image: a file name in the deck's media (`<document id>-<figure file>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `flashcards.json`; its schema is `jobs/flashcards.schema.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deck {
    pub scheduler: String,
    pub cards: Vec<Card>,
    /// What the cards were not drawn from, and why (front matter, reference lists, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// A section title a student would recognise: one to twelve words with letters, not the
/// document's own title and not a section [`skip`] rules out.
fn studied_section(material: &Material, title: &str, path: &[String]) -> bool {
    let n = title.split_whitespace().count();
    (1..=12).contains(&n)
        && title.chars().filter(|c| c.is_alphabetic()).count() >= 3
        && material.document_title() != Some(title)
        && skip::section_reason(path).is_none()
}

/// Cards for a document, at most `max`; ids are `<document id>-c001`, … Three kinds,
/// taken in turn so that none crowds out the others: definitions, each titled section's
/// key points, and key terms with the sentence that defines them (else their most central
/// one). No two cards share a front or a back.
pub fn cards(document_id: &str, material: &Material, max: usize, now: DateTime<Utc>) -> Vec<Card> {
    let by_score = |ids: &[usize]| {
        let mut ids = ids.to_vec();
        ids.sort_by(|&a, &b| material.sentences[b].score.total_cmp(&material.sentences[a].score).then(a.cmp(&b)));
        ids
    };
    // (kind, front, back, page) per kind, best first.
    let mut ordered: Vec<&super::text::Definition> = material.definitions.iter().collect();
    ordered.sort_by(|a, b| {
        let score = |d: &super::text::Definition| material.sentences[d.sentence].score;
        score(b).total_cmp(&score(a)).then(a.sentence.cmp(&b.sentence))
    });
    let definitions: Vec<_> = ordered
        .iter()
        .map(|d| {
            let s = &material.sentences[d.sentence];
            ("definition", d.question(), s.text.clone(), s.page)
        })
        .collect();
    let mut key_points = Vec::new();
    for section in &material.sections {
        let Some(title) = section.title() else { continue };
        if section.sentences.len() < 2 || !studied_section(material, title, &section.path) {
            continue;
        }
        let mut best = by_score(&section.sentences);
        best.truncate(3);
        best.sort_unstable();
        let back = best.iter().map(|&i| format!("• {}", material.sentences[i].text)).collect::<Vec<_>>().join("\n");
        key_points.push(("key_points", format!("What does the section “{title}” cover?"), back, section.page));
    }
    let all: Vec<usize> = by_score(&(0..material.sentences.len()).collect::<Vec<_>>());
    let mut terms = Vec::new();
    for term in &material.terms {
        let defining = material.definitions.iter().find(|d| words(&d.subject) == term.words).map(|d| d.sentence);
        let found = defining.or_else(|| {
            all.iter().copied().find(|&i| find_phrase(&words(&material.sentences[i].text), &term.words).is_some())
        });
        if let Some(i) = found {
            let s = &material.sentences[i];
            terms.push(("term", term.text.clone(), s.text.clone(), s.page));
        }
    }

    let mut cards: Vec<Card> = Vec::new();
    let mut fronts = HashSet::new();
    let mut backs = HashSet::new();
    let lists = [definitions, key_points, terms];
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (kind, front, back, page) in lists.iter().filter_map(|l| l.get(i)) {
            if cards.len() < max && fronts.insert(front.to_lowercase()) && backs.insert(back.to_lowercase()) {
                cards.push(Card {
                    id: format!("{document_id}-c{:03}", cards.len() + 1),
                    kind: kind.to_string(),
                    front: front.clone(),
                    back: back.clone(),
                    page: *page,
                    sm2: sm2::new_card(now),
                    document: None,
                    image: None,
                });
            }
        }
    }
    cards
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// The cards as CSV (front, back, document, page, kind) with a header row, which Anki's
/// and most flashcard apps' importers read.
pub fn csv(cards: &[Card]) -> String {
    let mut out = String::from("front,back,document,page,kind\r\n");
    for c in cards {
        let row = [&c.front, &c.back, c.document.as_deref().unwrap_or(""), &c.page.to_string(), &c.kind];
        out += &row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
        out += "\r\n";
    }
    out
}

pub const CSV_MEDIA_TYPE: &str = "text/csv; charset=utf-8";

pub fn build(cards: Vec<Card>, skipped: Vec<String>) -> Result<Vec<u8>, StageError> {
    let deck = Deck { scheduler: "sm2".into(), cards, skipped };
    serde_json::to_vec_pretty(&deck).map_err(|e| StageError::transient("write flashcards", e))
}

#[cfg(test)]
mod tests {
    use super::super::text::{Definition, definition};

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a, b"), "\"a, b\"");
        assert_eq!(super::csv_field("say \"hi\"\nnow"), "\"say \"\"hi\"\"\nnow\"");
    }

    #[test]
    fn definitions_are_noun_phrases() {
        let d = definition;
        assert_eq!(d("A mutex is a lock that allows one owner."), Some(("mutex".into(), Some("a".into()), "is")));
        assert_eq!(d("Data frames are lists of vectors of equal length."), Some(("Data frames".into(), None, "are")));
        assert_eq!(
            d("We define the lease as the time a worker owns a job."),
            Some(("lease".into(), Some("the".into()), "means"))
        );
        assert_eq!(d("Font names are case-insensitive and may be left out."), None);
        assert_eq!(d("Labels are always drawn with an opacity of 1."), None);
        assert_eq!(d("The defaults are 6Mb and 350k respectively."), None);
        assert_eq!(d("Outer margins are particularly useful for page-wise titles."), None);
        assert_eq!(d("In this long introductory sentence the thing is a test."), None);
        assert_eq!(d("It is a good idea."), None);
        assert_eq!(d("If you want more, the manual is the place."), None);
        assert_eq!(d("The plot command, by default, is the one to use."), None);
        let def = Definition { sentence: 0, subject: "mutex".into(), article: Some("a".into()), verb: "is" };
        assert_eq!(def.question(), "What is a mutex?");
    }
}
