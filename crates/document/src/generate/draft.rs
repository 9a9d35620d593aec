//! LLM drafts under the extractive items' rules. The LLM sees the most important passages
//! ([`passages`]); each question or card it proposes must cite one of them and pass the same
//! checks as an extractive item, or it is dropped and the extractive item keeps its place:
//! the answer is a key term (or a phrase of two words or more) written in the cited passage;
//! the prompt with the answer filled in is a sentence of the passage, word for word; the answer is not given
//! away elsewhere in the prompt; multiple choice has four distinct choices, the answer once,
//! and distractors of the same shape that are not forms of the answer; a card's back is
//! taken from the passage. True/false is left to the extractive path, whose check compares
//! the statement with its source sentence.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::flashcards::Card;
use super::llm::{DraftQuestion, Drafts, Passage};
use super::quiz::{Kind, Question, Quiz, gives_away};
use super::rank::descending;
use super::text::{Material, split_sentences};
use super::words::{normalize_text, words};
use crate::schedule::sm2;

/// The `n` most important sentences, each with the sentences beside it in its section that
/// are on the same page, in reading order of importance.
pub fn passages(material: &Material, n: usize) -> Vec<Passage> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    for i in descending(&material.importances()) {
        if out.len() == n {
            break;
        }
        let s = &material.sentences[i];
        let section = &material.sections[s.section].sentences;
        let at = section.iter().position(|&k| k == i).unwrap_or(0);
        let around: Vec<usize> = section[at.saturating_sub(1)..(at + 2).min(section.len())]
            .iter()
            .copied()
            .filter(|&k| material.sentences[k].page == s.page && material.sentences[k].within_page)
            .collect();
        if around.iter().any(|k| used.contains(k)) {
            continue;
        }
        used.extend(around.iter().copied());
        let text = around.iter().map(|&k| material.sentences[k].text.as_str()).collect::<Vec<_>>().join(" ");
        out.push(Passage { page: s.page, text });
    }
    out
}

/// An item's words, for telling repeats apart.
fn key(s: &str) -> String {
    words(s).join(" ")
}

/// Share of `text`'s words found in `passage`, each passage word used once.
fn supported(text: &str, passage: &[String]) -> f32 {
    let ws = words(text);
    let mut left: std::collections::HashMap<&String, usize> = std::collections::HashMap::new();
    for w in passage {
        *left.entry(w).or_default() += 1;
    }
    let mut found = 0;
    for w in &ws {
        if let Some(n) = left.get_mut(w).filter(|n| **n > 0) {
            *n -= 1;
            found += 1;
        }
    }
    found as f32 / ws.len().max(1) as f32
}

/// A drafted question as a quiz question, or why it is refused.
fn accept_question(
    d: &DraftQuestion,
    passages: &[Passage],
    material: &Material,
    quiz: &Quiz,
) -> Result<Question, &'static str> {
    let passage = d.passage.checked_sub(1).and_then(|i| passages.get(i)).ok_or("cites no passage given")?;
    let kind = match d.kind.as_str() {
        "multiple_choice" => Kind::MultipleChoice,
        "cloze" => Kind::Cloze,
        _ => return Err("not a multiple-choice or cloze question"),
    };
    let answer = words(&d.answer);
    let is_term = material.terms.iter().any(|t| t.words == answer);
    if answer.is_empty() || !(is_term || answer.len() >= 2) {
        return Err("the answer is not a key term");
    }
    if d.prompt.matches("_____").count() != 1 {
        return Err("the prompt has no single blank");
    }
    let filled = d.prompt.replace("_____", d.answer.trim());
    let source = split_sentences(&passage.text)
        .into_iter()
        .find(|s| words(s) == words(&filled))
        .ok_or("the cited passage does not say it")?;
    if gives_away(&filled, &answer) {
        return Err("the prompt gives the answer away");
    }
    let taken = quiz.questions.iter().any(|q| key(&q.prompt) == key(&d.prompt) || key(&q.source) == key(&source));
    if taken || quiz.questions.iter().any(|q| words(&q.term) == answer) {
        return Err("duplicates an earlier question");
    }
    let written = d.answer.trim().to_string();
    if kind == Kind::MultipleChoice {
        let distinct: HashSet<String> = d.choices.iter().map(|c| key(c)).collect();
        let answers = d.choices.iter().filter(|c| key(c) == key(&written)).count();
        let shaped = d.choices.iter().all(|c| words(c).len() == answer.len());
        let forms = d
            .choices
            .iter()
            .filter(|c| key(c) != key(&written))
            .any(|c| gives_away(&format!("{c} {written}"), &answer));
        if d.choices.len() != 4 || distinct.len() != 4 || answers != 1 || !shaped || forms {
            return Err("the choices are not four distinct terms of one shape with the answer once");
        }
    }
    let choices = if kind == Kind::MultipleChoice {
        d.choices.iter().map(|c| if key(c) == key(&written) { written.clone() } else { c.trim().to_string() }).collect()
    } else {
        Vec::new()
    };
    Ok(Question {
        number: 0,
        kind,
        prompt: d.prompt.trim().to_string(),
        choices,
        answer: written.clone(),
        term: written,
        page: passage.page,
        source,
        document_id: None,
        document: None,
        difficulty: None,
    })
}

/// The quiz with the drafted questions that pass first and the extractive ones after, up to
/// `n`, numbered again; the extractive questions that would repeat a drafted one are dropped.
/// Returns how many drafts were used and why the others were not.
pub fn merge_questions(
    quiz: Quiz,
    drafts: &Drafts,
    passages: &[Passage],
    material: &Material,
    n: usize,
) -> (Quiz, usize, Vec<String>) {
    let mut merged = Quiz { questions: Vec::new(), ..quiz.clone() };
    let mut refused = Vec::new();
    for d in &drafts.questions {
        match accept_question(d, passages, material, &merged) {
            Ok(q) if merged.questions.len() < n => merged.questions.push(q),
            Ok(_) => {}
            Err(why) => refused.push(format!("question {:?}: {why}", d.prompt)),
        }
    }
    let drafted = merged.questions.len();
    for q in quiz.questions {
        let repeats = merged.questions.iter().any(|m| {
            key(&m.source) == key(&q.source) || key(&m.prompt) == key(&q.prompt) || words(&m.term) == words(&q.term)
        });
        if merged.questions.len() < n && !repeats {
            merged.questions.push(q);
        }
    }
    for (i, q) in merged.questions.iter_mut().enumerate() {
        q.number = i + 1;
    }
    (merged, drafted, refused)
}

/// The deck with the drafted cards that pass first (front a term or a question of at most
/// 15 words, at least 80 % of the back's words found in the passage, no repeated front or back), then the
/// extractive cards, up to `max`; ids numbered again.
pub fn merge_cards(
    cards: Vec<Card>,
    drafts: &Drafts,
    passages: &[Passage],
    document_id: &str,
    max: usize,
    now: DateTime<Utc>,
) -> (Vec<Card>, usize, Vec<String>) {
    let mut out: Vec<Card> = Vec::new();
    let mut refused = Vec::new();
    let mut fronts = HashSet::new();
    let mut backs = HashSet::new();
    for d in &drafts.cards {
        let Some(passage) = d.passage.checked_sub(1).and_then(|i| passages.get(i)) else {
            refused.push(format!("card {:?}: cites no passage given", d.front));
            continue;
        };
        let n = d.front.split_whitespace().count();
        let question = d.front.trim_end().ends_with('?');
        let balanced = d.front.matches('(').count() == d.front.matches(')').count();
        let well_formed = (1..=15).contains(&n) && balanced && (question || !d.front.trim_end().ends_with(['.', ':']));
        if !well_formed {
            refused.push(format!("card {:?}: the front is not a term or a question", d.front));
        } else if supported(&d.back, &words(&passage.text)) < 0.8 {
            refused.push(format!("card {:?}: the cited passage does not say it", d.front));
        } else if out.len() < max && fronts.insert(normalize_text(&d.front)) && backs.insert(normalize_text(&d.back)) {
            out.push(Card {
                id: String::new(),
                kind: if question { "definition" } else { "term" }.into(),
                front: d.front.trim().to_string(),
                back: d.back.trim().to_string(),
                page: passage.page,
                sm2: sm2::new_card(now),
                document: None,
                image: None,
            });
        }
    }
    let drafted = out.len();
    for c in cards {
        if out.len() < max && fronts.insert(normalize_text(&c.front)) && backs.insert(normalize_text(&c.back)) {
            out.push(c);
        }
    }
    for (i, c) in out.iter_mut().enumerate() {
        c.id = format!("{document_id}-c{:03}", i + 1);
    }
    (out, drafted, refused)
}
