//! Study material over several documents (a course): the quiz's questions and the deck's
//! cards shared out among the documents in proportion to their sentences, each item
//! citing its document; figure cards from captioned figures; a seed makes the order of
//! questions and choices reproducible. The cheat sheet over several documents is
//! [`super::cheatsheet::plan_course`], with a part per document or, given topics, a part
//! per topic made by [`by_topic`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::cheatsheet::Part;
use super::flashcards::{self, Card};
use super::quiz::{self, Kind, Quiz};
use super::rank::cosine;
use super::text::{Material, Section};
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

/// Each document's first items up to its share, skipping those `keep` refuses (a card or
/// question another document already gave); what a document cannot give (too little
/// text) is made up from the others' next items, in turn, so `n` are dealt when they exist.
fn deal<T>(lists: Vec<Vec<T>>, shares: &[usize], n: usize, mut keep: impl FnMut(&T) -> bool) -> Vec<Vec<T>> {
    let mut rest: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out: Vec<Vec<T>> = rest.iter().map(|_| Vec::new()).collect();
    let mut take = |i: usize, out: &mut Vec<Vec<T>>| -> bool {
        let next = rest[i].by_ref().find(|item| keep(item));
        next.map(|item| out[i].push(item)).is_some()
    };
    let mut dealt = 0;
    for (i, &share) in shares.iter().enumerate() {
        while out[i].len() < share && dealt < n && take(i, &mut out) {
            dealt += 1;
        }
    }
    while dealt < n {
        let before = dealt;
        for i in 0..out.len() {
            if dealt < n && take(i, &mut out) {
                dealt += 1;
            }
        }
        if dealt == before {
            break;
        }
    }
    out
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
    let mut seen = HashSet::new();
    let new = |q: &quiz::Question| seen.insert(normalize_text(&q.source));
    let mut questions = Vec::new();
    for (d, list) in documents.iter().zip(deal(lists, &shares(&sizes, n), n, new)) {
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

/// A figure card's image name in a deck's media: `<document id>-<figure file>`, unique
/// across documents.
pub fn image_name(document_id: &str, figure_path: &str) -> Option<String> {
    let file = std::path::Path::new(figure_path).file_name()?;
    Some(format!("{document_id}-{}", file.to_string_lossy()))
}

/// Up to `n` cards over the documents: a card per figure with a caption (two per document, at
/// most a fifth of the deck), the rest each document's share of its best cards (see
/// [`deal`]), figure cards last; no front or back twice across the course. Ids are
/// `<study id>-c001`, …; figure images are named `<document id>-<file>`.
pub fn cards(study_id: &str, documents: &[Document<'_>], n: usize, now: DateTime<Utc>) -> Vec<Card> {
    let sizes: Vec<usize> = documents.iter().map(|d| d.part.material.sentences.len()).collect();
    let mut fronts = HashSet::new();
    let mut backs = HashSet::new();
    let mut new = |c: &Card| fronts.insert(normalize_text(&c.front)) && backs.insert(normalize_text(&c.back));
    // Figures with a real caption ("Figure 2 – …", not the text around them) first, two
    // per document, at most a fifth of the deck.
    let mut figures = Vec::new();
    for d in documents {
        let captioned = d.part.figures.iter().filter(|f| f.caption.as_deref().is_some_and(quiz::is_caption));
        for f in captioned.take(2) {
            let (Some(image), Some(caption)) = (image_name(d.id, &f.path), &f.caption) else { continue };
            let card = Card {
                id: String::new(),
                kind: "figure".into(),
                front: format!("What does the figure on page {} of {} show?", f.page, d.part.name),
                back: caption.clone(),
                page: f.page,
                sm2: sm2::new_card(now),
                document: Some(d.part.name.to_string()),
                image: Some(image),
            };
            if figures.len() < n / 5 && new(&card) {
                figures.push(card);
            }
        }
    }
    let wanted = n - figures.len();
    let lists = documents.iter().map(|d| flashcards::cards(d.id, d.part.material, wanted, now)).collect();
    let mut out: Vec<Card> = Vec::new();
    for (d, list) in documents.iter().zip(deal(lists, &shares(&sizes, wanted), wanted, new)) {
        out.extend(list.into_iter().map(|c| Card { document: Some(d.part.name.to_string()), ..c }));
    }
    out.extend(figures);
    for (i, c) in out.iter_mut().enumerate() {
        c.id = format!("{study_id}-c{:03}", i + 1);
    }
    out
}

/// How close (cosine) a sentence must be to its nearest topic to be filed under it.
pub const TOPIC_MIN_SIMILARITY: f32 = 0.25;

/// One material per topic: each sentence of each document filed under the topic its
/// embedding is nearest to (when at least [`TOPIC_MIN_SIMILARITY`]; others are left out),
/// in sections named "<document> · <section>"; key terms those of the documents that
/// occur in the topic's sentences, weighed against their own document's best term.
pub fn by_topic(topic_vectors: &[Vec<f32>], documents: &[Document<'_>]) -> Vec<Material> {
    let mut out: Vec<Material> = topic_vectors.iter().map(|_| Material::default()).collect();
    for d in documents {
        let m = d.part.material;
        if m.sentence_vectors.len() != m.sentences.len() {
            continue;
        }
        // (topic, document section) → section index in that topic's material.
        let mut sections: Vec<Vec<Option<usize>>> = vec![vec![None; m.sections.len()]; topic_vectors.len()];
        let mut used_terms: Vec<Vec<bool>> = vec![vec![false; m.terms.len()]; topic_vectors.len()];
        for (i, s) in m.sentences.iter().enumerate() {
            let nearest = topic_vectors
                .iter()
                .map(|t| cosine(&m.sentence_vectors[i], t))
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|&(_, sim)| sim >= TOPIC_MIN_SIMILARITY);
            let Some((t, _)) = nearest else { continue };
            let topic = &mut out[t];
            let section = *sections[t][s.section].get_or_insert_with(|| {
                let title = m.sections[s.section].title().unwrap_or("Overview");
                topic.sections.push(Section {
                    path: vec![format!("{} · {title}", d.part.name)],
                    page: m.sections[s.section].page,
                    sentences: Vec::new(),
                });
                topic.sections.len() - 1
            });
            topic.sections[section].sentences.push(topic.sentences.len());
            topic.sentences.push(super::text::Sentence { section, ..s.clone() });
            topic.sentence_vectors.push(m.sentence_vectors[i].clone());
            if let Some(k) = m.key_term_in(&s.text, |_| false) {
                used_terms[t][k] = true;
            }
        }
        let best = m.terms.first().map_or(1.0, |t| t.weight).max(f64::MIN_POSITIVE);
        for (t, used) in used_terms.iter().enumerate() {
            for (k, term) in m.terms.iter().enumerate().filter(|&(k, _)| used[k]) {
                out[t].terms.push(super::terms::Term { weight: term.weight / best, ..term.clone() });
                if let Some(v) = m.term_vectors.get(k) {
                    out[t].term_vectors.push(v.clone());
                }
            }
        }
    }
    for m in &mut out {
        let mut order: Vec<usize> = (0..m.terms.len()).collect();
        order.sort_by(|&a, &b| m.terms[b].weight.total_cmp(&m.terms[a].weight));
        let mut seen = HashSet::new();
        order.retain(|&k| seen.insert(m.terms[k].words.clone()));
        let vectors =
            (m.term_vectors.len() == m.terms.len()).then(|| order.iter().map(|&k| m.term_vectors[k].clone()).collect());
        m.terms = order.iter().map(|&k| m.terms[k].clone()).collect();
        m.term_vectors = vectors.unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{deal, shares};

    #[test]
    fn a_short_document_leaves_its_share_to_the_others() {
        let lists = vec![vec![1, 2, 3, 4, 5], vec![10], vec![20, 21, 22, 23]];
        let all = |_: &i32| true;
        assert_eq!(deal(lists.clone(), &[2, 2, 2], 6, all), [vec![1, 2, 3], vec![10], vec![20, 21]]);
        assert_eq!(deal(lists.clone(), &[1, 1, 1], 3, all), [vec![1], vec![10], vec![20]]);
        let everything = deal(lists.clone(), &[4, 4, 4], 12, all);
        assert_eq!(everything, [vec![1, 2, 3, 4, 5], vec![10], vec![20, 21, 22, 23]], "all there is");
        // A refused item (a repeat) does not count: the next one takes its place.
        let no_evens = |x: &i32| x % 2 == 1;
        assert_eq!(deal(lists, &[2, 2, 2], 6, no_evens), [vec![1, 3, 5], vec![], vec![21, 23]]);
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
