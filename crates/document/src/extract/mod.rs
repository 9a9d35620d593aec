//! Fields out of business documents: a document whose type has a schema
//! (`jobs/schemas/*.toml`, [`schema`]) gets each field found by geometry on its pages
//! ([`locate`]: a label, then the value right of it or below it), read as its type
//! ([`parse`]), checked against the schema's rules, and scored; its line items are read
//! from the table under their header ([`items`]) and must add up to the subtotal. Values
//! that fail a check are kept and flagged, never dropped. Fields left empty or invalid may
//! be read by an LLM ([`wanted`], [`read_supplied`], [`extract_with`]): its answers count
//! only when the words stand on the page it names and parse as the field's type.

pub mod items;
pub mod locate;
pub mod parse;
pub mod schema;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::workdir::{BBox, Page, TextSource};
use items::Item;
use locate::{Grid, LabelHit};
use parse::DateOrder;
use schema::{FieldSpec, Kind, Position, Rule};

pub use schema::{Schema, Schemas};

/// A field's value and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Field {
    /// The typed value: a string (text, id, ISO date, IBAN…), a number, or for amounts
    /// `{amount, currency}`.
    pub value: Value,
    /// The words it was read from.
    pub text: String,
    pub page: u32,
    pub bbox: BBox,
    pub source: TextSource,
    /// The label it was found by (none for the currency).
    pub label: Option<String>,
    /// 0–1: how well the label matched, how near the value was, how sure the reading is
    /// (OCR confidence), halved by each failed check.
    pub confidence: f32,
    /// What is wrong with it (a failed rule, bad check digits); empty when it checks out.
    pub problems: Vec<String>,
    /// Whether the page's geometry or the configured LLM found it.
    #[serde(default)]
    pub found_by: FoundBy,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    #[default]
    Geometry,
    Llm,
}

/// The result of a schema's rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleCheck {
    pub rule: String,
    /// `None`: a field it needs is missing.
    pub ok: Option<bool>,
    pub detail: String,
}

/// Everything extracted from one document (`fields.json`; `jobs/fields.schema.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Extraction {
    pub schema: String,
    pub doc_type: String,
    pub fields: BTreeMap<String, Field>,
    /// Fields of the schema that were not found, required ones first.
    pub missing: Vec<String>,
    pub rules: Vec<RuleCheck>,
    /// The rows of its line-item table, top to bottom.
    #[serde(default)]
    pub items: Vec<Item>,
    /// A required field is missing, a value failed a check, or one's confidence is low.
    pub review_needed: bool,
    /// Why review is needed, one reason per line.
    pub review: Vec<String>,
}

pub const MEDIA_TYPE: &str = "application/json";
pub const FILE_NAME: &str = "fields.json";

/// The extraction of the candidate schema that finds the most: required fields found
/// first, then the sum of the fields' confidences (a failed check halves a field's).
pub fn extract_best(schemas: &[&Schema], pages: &[Page]) -> Option<Extraction> {
    let grids: Vec<Grid> = pages.iter().map(Grid::new).collect();
    let order = date_order(pages);
    let score = |x: &Extraction, schema: &Schema| {
        let required = schema.fields.iter().filter(|f| f.required && x.fields.contains_key(&f.name)).count();
        (required, x.fields.values().map(|f| f.confidence).sum::<f32>())
    };
    let mut best: Option<(Extraction, (usize, f32))> = None;
    for schema in schemas {
        let x = extract(schema, pages, &grids, order, BTreeMap::new());
        let s = score(&x, schema);
        if best.as_ref().is_none_or(|(_, b)| s.0 > b.0 || (s.0 == b.0 && s.1 > b.1)) {
            best = Some((x, s));
        }
    }
    best.map(|(x, _)| x)
}

/// How the document writes its dates, read from all its pages' words.
fn date_order(pages: &[Page]) -> DateOrder {
    DateOrder::of_words(pages.iter().flat_map(|p| p.words.iter().map(|w| w.text.as_str())))
}

/// Fields of `schema` the geometric pass left out of `x` or found invalid (the document's
/// currency aside: it follows from the amounts).
pub fn wanted<'a>(schema: &'a Schema, x: &Extraction) -> Vec<&'a FieldSpec> {
    let invalid = |f: &FieldSpec| x.fields.get(&f.name).is_none_or(|found| !found.problems.is_empty());
    schema.fields.iter().filter(|f| f.kind != Kind::Currency && invalid(f)).collect()
}

/// A value an LLM read for a field: its text as printed and the page it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Supplied {
    pub field: String,
    pub text: String,
    pub page: u32,
}

/// Confidence of a value an LLM read, before its reading and checks: it comes with no label.
const SUPPLIED_CONFIDENCE: f32 = 0.6;

/// The LLM's values that hold up as fields of `schema`: the words stand in a row on the
/// page named, and parse as the field's type without a problem. The rest are refused, each
/// with its reason.
pub fn read_supplied(schema: &Schema, pages: &[Page], supplied: &[Supplied]) -> (BTreeMap<String, Field>, Vec<String>) {
    let order = date_order(pages);
    let mut fields = BTreeMap::new();
    let mut refused = Vec::new();
    for s in supplied {
        match read_one(schema, pages, s, order) {
            Ok(field) => {
                fields.insert(s.field.clone(), field);
            }
            Err(why) => refused.push(format!("{} = {:?} (page {}): {why}", s.field, s.text, s.page)),
        }
    }
    (fields, refused)
}

fn read_one(schema: &Schema, pages: &[Page], s: &Supplied, order: DateOrder) -> Result<Field, String> {
    let spec = schema.field(&s.field).ok_or("not a field of the schema")?;
    let page = pages.iter().find(|p| p.number == s.page).ok_or("no such page")?;
    let key = |t: &str| schema::fold(t.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '"')));
    let sought: Vec<String> = s.text.split_whitespace().map(key).collect();
    if sought.is_empty() {
        return Err("empty".into());
    }
    let start = (0..page.words.len())
        .find(|&i| {
            page.words.len() - i >= sought.len()
                && sought.iter().zip(&page.words[i..]).all(|(w, word)| *w == key(&word.text))
        })
        .ok_or("not on that page")?;
    let run: Vec<usize> = (start..start + sought.len()).collect();
    let texts: Vec<&str> = run.iter().map(|&i| page.words[i].text.as_str()).collect();
    let parsed = parse::find(spec.kind, &texts, order, &spec.values).ok_or("not a value of the field's type")?;
    if let Some(problem) = parsed.problems.first() {
        return Err(problem.clone());
    }
    let words = &run[parsed.span.clone()];
    Ok(Field {
        value: parsed.value,
        text: texts[parsed.span].join(" "),
        page: page.number,
        bbox: locate::union(words.iter().map(|w| page.words[*w].bbox)),
        source: page.source,
        label: None,
        confidence: SUPPLIED_CONFIDENCE * parsed.strength * locate::ocr_confidence(page, words),
        problems: vec![],
        found_by: FoundBy::Llm,
    })
}

/// The extraction of `schema` with `supplied` fields (from [`read_supplied`]) in place of
/// what geometry found for them, checked by the rules like any other.
pub fn extract_with(schema: &Schema, pages: &[Page], supplied: BTreeMap<String, Field>) -> Extraction {
    let grids: Vec<Grid> = pages.iter().map(Grid::new).collect();
    let order = date_order(pages);
    extract(schema, pages, &grids, order, supplied)
}

/// The fields of `schema` found on `pages` (laid out as `grids`, their dates read in
/// `order`), those `supplied` taking the place of what was found.
fn extract(
    schema: &Schema,
    pages: &[Page],
    grids: &[Grid],
    order: DateOrder,
    supplied: BTreeMap<String, Field>,
) -> Extraction {
    // Every label of every field where it occurs, per page: each field looks for its own
    // among them, and a short label inside a longer one ("Date" in "Due Date", "Total" in
    // "Total excl. VAT") is passed over.
    let all_labels: Vec<Vec<Label>> = grids
        .iter()
        .map(|grid| {
            let labels = schema.fields.iter().flat_map(|f| &f.labels);
            labels
                .flat_map(|l| {
                    grid.find_label(clean(l)).into_iter().map(move |hit| Label { text: l, len: label_len(l), hit })
                })
                .collect()
        })
        .collect();
    let mut fields = BTreeMap::new();
    for spec in schema.fields.iter().filter(|f| f.kind != Kind::Currency) {
        if let Some(field) = find_field(spec, grids, &all_labels, order) {
            fields.insert(spec.name.clone(), field);
        }
    }
    fields.extend(supplied);
    for spec in schema.fields.iter().filter(|f| f.kind == Kind::Currency) {
        if let Some(field) = currency(pages, &fields) {
            fields.insert(spec.name.clone(), field);
        }
    }
    // Amounts without a mark of their own are in the document's currency.
    if let Some(code) = fields.values().find(|f| f.label.is_none()).map(|f| f.value.clone()) {
        for field in fields.values_mut() {
            if let Some(obj) = field.value.as_object_mut()
                && obj.get("currency").is_some_and(Value::is_null)
            {
                obj.insert("currency".into(), code.clone());
            }
        }
    }
    let mut rules: Vec<RuleCheck> = schema.rules.iter().map(|r| check(r, &mut fields)).collect();
    let sum_to = schema.items.iter().flat_map(|spec| &spec.sum_to).find(|name| fields.contains_key(*name));
    let target = sum_to.and_then(|t| cents(&fields, t));
    let items = schema
        .items
        .as_ref()
        .map_or_else(Vec::new, |spec| items::find(spec, schema, grids, &all_labels, order, target));
    let items_check = sum_to.filter(|_| !items.is_empty()).map(|target| check_items(&items, target, &mut fields));
    let mut missing: Vec<&FieldSpec> = schema.fields.iter().filter(|f| !fields.contains_key(&f.name)).collect();
    missing.sort_by_key(|f| !f.required);
    let mut review = Vec::new();
    for f in missing.iter().filter(|f| f.required) {
        review.push(format!("{}: required, not found", f.name));
    }
    if let Some(check) = items_check.as_ref().filter(|c| c.ok == Some(false)) {
        review.push(format!("{}: {}", check.rule, check.detail));
    }
    rules.extend(items_check);
    for (name, field) in &fields {
        for problem in &field.problems {
            review.push(format!("{name}: {problem}"));
        }
        if field.confidence < schema.review_below {
            review.push(format!("{name}: confidence {:.2} below {:.2}", field.confidence, schema.review_below));
        }
    }
    Extraction {
        schema: schema.name.clone(),
        doc_type: schema.doc_type.clone(),
        fields,
        missing: missing.iter().map(|f| f.name.clone()).collect(),
        rules,
        items,
        review_needed: !review.is_empty(),
        review,
    }
}

/// Where a schema's label text occurs, and its length as compared.
pub(crate) struct Label<'a> {
    text: &'a str,
    len: usize,
    hit: LabelHit,
}

/// A label as matched: without a closing colon or full stop.
fn clean(label: &str) -> &str {
    label.trim_end_matches([':', '.'])
}

fn label_len(label: &str) -> usize {
    schema::fold(clean(label)).chars().count()
}

/// The first value of the field's type next to one of its labels, trying the longest label
/// first, then the pages top to bottom; a label inside a longer one (`all_labels`) is no label.
fn find_field(spec: &FieldSpec, grids: &[Grid], all_labels: &[Vec<Label>], order: DateOrder) -> Option<Field> {
    let mut labels: Vec<&String> = spec.labels.iter().collect();
    labels.sort_by_key(|l| std::cmp::Reverse(label_len(l)));
    let (right, below) = match spec.position {
        Position::Any => (true, true),
        Position::Right => (true, false),
        Position::Below => (false, true),
    };
    for label in labels {
        let label_score = if label.contains(' ') || label.chars().count() >= 6 { 1.0 } else { 0.85 };
        for (grid, on_page) in grids.iter().zip(all_labels) {
            for found in on_page.iter().filter(|l| l.text == label.as_str()) {
                if on_page.iter().any(|other| other.len > found.len && other.hit.overlaps(&found.hit)) {
                    continue;
                }
                for candidate in grid.candidates(&found.hit, right, below) {
                    let texts = grid.texts(&candidate);
                    let Some(parsed) = parse::find(spec.kind, &texts, order, &spec.values) else { continue };
                    let words: Vec<usize> = candidate.words[parsed.span.clone()].to_vec();
                    let page = grid.page;
                    let reading = locate::ocr_confidence(page, &words);
                    return Some(Field {
                        value: parsed.value,
                        text: texts[parsed.span].join(" "),
                        page: page.number,
                        bbox: locate::union(words.iter().map(|w| page.words[*w].bbox)),
                        source: page.source,
                        label: Some(label.clone()),
                        confidence: label_score * candidate.nearness * parsed.strength * reading,
                        problems: parsed.problems,
                        found_by: FoundBy::Geometry,
                    });
                }
            }
        }
    }
    None
}

/// The document's currency: the mark the amount fields carry, else the most frequent
/// currency mark on its pages.
fn currency(pages: &[Page], fields: &BTreeMap<String, Field>) -> Option<Field> {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for f in fields.values() {
        if let Some(code) = f.value.get("currency").and_then(Value::as_str) {
            *votes.entry(code).or_default() += 10;
        }
    }
    let mut first: BTreeMap<&str, (u32, BBox, TextSource)> = BTreeMap::new();
    for page in pages {
        for w in &page.words {
            let t = w.text.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '(' | ')'));
            let mark = parse::currency_of(t)
                .or_else(|| {
                    t.char_indices().find_map(|(i, _)| {
                        let (a, b) = t.split_at(i);
                        (b.starts_with(|c: char| c.is_ascii_digit() || c == '-') && !a.is_empty())
                            .then(|| parse::currency_of(a))
                            .flatten()
                    })
                })
                .or_else(|| {
                    let digits = t.trim_end_matches(|c: char| !c.is_ascii_digit());
                    (!digits.is_empty() && digits.len() < t.len())
                        .then(|| parse::currency_of(&t[digits.len()..]))
                        .flatten()
                });
            if let Some(code) = mark {
                *votes.entry(code).or_default() += 1;
                first.entry(code).or_insert((page.number, w.bbox, page.source));
            }
        }
    }
    let total: usize = votes.values().sum();
    let (code, n) = votes.into_iter().max_by_key(|(_, n)| *n)?;
    let (page, bbox, source) = first.get(code).copied().unwrap_or((1, [0.0; 4], TextSource::TextLayer));
    Some(Field {
        value: json!(code),
        text: code.to_string(),
        page,
        bbox,
        source,
        label: None,
        confidence: n as f32 / total as f32,
        problems: vec![],
        found_by: FoundBy::Geometry,
    })
}

fn cents(fields: &BTreeMap<String, Field>, name: &str) -> Option<i64> {
    let amount = fields.get(name)?.value.get("amount")?.as_f64()?;
    Some((amount * 100.0).round() as i64)
}

/// Cents as an amount: `1234` → `12.34`.
fn money(cents: i64) -> String {
    format!("{:.2}", cents as f64 / 100.0)
}

/// A check the field passed takes away half its doubt.
fn reassure(field: &mut Field) {
    field.confidence = 1.0 - (1.0 - field.confidence) / 2.0;
}

/// Checks that the items' amounts add up to the `target` field. When they do, half the
/// field's doubt goes; when not, the table was misread or the field is wrong: review.
fn check_items(items: &[Item], target: &str, fields: &mut BTreeMap<String, Field>) -> RuleCheck {
    let rule = format!("items = {target}");
    let parts: Option<Vec<i64>> = items.iter().map(Item::cents).collect();
    let (Some(parts), Some(total)) = (parts, cents(fields, target)) else {
        return RuleCheck { rule, ok: None, detail: "an item has no amount".into() };
    };
    let sum: i64 = parts.iter().sum();
    let detail = format!("{} items add up to {}, {target} is {}", parts.len(), money(sum), money(total));
    let ok = sum == total;
    if ok && let Some(f) = fields.get_mut(target) {
        reassure(f);
    }
    RuleCheck { rule, ok: Some(ok), detail }
}

/// Checks a rule. Its fields gain confidence when it holds (half their doubt goes); when
/// it fails, the field it blames gets the problem and half its confidence.
fn check(rule: &Rule, fields: &mut BTreeMap<String, Field>) -> RuleCheck {
    let involved: Vec<&str> = match rule {
        Rule::Sum { of, equals } => of.iter().chain([equals]).map(String::as_str).collect(),
        Rule::NotBefore { field, than } => vec![field.as_str(), than.as_str()],
    };
    let (name, outcome, blame): (String, Option<(bool, String)>, &str) = match rule {
        Rule::Sum { of, equals } => {
            let name = format!("{} = {equals}", of.join(" + "));
            let parts: Option<Vec<i64>> = of.iter().map(|f| cents(fields, f)).collect();
            let outcome = parts.zip(cents(fields, equals)).map(|(parts, total)| {
                let sum: i64 = parts.iter().sum();
                let shown: Vec<String> = parts.iter().map(|c| money(*c)).collect();
                (sum == total, format!("{} = {}, {equals} is {}", shown.join(" + "), money(sum), money(total)))
            });
            (name, outcome, equals.as_str())
        }
        Rule::NotBefore { field, than } => {
            let date = |f: &str| fields.get(f).and_then(|f| f.value.as_str()).map(str::to_string);
            let outcome = date(field).zip(date(than)).map(|(a, b)| (a >= b, format!("{field} {a}, {than} {b}")));
            (format!("{field} not before {than}"), outcome, field.as_str())
        }
    };
    match outcome {
        None => RuleCheck { rule: name, ok: None, detail: "a field it needs is missing".into() },
        Some((true, detail)) => {
            for name in &involved {
                if let Some(f) = fields.get_mut(*name) {
                    reassure(f);
                }
            }
            RuleCheck { rule: name, ok: Some(true), detail }
        }
        Some((false, detail)) => {
            if let Some(f) = fields.get_mut(blame) {
                f.problems.push(format!("fails {name}: {detail}"));
                f.confidence *= 0.5;
            }
            RuleCheck { rule: name, ok: Some(false), detail }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use locate::tests::page;

    fn invoice(total: &str, iban: &str, issued: &str, due: &str) -> Page {
        page(&[
            ("Invoice", 50.0, 50.0),
            ("No:", 98.0, 50.0),
            ("INV-2024-17", 200.0, 50.0),
            ("Invoice", 50.0, 70.0),
            ("date:", 98.0, 70.0),
            (issued, 200.0, 70.0),
            ("Due", 50.0, 90.0),
            ("date:", 74.0, 90.0),
            (due, 200.0, 90.0),
            ("Subtotal", 300.0, 300.0),
            ("100.00", 450.0, 300.0),
            ("VAT", 300.0, 320.0),
            ("19.00", 450.0, 320.0),
            ("Total", 300.0, 340.0),
            (total, 450.0, 340.0),
            ("EUR", 490.0, 340.0),
            ("IBAN", 50.0, 500.0),
            (iban, 100.0, 500.0),
        ])
    }

    fn run(p: Page) -> Extraction {
        let schemas = Schemas::builtin().unwrap();
        extract_best(&[schemas.by_name("invoice").unwrap()], &[p]).unwrap()
    }

    #[test]
    fn a_clean_invoice_checks_out() {
        let x = run(invoice("119.00", "DE30507500940000048567", "03.02.2024", "17.02.2024"));
        assert_eq!(x.fields["number"].value, json!("INV-2024-17"));
        assert_eq!(x.fields["issue_date"].value, json!("2024-02-03"));
        assert_eq!(x.fields["due_date"].value, json!("2024-02-17"));
        assert_eq!(x.fields["total"].value, json!({"amount": 119.0, "currency": "EUR"}));
        assert_eq!(x.fields["currency"].value, json!("EUR"));
        assert!(x.rules.iter().all(|r| r.ok == Some(true)), "{:#?}", x.rules);
        assert!(!x.review_needed, "{:?}", x.review);
    }

    #[test]
    fn injected_errors_are_flagged_and_kept() {
        let cent = run(invoice("119.01", "DE30507500940000048567", "03.02.2024", "17.02.2024"));
        assert_eq!(cent.fields["total"].value["amount"], json!(119.01), "kept");
        assert!(cent.fields["total"].problems[0].contains("subtotal + tax = total"), "{:?}", cent.fields["total"]);
        assert!(cent.review_needed);
        let iban = run(invoice("119.00", "DE31507500940000048567", "03.02.2024", "17.02.2024"));
        assert_eq!(iban.fields["iban"].problems, ["IBAN check digits do not match"]);
        assert!(iban.review_needed);
        let swapped = run(invoice("119.00", "DE30507500940000048567", "17.02.2024", "03.02.2024"));
        assert!(swapped.fields["due_date"].problems[0].contains("not before"), "{:?}", swapped.fields["due_date"]);
        assert!(swapped.review_needed);
    }

    #[test]
    fn line_items_must_add_up_to_the_subtotal() {
        let with_items = |second: &str| {
            let mut p = invoice("119.00", "DE30507500940000048567", "03.02.2024", "17.02.2024");
            let table = [
                ("Description", 50.0, 200.0),
                ("Amount", 450.0, 200.0),
                ("Paper", 50.0, 220.0),
                ("60.00", 450.0, 220.0),
                ("Ink", 50.0, 240.0),
                (second, 450.0, 240.0),
            ];
            p.words.extend(page(&table).words);
            run(p)
        };
        let good = with_items("40.00");
        assert_eq!(good.items.len(), 2, "{:?}", good.items);
        let rule = good.rules.iter().find(|r| r.rule == "items = subtotal").unwrap();
        assert_eq!(rule.ok, Some(true), "{rule:?}");
        assert!(!good.review_needed, "{:?}", good.review);
        let bad = with_items("40.01");
        assert_eq!(bad.items[1].amount, Some(40.01), "kept");
        assert!(bad.review_needed && bad.review.iter().any(|r| r.starts_with("items = subtotal")), "{:?}", bad.review);
    }
}
