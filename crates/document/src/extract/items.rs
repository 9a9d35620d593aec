//! Line items: the rows of a table under a header line whose cells name its columns
//! (description, quantity, unit price, amount; the schema's `[items]` labels). Each word
//! below belongs to the column whose header is nearest across the page. A row starts at
//! a line with an amount in the amount column; lines right below it without one continue
//! its description. The table ends at a line that starts with the label of an amount field
//! ("Subtotal", "Total"…), at a gap of more than [`MAX_GAP`] line heights, at another
//! header line, or at the page's end; a header repeated on the next page goes on with it.
//! A document with no such header may list its items one per line with their amounts
//! ([`unheaded`]): those are taken only when they add up to the subtotal or total.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::Label;
use super::locate::{Cell, Grid, ocr_confidence, union};
use super::parse::{self, DateOrder};
use super::schema::{ItemsSpec, Kind, Schema};
use crate::model::workdir::{BBox, Page, TextSource};

/// A gap between two lines of a table larger than this many line heights ends it.
const MAX_GAP: f32 = 3.0;
/// A line without an amount continues the row above only this near to it, in line heights
/// (OCR boxes hug the letters, so a scan's gaps are up to 1.2; a footer's are 2 and more).
const CONTINUE_GAP: f32 = 1.5;

/// One row of a line-item table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// Its description, one line of the table per line.
    pub description: String,
    pub quantity: Option<f64>,
    pub unit_price: Option<f64>,
    pub amount: Option<f64>,
    pub page: u32,
    pub bbox: BBox,
    pub source: TextSource,
    /// Mean OCR confidence of its words (1 on a text layer).
    pub confidence: f32,
}

impl Item {
    /// What the row adds to the total, in cents: its amount, else quantity × unit price.
    pub fn cents(&self) -> Option<i64> {
        let amount = self.amount.or_else(|| Some(self.unit_price? * self.quantity.unwrap_or(1.0)))?;
        Some((amount * 100.0).round() as i64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Description,
    Quantity,
    UnitPrice,
    Amount,
    /// Position, discount, tax rate: words that belong to no item field.
    Other,
}

/// A page's header labels found once: per line, the column labels found on it (of
/// labels over the same words, the longest), and the lines that start with the label of
/// an amount field.
struct Marks {
    named: Vec<Vec<Named>>,
    stops: HashSet<usize>,
}

/// A column label found on a line: its column, its length, its horizontal extent, and its
/// words (`start..end` of cell `cell`).
struct Named {
    column: Column,
    len: usize,
    x: [f32; 2],
    cell: usize,
    words: std::ops::Range<usize>,
}

impl Marks {
    /// `labels`: the schema's field labels found on the page, of which those of amount
    /// fields that start a line end a table.
    fn new(spec: &ItemsSpec, schema: &Schema, grid: &Grid, labels: &[Label]) -> Self {
        let columns = [
            (Column::Description, &spec.description),
            (Column::Quantity, &spec.quantity),
            (Column::UnitPrice, &spec.unit_price),
            (Column::Amount, &spec.amount),
            (Column::Other, &spec.other),
        ];
        let mut named: Vec<Vec<Named>> = grid.lines.iter().map(|_| Vec::new()).collect();
        for (column, labels) in columns {
            for label in labels {
                let len = label.chars().count();
                for hit in grid.find_label(label) {
                    let cell = &grid.lines[hit.line][hit.cell];
                    let b = union(cell.words[hit.start..hit.words].iter().map(|w| grid.page.words[*w].bbox));
                    let found = Named { column, len, x: [b[0], b[2]], cell: hit.cell, words: hit.start..hit.words };
                    let on_line = &mut named[hit.line];
                    let same = |n: &Named| {
                        n.cell == found.cell && n.words.start < found.words.end && found.words.start < n.words.end
                    };
                    if on_line.iter().any(|n| same(n) && n.len >= len) {
                        continue;
                    }
                    on_line.retain(|n| !same(n));
                    on_line.push(found);
                }
            }
        }
        let amount =
            |text: &str| schema.fields.iter().any(|f| f.kind == Kind::Amount && f.labels.iter().any(|l| l == text));
        let stops = labels
            .iter()
            .filter(|l| l.hit.cell == 0 && l.hit.start == 0 && amount(l.text))
            .map(|l| l.hit.line)
            .collect();
        Self { named, stops }
    }

    /// The columns named on `line`, if it is a table header: a description column and an
    /// amount or unit-price column at least, and fewer other words than labels (a
    /// sentence that mentions a "description" and a "price" is no header).
    fn header(&self, grid: &Grid, line: usize) -> Option<&[Named]> {
        let named = &self.named[line];
        let words: usize = grid.lines[line].iter().map(|c| c.words.len()).sum();
        let labelled: usize = named.iter().map(|n| n.words.len()).sum();
        let has = |c: Column| named.iter().any(|n| n.column == c);
        let header = has(Column::Description) && (has(Column::Amount) || has(Column::UnitPrice));
        (header && words - labelled <= named.len()).then_some(named)
    }
}

/// The line items of every page (`grids`, with the schema's field labels found on each),
/// top to bottom. With no table under a header, those of a header-less one ([`unheaded`])
/// whose amounts add up to `target`, in cents (the subtotal or total found).
pub(crate) fn find(
    spec: &ItemsSpec,
    schema: &Schema,
    grids: &[Grid],
    labels: &[Vec<Label>],
    order: DateOrder,
    target: Option<i64>,
) -> Vec<Item> {
    let marks: Vec<Marks> =
        grids.iter().zip(labels).map(|(grid, on_page)| Marks::new(spec, schema, grid, on_page)).collect();
    let mut items = Vec::new();
    for (grid, marks) in grids.iter().zip(&marks) {
        let mut line = 0;
        while line < grid.lines.len() {
            line = match marks.header(grid, line) {
                Some(headers) => rows(grid, marks, line + 1, headers, order, &mut items),
                None => line + 1,
            };
        }
    }
    match target {
        Some(target) if items.is_empty() => unheaded(grids, &marks, order, target),
        _ => items,
    }
}

/// The amount among `words`, if any.
fn amount(words: &[&str], order: DateOrder) -> Option<f64> {
    parse::find(Kind::Amount, words, order, &[]).and_then(|p| p.value["amount"].as_f64())
}

/// Reads the rows from line `first` down into `items`; returns the first line after them.
fn rows(grid: &Grid, marks: &Marks, first: usize, headers: &[Named], order: DateOrder, items: &mut Vec<Item>) -> usize {
    let page = grid.page;
    let has_amount = headers.iter().any(|h| h.column == Column::Amount);
    let money = if has_amount { Column::Amount } else { Column::UnitPrice };
    let mut current: Option<Row> = None;
    let mut last_bottom: Option<f32> = None;
    let mut line = first;
    while line < grid.lines.len() && marks.header(grid, line).is_none() {
        // A tax label under the header ("MwSt.") names a column; after a row, it ends the table.
        if current.is_some() && marks.stops.contains(&line) {
            break;
        }
        let words: Vec<usize> = grid.lines[line].iter().flat_map(|c| c.words.iter().copied()).collect();
        let boxes: Vec<BBox> = words.iter().map(|w| page.upright(&page.words[*w].bbox)).collect();
        let height = boxes.iter().map(|b| b[3] - b[1]).fold(1.0f32, f32::max);
        let top = boxes.iter().map(|b| b[1]).fold(f32::MAX, f32::min);
        let gap = last_bottom.map_or(0.0, |bottom| (top - bottom) / height);
        if current.is_some() && gap > MAX_GAP {
            break;
        }
        let column_of: Vec<Column> = boxes.iter().map(|b| nearest(headers, b)).collect();
        let texts = |c: Column| -> Vec<&str> {
            words
                .iter()
                .zip(&column_of)
                .filter(|(_, col)| **col == c)
                .map(|(w, _)| page.words[*w].text.as_str())
                .collect()
        };
        let description = texts(Column::Description).join(" ");
        match amount(&texts(money), order) {
            Some(value) => {
                items.extend(current.take().map(|r| r.item(page)));
                current = Some(Row {
                    description,
                    quantity: texts(Column::Quantity).iter().find_map(|t| parse::number(t)),
                    unit_price: if has_amount { amount(&texts(Column::UnitPrice), order) } else { Some(value) },
                    amount: has_amount.then_some(value),
                    words,
                });
            }
            // A line apart from the row is no part of it (a footer under the table).
            None if current.is_some() && gap > CONTINUE_GAP => break,
            None => {
                if let Some(row) = current.as_mut().filter(|_| !description.is_empty()) {
                    row.description.push('\n');
                    row.description.push_str(&description);
                    row.words.extend(words);
                }
            }
        }
        last_bottom = boxes.iter().map(|b| b[3]).reduce(f32::max).or(last_bottom);
        line += 1;
    }
    items.extend(current.map(|r| r.item(page)));
    line
}

/// Line items of a table with no header line, as statements print them (a service per
/// line, its amount in the line's last cell, its breakdown indented under it): the longest
/// run of such lines at one indent whose amounts add up to `target`, in cents (the
/// subtotal or total found), none of them the whole of it (that is a total and its
/// breakdown: "Charges 4.11, Credits 0.00"). Lines indented deeper between them are passed
/// over; a line further left, or one at the same indent without an amount or starting
/// with an amount field's label ("Total") ends a run. Only the sum tells such rows from any
/// other amounts.
fn unheaded(grids: &[Grid], marks: &[Marks], order: DateOrder, target: i64) -> Vec<Item> {
    let mut best: Vec<Item> = Vec::new();
    for (grid, marks) in grids.iter().zip(marks) {
        let lines: Vec<Listed> = (0..grid.lines.len()).map(|line| Listed::new(grid, line, order)).collect();
        for (start, first) in lines.iter().enumerate() {
            let Some(item) = first.item.as_ref().filter(|_| !marks.stops.contains(&start)) else { continue };
            let mut run = vec![item];
            for (line, next) in lines.iter().enumerate().skip(start + 1) {
                if next.indent < first.indent - INDENT {
                    break;
                }
                if next.indent <= first.indent + INDENT {
                    match next.item.as_ref().filter(|_| !marks.stops.contains(&line)) {
                        Some(item) => run.push(item),
                        None => break,
                    }
                }
            }
            let amounts: Vec<i64> = run.iter().filter_map(|i| i.cents()).collect();
            let adds_up = amounts.iter().sum::<i64>() == target && !amounts.contains(&target);
            if adds_up && run.len() >= 2 && run.len() > best.len() {
                best = run.into_iter().cloned().collect();
            }
        }
    }
    best
}

/// Lines within this many points of each other's left edge share an indent.
const INDENT: f32 = 3.0;

/// A line as a header-less table sees it: where it starts, and, if its last cell is an
/// amount and the cells before it have words, the line as an item.
struct Listed {
    indent: f32,
    item: Option<Item>,
}

impl Listed {
    fn new(grid: &Grid, line: usize, order: DateOrder) -> Self {
        let page = grid.page;
        let cells = &grid.lines[line];
        let indent = cells.first().and_then(|c| c.words.first()).map_or(0.0, |w| page.upright(&page.words[*w].bbox)[0]);
        let texts = |cell: &Cell| cell.words.iter().map(|w| page.words[*w].text.as_str()).collect::<Vec<_>>();
        let item = match cells.split_last() {
            Some((last, before)) if !before.is_empty() && texts(last).len() <= 2 => {
                let description: Vec<&str> = before.iter().flat_map(texts).collect();
                amount(&texts(last), order)
                    .filter(|_| description.iter().any(|t| t.chars().any(char::is_alphabetic)))
                    .map(|value| {
                        Row {
                            description: description.join(" "),
                            quantity: None,
                            unit_price: None,
                            amount: Some(value),
                            words: cells.iter().flat_map(|c| c.words.iter().copied()).collect(),
                        }
                        .item(page)
                    })
            }
            _ => None,
        };
        Self { indent, item }
    }
}

/// The column whose header is nearest to the word across the page (of those it
/// overlaps, the one it overlaps most).
fn nearest(headers: &[Named], b: &BBox) -> Column {
    let apart = |h: &Named| h.x[0].max(b[0]) - h.x[1].min(b[2]);
    headers.iter().min_by(|a, c| apart(a).total_cmp(&apart(c))).map_or(Column::Other, |h| h.column)
}

/// A row being read: its fields so far and its words.
struct Row {
    description: String,
    quantity: Option<f64>,
    unit_price: Option<f64>,
    amount: Option<f64>,
    words: Vec<usize>,
}

impl Row {
    fn item(self, page: &Page) -> Item {
        Item {
            description: self.description,
            quantity: self.quantity,
            unit_price: self.unit_price,
            amount: self.amount,
            page: page.number,
            bbox: union(self.words.iter().map(|w| page.words[*w].bbox)),
            source: page.source,
            confidence: ocr_confidence(page, &self.words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::locate::tests::page;
    use crate::extract::schema::Schemas;

    fn items(words: &[(&str, f32, f32)]) -> Vec<Item> {
        let schemas = Schemas::builtin().unwrap();
        crate::extract::extract_best(&[schemas.by_name("invoice").unwrap()], &[page(words)]).unwrap().items
    }

    #[test]
    fn rows_under_their_header_with_continued_descriptions() {
        let found = items(&[
            ("Pos.", 50.0, 100.0),
            ("Menge", 100.0, 100.0),
            ("Beschreibung", 160.0, 100.0),
            ("VK-Preis", 400.0, 100.0),
            ("Zeilenbetrag", 480.0, 100.0),
            ("Ohne", 410.0, 112.0),
            ("1", 54.0, 140.0),
            ("2", 120.0, 140.0),
            ("Hosting", 160.0, 140.0),
            ("Mai", 208.0, 140.0),
            ("3,89", 420.0, 140.0),
            ("7,78", 530.0, 140.0),
            ("Dienst:", 160.0, 152.0),
            ("mail", 208.0, 152.0),
            ("2", 54.0, 164.0),
            ("1", 120.0, 164.0),
            ("Domain", 160.0, 164.0),
            ("5,39", 420.0, 164.0),
            ("5,39", 530.0, 164.0),
            // After a wide gap: the page's footer, no item.
            ("Bank", 160.0, 400.0),
            ("12,00", 530.0, 400.0),
        ]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].description, "Hosting Mai\nDienst: mail");
        assert_eq!((found[0].quantity, found[0].unit_price, found[0].amount), (Some(2.0), Some(3.89), Some(7.78)));
        assert_eq!((found[1].description.as_str(), found[1].cents()), ("Domain", Some(539)));
    }

    #[test]
    fn without_a_header_the_lines_that_add_up_to_the_total_are_the_items() {
        let found = items(&[
            ("Summary", 40.0, 100.0),
            ("Charges", 60.0, 112.0),
            ("$4.11", 500.0, 112.0),
            ("Total", 40.0, 130.0),
            ("$4.11", 500.0, 130.0),
            ("Detail", 40.0, 160.0),
            ("Data", 60.0, 172.0),
            ("Transfer", 90.0, 172.0),
            ("$0.01", 500.0, 172.0),
            ("VAT", 80.0, 184.0),
            ("$0.00", 500.0, 184.0),
            ("Compute", 60.0, 196.0),
            ("$1.87", 500.0, 196.0),
            ("Charges", 80.0, 208.0),
            ("$1.87", 500.0, 208.0),
            ("Glacier", 60.0, 220.0),
            ("$2.23", 500.0, 220.0),
        ]);
        let found: Vec<(&str, Option<i64>)> = found.iter().map(|i| (i.description.as_str(), i.cents())).collect();
        assert_eq!(found, [("Data Transfer", Some(1)), ("Compute", Some(187)), ("Glacier", Some(223))]);
        // Amounts that do not add up to the total are no items.
        assert!(
            items(&[
                ("Total", 40.0, 100.0),
                ("9.00", 500.0, 100.0),
                ("Paper", 60.0, 130.0),
                ("2.00", 500.0, 130.0),
                ("Ink", 60.0, 142.0),
                ("3.00", 500.0, 142.0),
            ])
            .is_empty()
        );
    }

    #[test]
    fn the_table_ends_at_the_subtotal_and_a_unit_price_column_alone_will_do() {
        let found = items(&[
            ("Description", 50.0, 100.0),
            ("Qty", 300.0, 100.0),
            ("Price", 400.0, 100.0),
            ("Paper", 50.0, 120.0),
            ("3", 306.0, 120.0),
            ("2.50", 400.0, 120.0),
            ("Subtotal", 50.0, 140.0),
            ("7.50", 400.0, 140.0),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].amount, found[0].cents()), (None, Some(750)));
    }
}
