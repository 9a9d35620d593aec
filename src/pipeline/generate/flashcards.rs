//! Flashcards (JSON) with SM-2 scheduling state, from definitions ("X is …") and from
//! key sentences with their key term as the answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::text::{Material, blank_out};
use crate::pipeline::StageError;
use crate::sm2::Sm2;

pub const MEDIA_TYPE: &str = "application/json";
const MAX_CARDS: usize = 40;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Card {
    pub id: String,
    pub front: String,
    pub back: String,
    pub page: u32,
    pub sm2: Sm2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deck {
    pub scheduler: String,
    pub cards: Vec<Card>,
}

/// "X is/are/means/refers to …" with a short subject → (subject, sentence).
pub fn definition(sentence: &str) -> Option<String> {
    let lower = sentence.to_lowercase();
    for verb in [" is a ", " is an ", " is the ", " are ", " refers to ", " means "] {
        if let Some(pos) = lower.find(verb) {
            let subject = sentence[..pos].trim();
            let n = subject.split_whitespace().count();
            if (1..=5).contains(&n) && subject.chars().next().is_some_and(char::is_alphanumeric) {
                return Some(subject.to_string());
            }
        }
    }
    None
}

/// Cards for a document; ids are `<document id>-c001`, … (unique across documents).
pub fn cards(document_id: &str, material: &Material, now: DateTime<Utc>) -> Vec<Card> {
    let mut cards: Vec<Card> = Vec::new();
    let mut fronts = std::collections::HashSet::new();
    let mut push = |front: String, back: String, page: u32, cards: &mut Vec<Card>| {
        if cards.len() < MAX_CARDS && fronts.insert(front.to_lowercase()) {
            cards.push(Card {
                id: format!("{document_id}-c{:03}", cards.len() + 1),
                front,
                back,
                page,
                sm2: Sm2::new(now),
            });
        }
    };
    for s in &material.sentences {
        if let Some(subject) = definition(&s.text) {
            push(format!("What is {subject}?"), s.text.clone(), s.page, &mut cards);
        }
    }
    for s in material.top_sentences(MAX_CARDS) {
        if let Some(term) = material.key_term_in(&s.text) {
            if let Some(cloze) = blank_out(&s.text, term) {
                push(cloze, term.to_string(), s.page, &mut cards);
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
    }
}
