//! Flashcards (JSON) with SM-2 scheduling state (ease 2.5, interval 0, no repetitions,
//! due now): definitions ("X is …"), section headings → their key points, and key terms →
//! the sentence that explains them best.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::HashSet;

use super::text::{Material, find_phrase, words};
use crate::error::StageError;
use crate::sm2::{self, Sm2};

pub const MEDIA_TYPE: &str = "application/json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub id: String,
    /// definition | key_points | term
    pub kind: String,
    pub front: String,
    pub back: String,
    pub page: u32,
    pub sm2: Sm2,
}

/// `flashcards.json`; its schema is `jobs/flashcards.schema.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deck {
    pub scheduler: String,
    pub cards: Vec<Card>,
}

/// "X is/are/means/refers to …" with a short subject → the subject.
pub fn definition(sentence: &str) -> Option<String> {
    let lower = sentence.to_lowercase();
    for verb in [" is a ", " is an ", " is the ", " are ", " refers to ", " means ", " is defined as "] {
        if let Some(pos) = lower.find(verb) {
            let subject = sentence[..pos].trim();
            let n = subject.split_whitespace().count();
            let pronoun =
                matches!(subject.to_lowercase().as_str(), "it" | "this" | "that" | "there" | "these" | "they");
            if (1..=5).contains(&n) && !pronoun && subject.chars().next().is_some_and(char::is_alphanumeric) {
                return Some(subject.to_string());
            }
        }
    }
    None
}

/// Cards for a document, at most `max`; ids are `<document id>-c001`, … Three kinds,
/// taken in turn so that none crowds out the others: definitions, each titled section's
/// key points, and key terms with their most central sentence. No two cards share a front
/// or a back.
pub fn cards(document_id: &str, material: &Material, max: usize, now: DateTime<Utc>) -> Vec<Card> {
    let by_score = |ids: &[usize]| {
        let mut ids = ids.to_vec();
        ids.sort_by(|&a, &b| material.sentences[b].score.total_cmp(&material.sentences[a].score).then(a.cmp(&b)));
        ids
    };
    // (kind, front, back, page) per kind, best first.
    let mut definitions = Vec::new();
    for &i in &by_score(&(0..material.sentences.len()).collect::<Vec<_>>()) {
        let s = &material.sentences[i];
        if let Some(subject) = definition(&s.text) {
            definitions.push(("definition", format!("What is {subject}?"), s.text.clone(), s.page));
        }
    }
    let mut key_points = Vec::new();
    for section in &material.sections {
        let Some(title) = section.title() else { continue };
        if section.sentences.len() < 2 {
            continue;
        }
        let mut best = by_score(&section.sentences);
        best.truncate(3);
        best.sort_unstable();
        let back = best.iter().map(|&i| format!("• {}", material.sentences[i].text)).collect::<Vec<_>>().join("\n");
        key_points.push(("key_points", format!("Key points: {title}"), back, section.page));
    }
    let all: Vec<usize> = by_score(&(0..material.sentences.len()).collect::<Vec<_>>());
    let mut terms = Vec::new();
    for term in &material.terms {
        let found = all.iter().find(|&&i| find_phrase(&words(&material.sentences[i].text), &term.words).is_some());
        if let Some(&i) = found {
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
                });
            }
        }
    }
    cards
}

pub fn build(cards: Vec<Card>) -> Result<Vec<u8>, StageError> {
    let deck = Deck { scheduler: "sm2".into(), cards };
    serde_json::to_vec_pretty(&deck).map_err(|e| StageError::transient("write flashcards", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_found() {
        assert_eq!(definition("A mutex is a lock that allows one owner.").as_deref(), Some("A mutex"));
        assert_eq!(definition("In this long introductory sentence the thing is a test.").as_deref(), None);
        assert_eq!(definition("It is a good idea.").as_deref(), None);
    }
}
