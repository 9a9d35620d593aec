//! Study material over several documents (a course): the quiz's questions and the deck's
//! cards shared out among the documents in proportion to their sentences, each item
//! citing its document; figure cards from captioned figures; a seed makes the order of
//! questions and choices reproducible. The cheat sheet over several documents is
//! [`super::cheatsheet::plan_course`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::cheatsheet::{FigureInput, Part};
use super::flashcards::{self, Card};
use super::quiz::{self, Kind, Quiz};
use super::words::normalize_text;
use crate::schedule::sm2;

/// One document of the course.
pub struct Document<'a> {
    pub id: &'a str,
    pub part: Part<'a>,
}

/// Splits `n` items over documents of `sizes` sentences: in proportion (largest
/// remainder), then one each for documents left with none, taken from the biggest share,
/// while `n` allows.
pub fn shares(sizes: &[usize], n: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return vec![0; sizes.len()];
    }
    let exact: Vec<f64> = sizes.iter().map(|&s| n as f64 * s as f64 / total as f64).collect();
    let mut out: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder
        .sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let left = n - out.iter().sum::<usize>();
    for &i in by_remainder.iter().take(left) {
        out[i] += 1;
    }
    let mut empty: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] > 0 && out[i] == 0).collect();
    empty.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    for i in empty {
        let Some(richest) = (0..out.len()).filter(|&j| out[j] >= 2).max_by_key(|&j| (out[j], std::cmp::Reverse(j)))
        else {
            break;
        };
        out[richest] -= 1;
        out[i] = 1;
    }
    out
}

/// Each document's first items up to its share; what a document cannot give (too little
/// text) is made up from the others' next items, in turn, so `n` are dealt when they exist.
fn deal<T>(mut lists: Vec<Vec<T>>, shares: &[usize], n: usize) -> Vec<Vec<T>> {
    let mut taken: Vec<usize> = lists.iter().zip(shares).map(|(l, &s)| s.min(l.len())).collect();
    let mut missing = n.saturating_sub(taken.iter().sum());
    while missing > 0 {
        let before = missing;
        for (i, list) in lists.iter().enumerate() {
            if missing > 0 && taken[i] < list.len() {
                taken[i] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break;
        }
    }
    for (list, t) in lists.iter_mut().zip(taken) {
        list.truncate(t);
    }
    lists
}

fn difficulty(kind: Kind) -> &'static str {
    match kind {
        Kind::TrueFalse => "easy",
        Kind::MultipleChoice => "medium",
        Kind::Cloze => "hard",
    }
}

/// Up to `n` questions over the documents, each document's share (see [`deal`]) written
/// from its own material (so distractors are its own terms), each citing document and page. The
/// questions are dealt in an order drawn from `seed`, multiple-choice answers placed by it
/// too: the same documents and seed give the same quiz.
pub fn quiz(title: &str, documents: &[Document<'_>], n: usize, seed: u64) -> Quiz {
    let sizes: Vec<usize> = documents.iter().map(|d| d.part.material.sentences.len()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut skipped = Vec::new();
    let mut lists = Vec::new();
    for d in documents {
        let part = quiz::questions(d.part.name, d.part.material, n);
        skipped.extend(part.skipped.into_iter().map(|s| format!("{}: {s}", d.part.name)));
        lists.push(part.questions);
    }
    let mut questions = Vec::new();
    for (d, list) in documents.iter().zip(deal(lists, &shares(&sizes, n), n)) {
        for mut q in list {
            q.document_id = Some(d.id.to_string());
            q.document = Some(d.part.name.to_string());
            q.difficulty = Some(difficulty(q.kind).to_string());
            questions.push(q);
        }
    }
    questions.shuffle(&mut rng);
    for (i, q) in questions.iter_mut().enumerate() {
        q.number = i + 1;
        q.choices.shuffle(&mut rng);
    }
    Quiz { title: title.to_string(), questions, skipped }
}

/// Up to `n` cards over the documents: each document's share of its best cards, then a
/// card per captioned figure while room is left; no front or back twice across the
/// course. Ids are `<study id>-c001`, …; figure images are named `<document id>-<file>`.
pub fn cards(study_id: &str, documents: &[Document<'_>], n: usize, now: DateTime<Utc>) -> Vec<Card> {
    let sizes: Vec<usize> = documents.iter().map(|d| d.part.material.sentences.len()).collect();
    let figures: Vec<(&Document<'_>, &FigureInput)> = documents
        .iter()
        .flat_map(|d| d.part.figures.iter().filter(|f| f.caption.is_some()).take(2).map(move |f| (d, f)))
        .collect();
    // Figures get at most a fifth of the deck.
    let figure_cards = figures.len().min(n / 5);
    let mut out: Vec<Card> = Vec::new();
    let mut fronts = HashSet::new();
    let mut backs = HashSet::new();
    let mut keep = |out: &mut Vec<Card>, card: Card| {
        if fronts.insert(normalize_text(&card.front)) && backs.insert(normalize_text(&card.back)) {
            out.push(card);
        }
    };
    let wanted = n - figure_cards;
    let lists = documents.iter().map(|d| flashcards::cards(d.id, d.part.material, wanted, now)).collect();
    for (d, list) in documents.iter().zip(deal(lists, &shares(&sizes, wanted), wanted)) {
        for mut card in list {
            card.document = Some(d.part.name.to_string());
            keep(&mut out, card);
        }
    }
    for (d, f) in figures.into_iter().take(figure_cards) {
        let file = std::path::Path::new(&f.path).file_name().map(|n| n.to_string_lossy().into_owned());
        let (Some(file), Some(caption)) = (file, &f.caption) else { continue };
        let card = Card {
            id: String::new(),
            kind: "figure".into(),
            front: format!("What does the figure on page {} of {} show?", f.page, d.part.name),
            back: caption.clone(),
            page: f.page,
            sm2: sm2::new_card(now),
            document: Some(d.part.name.to_string()),
            image: Some(format!("{}-{file}", d.id)),
        };
        keep(&mut out, card);
    }
    for (i, c) in out.iter_mut().enumerate() {
        c.id = format!("{study_id}-c{:03}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{deal, shares};

    #[test]
    fn a_short_document_leaves_its_share_to_the_others() {
        let lists = vec![vec![1, 2, 3, 4, 5], vec![10], vec![20, 21, 22, 23]];
        assert_eq!(deal(lists.clone(), &[2, 2, 2], 6), [vec![1, 2, 3], vec![10], vec![20, 21]]);
        assert_eq!(deal(lists.clone(), &[1, 1, 1], 3), [vec![1], vec![10], vec![20]]);
        assert_eq!(deal(lists, &[4, 4, 4], 12), [vec![1, 2, 3, 4, 5], vec![10], vec![20, 21, 22, 23]], "all there is");
    }

    #[test]
    fn shares_follow_size_and_give_everyone_one() {
        assert_eq!(shares(&[100, 100, 100], 9), [3, 3, 3]);
        assert_eq!(shares(&[800, 100, 100], 10), [8, 1, 1]);
        assert_eq!(shares(&[1000, 10, 10], 10), [8, 1, 1], "small documents still get one");
        assert_eq!(shares(&[5, 0, 5], 4), [2, 0, 2]);
        assert_eq!(shares(&[3, 2, 1], 2), [1, 1, 0], "fewer items than documents: biggest first");
        assert_eq!(shares(&[], 5), Vec::<usize>::new());
        assert_eq!(shares(&[7, 3], 0), [0, 0]);
        for n in 0..30 {
            assert_eq!(shares(&[13, 7, 29, 1], n).iter().sum::<usize>(), n);
        }
    }
}
