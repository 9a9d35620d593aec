//! `lectern-eval study-terms`: study material judged against the author's own key terms
//! (`benches/quality/study_terms.toml`): the back-of-book index of manuals, the keyword list
//! of papers.
//!
//! For every document: the quiz answers and flashcard fronts that name an author's term
//! (precision; strict = same words after a plural-s stem, loose = one contains the other),
//! the share of blanks (cloze and multiple-choice answers) that are one of the 5,000 most
//! common English words (wordfreq), items drawn from front or back matter (title, contents,
//! index and reference pages, boilerplate text, people's names) and flashcard fronts that
//! break a rule of form ([`malformed`]). The documents are processed once into `--data-dir`
//! and reused by later runs; the study material is generated anew each run.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;

use lectern_document::context::Context;
use lectern_document::generate::flashcards::Card;
use lectern_document::generate::quiz::{Kind, Question};
use lectern_document::generate::skip::{is_leader, is_page_number};
use lectern_document::generate::terms::IRREGULAR_PLURALS;
use lectern_document::model::workdir::Page;
use lectern_document::stages::{chunk, generate};
use lectern_document::text::wordfreq::WordFreq;

#[derive(Debug, Deserialize)]
struct TermSet {
    boilerplate: Vec<String>,
    document: Vec<TermDocument>,
}

#[derive(Debug, Deserialize)]
struct TermDocument {
    path: String,
    kind: String,
    #[serde(default)]
    index_pages: Option<[u32; 2]>,
    #[serde(default)]
    keywords: Vec<String>,
    front_pages: Vec<u32>,
    back_pages: Vec<u32>,
    people: Vec<String>,
}

impl TermDocument {
    fn in_matter(&self, page: u32) -> bool {
        let within = |r: &[u32]| r.len() == 2 && (r[0]..=r[1]).contains(&page);
        within(&self.front_pages) || within(&self.back_pages)
    }
}

/// Words compared: lower case, surrounding punctuation trimmed, an English plural made
/// singular ("frames", "boxes", "entries", "matrices").
fn stems(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if let Some((_, one)) = IRREGULAR_PLURALS.iter().find(|(many, _)| *many == w) {
                one.to_string()
            } else if ["sses", "xes", "zes", "ches", "shes"].iter().any(|e| w.ends_with(e)) {
                w[..w.len() - 2].to_string()
            } else if w.len() > 4 && w.ends_with("ies") {
                format!("{}y", &w[..w.len() - 3])
            } else if w.len() > 3 && w.ends_with('s') && !["ss", "is", "us"].iter().any(|e| w.ends_with(e)) {
                w[..w.len() - 1].to_string()
            } else {
                w
            }
        })
        .collect()
}

fn contains(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

enum Verdict {
    /// The same words as an author's term.
    Strict,
    /// One contains the other word for word.
    Loose,
    Neither,
}

/// How `text` matches the author's `terms` (stemmed).
fn verdict(terms: &[Vec<String>], text: &str) -> Verdict {
    let s = stems(text);
    if terms.contains(&s) {
        Verdict::Strict
    } else if terms.iter().any(|term| contains(term, &s) || contains(&s, term)) {
        Verdict::Loose
    } else {
        Verdict::Neither
    }
}

/// Index entries of pages: the words before each run of page numbers or dot leaders
/// ("binary format . . . 55", "errorbars, 65–67, 70"), without a group's heading letter;
/// one- and two-letter entries and running heads ("Appendix E: …") left out.
fn index_terms(pages: &[Page], range: [u32; 2]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for page in pages.iter().filter(|p| (range[0]..=range[1]).contains(&p.number)) {
        for w in page.words.iter().map(|w| w.text.as_str()) {
            if is_page_number(w) || is_leader(w) {
                // A letter heading the next group ("R Reading data from files").
                if current.len() > 1 && current[0].len() == 1 && current[0].chars().all(|c| c.is_ascii_uppercase()) {
                    current.remove(0);
                }
                if !current.is_empty() {
                    let entry = current.join(" ");
                    let entry = entry.trim_end_matches([',', '.']);
                    let s = stems(entry);
                    if !entry.contains(':') && s.len() <= 6 && entry.chars().filter(|c| c.is_alphabetic()).count() > 2 {
                        out.push(s);
                    }
                    current.clear();
                }
            } else {
                current.push(w);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The term a flashcard's front asks about, or `None` for cards about a section.
fn card_term(card: &Card) -> Option<String> {
    if card.kind == "key_points" {
        return None;
    }
    let front = card.front.trim_end_matches('?');
    for lead in ["What is meant by ", "What is ", "What are ", "What does "] {
        if let Some(rest) = front.strip_prefix(lead) {
            let rest = rest.trim_end_matches(" mean");
            let rest = ["a ", "an ", "the "].iter().find_map(|a| rest.strip_prefix(a)).unwrap_or(rest);
            return Some(rest.to_string());
        }
    }
    Some(front.to_string())
}

/// Words that cannot open the subject of a question or end a term.
const FUNCTION_WORDS: &[&str] = &[
    "if", "when", "while", "although", "because", "since", "as", "this", "that", "these", "those", "it", "you", "we",
    "they", "he", "she", "i", "in", "on", "at", "for", "to", "of", "and", "or", "but", "with", "by", "from", "so",
    "then", "there", "here", "not", "is", "are", "be",
];

/// Why a flashcard front is not English a student would accept, or `None`. A quoted
/// title (“…”) counts as one word.
pub fn malformed(front: &str) -> Option<&'static str> {
    let quoted = match (front.find('“'), front.rfind('”')) {
        (Some(a), Some(b)) if a < b => format!("{}TITLE{}", &front[..a], &front[b + '”'.len_utf8()..]),
        _ => front.to_string(),
    };
    let words: Vec<&str> = quoted.split_whitespace().collect();
    if words.is_empty() {
        return Some("empty");
    }
    let open = front.matches(['(', '[', '{']).count();
    let close = front.matches([')', ']', '}']).count();
    if open != close || front.matches('"').count() % 2 == 1 {
        return Some("unbalanced brackets or quotes");
    }
    if front.starts_with("Key points:") {
        return Some("a label, not a question or a term");
    }
    let lower = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    if front.ends_with('?') {
        let first = lower(words[0]);
        if !["what", "which", "who", "how", "why", "when", "where"].contains(&first.as_str()) {
            return Some("a question that does not start with a question word");
        }
        // "What is X?": X must open like a noun phrase.
        if words.len() < 3 {
            return Some("a question without a subject");
        }
        let subject: Vec<String> = words[2..].iter().map(|w| lower(w)).collect();
        let subject: Vec<&String> = subject.iter().skip_while(|w| ["a", "an", "the"].contains(&w.as_str())).collect();
        if subject.first().is_none_or(|w| FUNCTION_WORDS.contains(&w.as_str())) {
            return Some("the subject starts with a function word");
        }
        if subject.len() > 8 {
            return Some("the subject is longer than a noun phrase");
        }
        return None;
    }
    if front.ends_with(['.', '!', ':', ';', ',']) {
        return Some("a sentence, not a term or a question");
    }
    if words.len() > 5 {
        return Some("longer than a term");
    }
    let (first, last) = (lower(words[0]), lower(words[words.len() - 1]));
    if FUNCTION_WORDS.contains(&first.as_str()) || FUNCTION_WORDS.contains(&last.as_str()) {
        return Some("a term that starts or ends with a function word");
    }
    if !front.chars().any(char::is_alphabetic) {
        return Some("no letters");
    }
    None
}

#[derive(Default)]
struct Tally {
    answers: usize,
    strict: usize,
    loose: usize,
    blanks: usize,
    common_blanks: usize,
    items: usize,
    matter: usize,
    fronts: usize,
    malformed: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.answers += o.answers;
        self.strict += o.strict;
        self.loose += o.loose;
        self.blanks += o.blanks;
        self.common_blanks += o.common_blanks;
        self.items += o.items;
        self.matter += o.matter;
        self.fronts += o.fronts;
        self.malformed += o.malformed;
    }

    fn line(&self, name: &str) -> String {
        let pct = |a: usize, b: usize| {
            if b == 0 { "    –".to_string() } else { format!("{:5.1}", 100.0 * a as f64 / b as f64) }
        };
        format!(
            "{name:<34} {:>4} {:>7} {:>7} {:>5} {:>7} {:>5} {:>7} {:>5} {:>9}",
            self.answers,
            pct(self.strict, self.answers),
            pct(self.loose, self.answers),
            self.blanks,
            pct(self.common_blanks, self.blanks),
            self.items,
            pct(self.matter, self.items),
            self.fronts,
            self.malformed
        )
    }
}

/// Processes (or reuses) the documents of `set`, generates their study material and prints
/// the measures per document and in total; true when no item came from front or back matter
/// and no front is malformed.
pub async fn run(ctx: Arc<Context>, set_path: &Path, corpus: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(set_path).with_context(|| format!("read {}", set_path.display()))?;
    let set: TermSet = toml::from_str(&text).with_context(|| format!("parse {}", set_path.display()))?;
    let freq = ctx.word_frequencies().await?;
    let ids = processed(&ctx, &set, corpus).await?;
    println!(
        "{:<34} {:>4} {:>7} {:>7} {:>5} {:>7} {:>5} {:>7} {:>5} {:>9}",
        "document", "ans", "strict%", "loose%", "blank", "common%", "items", "matter%", "front", "malformed"
    );
    let mut total = Tally::default();
    let mut details = Vec::new();
    for doc in &set.document {
        let id = &ids[&doc.path];
        let (tally, lines) = measure(&ctx, &set.boilerplate, doc, id, &freq).await?;
        println!("{}", tally.line(&doc.path));
        total.add(&tally);
        details.push((doc.path.clone(), lines));
    }
    println!("{}", total.line("all"));
    for (path, lines) in details {
        println!("\n{path}");
        for l in lines {
            println!("  {l}");
        }
    }
    Ok(total.matter == 0 && total.malformed == 0)
}

/// Document ids by path: from `<data-dir>/study-terms.json` when an earlier run processed
/// them, else processed now (the pipeline without its generate stage).
async fn processed(ctx: &Arc<Context>, set: &TermSet, corpus: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let memo = ctx.settings.data_dir.join("study-terms.json");
    if let Ok(bytes) = std::fs::read(&memo) {
        let ids: BTreeMap<String, String> = serde_json::from_slice(&bytes)?;
        if set.document.iter().all(|d| ids.contains_key(&d.path)) {
            return Ok(ids);
        }
    }
    let docs: Vec<crate::EvalDocument> =
        set.document.iter().map(|d| crate::EvalDocument { key: d.path.clone(), path: d.path.clone() }).collect();
    let (_, ids) = crate::index_documents(ctx, &docs, corpus).await?;
    std::fs::write(&memo, serde_json::to_vec(&ids)?)?;
    Ok(ids)
}

async fn measure(
    ctx: &Context,
    boilerplate: &[String],
    doc: &TermDocument,
    id: &str,
    freq: &WordFreq,
) -> anyhow::Result<(Tally, Vec<String>)> {
    let pages = ctx.load_pages(id).await?;
    let chunks = chunk::load(ctx, id).await?;
    let figures = ctx.store.figures(id).await?;
    let material = generate::material(ctx, &chunks, &pages).await?;
    let inputs = generate::fetch_figures(ctx, generate::figure_inputs(&chunks, &figures, &pages, &material)).await?;
    let title = Path::new(&doc.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let set = generate::study_set(
        id,
        &title,
        &material,
        &inputs,
        &Default::default(),
        &ctx.pipeline.generate,
        chrono::Utc::now(),
    );

    let terms: Vec<Vec<String>> = match doc.index_pages {
        Some(range) => index_terms(&pages, range),
        None => doc.keywords.iter().map(|k| stems(k)).collect(),
    };
    let mut lines = vec![format!(
        "{} author terms ({}), e.g. {:?}",
        terms.len(),
        doc.kind,
        terms.iter().take(6).collect::<Vec<_>>()
    )];
    let marks: Vec<String> = material
        .terms
        .iter()
        .take(20)
        .map(|term| {
            let mark = match verdict(&terms, &term.text) {
                Verdict::Strict => "+",
                Verdict::Loose => "~",
                Verdict::Neither => "-",
            };
            format!("{}{mark}", term.text)
        })
        .collect();
    lines.push(format!(
        "key terms (first 20; + strict, ~ loose): {} of {} strict: {}",
        marks.iter().filter(|m| m.ends_with('+')).count(),
        marks.len(),
        marks.join(", ")
    ));
    let mut t = Tally::default();
    let judge = |text: &str, t: &mut Tally| -> &'static str {
        t.answers += 1;
        match verdict(&terms, text) {
            Verdict::Strict => {
                t.strict += 1;
                t.loose += 1;
                "strict"
            }
            Verdict::Loose => {
                t.loose += 1;
                "loose"
            }
            Verdict::Neither => "-",
        }
    };
    let people: Vec<String> = doc.people.iter().map(|p| p.to_lowercase()).collect();
    let from_matter = |page: u32, texts: &[&str]| -> Option<String> {
        if doc.in_matter(page) {
            return Some(format!("page {page} is front/back matter"));
        }
        for text in texts {
            let lower = text.to_lowercase();
            if let Some(b) = boilerplate.iter().find(|b| lower.contains(b.as_str())) {
                return Some(format!("boilerplate {b:?}"));
            }
            let words: HashSet<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
            if let Some(p) = people.iter().find(|p| words.contains(p.as_str())) {
                return Some(format!("names {p}"));
            }
        }
        None
    };
    for q in &set.quiz.questions {
        let verdict = judge(&q.term, &mut t);
        t.items += 1;
        let mut notes = Vec::new();
        if matches!(q.kind, Kind::Cloze | Kind::MultipleChoice) {
            t.blanks += 1;
            if is_common(freq, &q.answer) {
                t.common_blanks += 1;
                notes.push("common word".to_string());
            }
        }
        if let Some(why) = from_matter(q.page, &[&q.source, &q.answer]) {
            t.matter += 1;
            notes.push(why);
        }
        lines.push(format!(
            "Q{} {:?} p{} [{verdict}] {} → {} {}",
            q.number,
            q.kind,
            q.page,
            short(&q.prompt),
            q.answer,
            notes.join("; ")
        ));
        lines.extend(choices(q));
    }
    for card in &set.cards {
        t.items += 1;
        t.fronts += 1;
        let mut notes = Vec::new();
        let verdict = match card_term(card) {
            Some(term) => judge(&term, &mut t),
            None => "section",
        };
        if let Some(why) = malformed(&card.front) {
            t.malformed += 1;
            notes.push(format!("malformed: {why}"));
        }
        if let Some(why) = from_matter(card.page, &[&card.front, &card.back]) {
            t.matter += 1;
            notes.push(why);
        }
        lines.push(format!(
            "card {} p{} [{verdict}] {} | {} {}",
            card.kind,
            card.page,
            card.front,
            short(&card.back),
            notes.join("; ")
        ));
    }
    if !set.quiz.skipped.is_empty() {
        lines.push(format!("skipped: {}", set.quiz.skipped.join("; ")));
    }
    Ok((t, lines))
}

fn choices(q: &Question) -> Option<String> {
    (!q.choices.is_empty()).then(|| format!("    choices: {}", q.choices.join(" | ")))
}

/// A one-word answer among the 5,000 most common English words.
fn is_common(freq: &WordFreq, answer: &str) -> bool {
    let words: Vec<String> = answer.split_whitespace().map(|w| w.to_lowercase()).collect();
    words.len() == 1 && freq.is_top(&words[0], 5000)
}

fn short(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() > 30 { format!("{} …", words[..30].join(" ")) } else { words.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_are_judged_by_form() {
        assert_eq!(malformed("What is If you?"), Some("the subject starts with a function word"));
        assert_eq!(malformed("Key points: The Name of the Title Is Hope"), Some("a label, not a question or a term"));
        assert_eq!(malformed("What is a data frame?"), None);
        assert_eq!(malformed("data frame"), None);
        assert_eq!(
            malformed("What does the section “2.7 Index vectors; selecting and modifying subsets” cover?"),
            None
        );
        assert_eq!(malformed("of the"), Some("a term that starts or ends with a function word"));
        assert_eq!(stems("Data Frames"), ["data", "frame"]);
        assert_eq!(stems("boxes entries analysis"), ["box", "entry", "analysis"]);
        assert!(contains(&stems("binary format"), &stems("format")));
    }
}
