//! Where a label's value is, by geometry: the page's words in lines, each line cut into
//! cells at wide gaps (a form's boxes, a table's columns), then for a label found in a line
//! the rest of its cell, the next cell to its right, or the cell below it that shares its
//! columns.

use crate::model::workdir::{BBox, Page};

use super::schema::fold;

/// A gap wider than this many line heights starts a new cell.
const CELL_GAP: f32 = 1.0;
/// How many lines below a label its value may be, and how far: this many label heights
/// from the label's foot (a box's instructions further down are no value).
const LINES_BELOW: usize = 3;
const MAX_BELOW: f32 = 3.0;

/// A run of words close together on one line.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Indices into the page's words, left to right.
    pub words: Vec<usize>,
    pub bbox: BBox,
}

/// A page's words as lines of cells, top to bottom.
pub struct Grid<'a> {
    pub page: &'a Page,
    pub lines: Vec<Vec<Cell>>,
}

/// Where a label was found: line, cell, the cell's words it covers (the last one perhaps
/// only in part: `n°562044387` after "Facture n°" leaves `562044387`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelHit {
    pub line: usize,
    pub cell: usize,
    /// The cell's words the label takes: `start..words`.
    pub start: usize,
    pub words: usize,
    /// What is left of the label's last word, if the label ended inside it.
    pub rest: Option<String>,
}

impl LabelHit {
    /// Whether `other` takes some of the same words.
    pub fn overlaps(&self, other: &LabelHit) -> bool {
        self.line == other.line && self.cell == other.cell && self.start < other.words && other.start < self.words
    }
}

/// A place a value may be: words (the first perhaps cut to `first`), and how near it is.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub words: Vec<usize>,
    pub first: Option<String>,
    /// 1 for the rest of the label's cell, less further away.
    pub nearness: f32,
    pub below: bool,
}

impl<'a> Grid<'a> {
    pub fn new(page: &'a Page) -> Self {
        let mut order: Vec<usize> = (0..page.words.len()).collect();
        let center = |i: usize| {
            let b = page.upright(&page.words[i].bbox);
            (b[1] + b[3]) / 2.0
        };
        order.sort_by(|a, b| center(*a).total_cmp(&center(*b)));
        // Lines: words whose centres lie within half the line's height of its first word.
        let mut lines: Vec<Vec<usize>> = Vec::new();
        for i in order {
            let b = page.upright(&page.words[i].bbox);
            let joined = lines.last_mut().filter(|line| {
                let first = page.upright(&page.words[line[0]].bbox);
                let h = (first[3] - first[1]).max(b[3] - b[1]).max(1.0);
                (center(line[0]) - center(i)).abs() <= h * 0.5
            });
            match joined {
                Some(line) => line.push(i),
                None => lines.push(vec![i]),
            }
        }
        let lines = lines
            .into_iter()
            .map(|mut line| {
                line.sort_by(|a, b| page.words[*a].bbox[0].total_cmp(&page.words[*b].bbox[0]));
                cells(page, &line)
            })
            .collect();
        Self { page, lines }
    }

    fn text(&self, word: usize) -> &str {
        &self.page.words[word].text
    }

    /// Every place `label` occurs (folded words compared; the label starts at a word and
    /// ends at a word's end or before a non-letter), top to bottom.
    pub fn find_label(&self, label: &str) -> Vec<LabelHit> {
        let want: Vec<String> = fold(label).split_whitespace().map(str::to_string).collect();
        let mut hits = Vec::new();
        let Some(last) = want.last() else { return hits };
        for (l, line) in self.lines.iter().enumerate() {
            for (c, cell) in line.iter().enumerate() {
                let words: Vec<String> = cell.words.iter().map(|w| fold(self.text(*w))).collect();
                for start in 0..words.len() {
                    let end = start + want.len();
                    if end > words.len() || words[start..end - 1] != want[..want.len() - 1] {
                        continue;
                    }
                    let word = &words[end - 1];
                    let Some(rest) = word.strip_prefix(last.as_str()) else { continue };
                    let rest = rest.trim_start_matches([':', '.', '#', '°', 'º', '-']);
                    if rest.starts_with(char::is_alphabetic) {
                        continue;
                    }
                    // The original text of the rest (its last characters), not its folded form.
                    let original: Vec<char> = self.text(cell.words[end - 1]).chars().collect();
                    let keep = rest.chars().count().min(original.len());
                    let rest = (keep > 0).then(|| original[original.len() - keep..].iter().collect());
                    hits.push(LabelHit { line: l, cell: c, start, words: end, rest });
                }
            }
        }
        hits
    }

    /// Where the value of the label at `hit` may be, nearest first.
    pub fn candidates(&self, hit: &LabelHit, right: bool, below: bool) -> Vec<Candidate> {
        let line = &self.lines[hit.line];
        let cell = &line[hit.cell];
        let mut out = Vec::new();
        if right {
            let mut words: Vec<usize> = cell.words[hit.words..].to_vec();
            let first = hit.rest.clone();
            if first.is_some() {
                words.insert(0, cell.words[hit.words - 1]);
            }
            if !words.is_empty() {
                out.push(Candidate { words, first, nearness: 1.0, below: false });
            }
            if let Some(next) = line.get(hit.cell + 1)
                && !is_label(self, next)
            {
                out.push(Candidate { words: next.words.clone(), first: None, nearness: 0.9, below: false });
            }
        }
        if below {
            let label_box = self.label_box(hit);
            let reach = label_box[3] + MAX_BELOW * (label_box[3] - label_box[1]);
            for (n, lower) in self.lines.iter().skip(hit.line + 1).take(LINES_BELOW).enumerate() {
                let under = lower.iter().find(|c| overlaps(&c.bbox, &label_box));
                match under {
                    Some(c) if c.bbox[1] > reach => break,
                    Some(c) if is_label(self, c) => break,
                    Some(c) => {
                        out.push(Candidate {
                            words: c.words.clone(),
                            first: None,
                            nearness: 0.85 - 0.1 * n as f32,
                            below: true,
                        });
                        break;
                    }
                    None => {}
                }
            }
        }
        out
    }

    /// The box of the label's own words.
    fn label_box(&self, hit: &LabelHit) -> BBox {
        let cell = &self.lines[hit.line][hit.cell];
        union(cell.words[hit.start..hit.words].iter().map(|w| self.page.words[*w].bbox))
    }

    /// The words of a candidate as text, the first cut to what the label left.
    pub fn texts<'c>(&'c self, candidate: &'c Candidate) -> Vec<&'c str> {
        candidate
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| match (&candidate.first, i) {
                (Some(first), 0) => first.as_str(),
                _ => self.text(*w),
            })
            .collect()
    }
}

/// A cell that ends with a colon is a label, not a value.
fn is_label(grid: &Grid, cell: &Cell) -> bool {
    cell.words.last().is_some_and(|w| grid.text(*w).ends_with(':'))
}

fn overlaps(a: &BBox, b: &BBox) -> bool {
    a[0].max(b[0]) < a[2].min(b[2])
}

/// The mean OCR confidence (0–1) of a page's `words`; 1 for words of a text layer.
pub fn ocr_confidence(page: &Page, words: &[usize]) -> f32 {
    let conf: Vec<f32> = words.iter().filter_map(|w| page.words[*w].conf).map(|c| c / 100.0).collect();
    if conf.is_empty() { 1.0 } else { conf.iter().sum::<f32>() / conf.len() as f32 }
}

pub fn union(boxes: impl Iterator<Item = BBox>) -> BBox {
    boxes.fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |u, b| {
        [u[0].min(b[0]), u[1].min(b[1]), u[2].max(b[2]), u[3].max(b[3])]
    })
}

/// A line's words cut into cells at gaps wider than [`CELL_GAP`] line heights.
fn cells(page: &Page, line: &[usize]) -> Vec<Cell> {
    let height = line.iter().map(|w| page.words[*w].bbox[3] - page.words[*w].bbox[1]).fold(0.0f32, f32::max).max(1.0);
    let mut out: Vec<Cell> = Vec::new();
    for &w in line {
        let b = page.words[w].bbox;
        match out.last_mut() {
            Some(cell) if b[0] - cell.bbox[2] <= CELL_GAP * height => {
                cell.words.push(w);
                cell.bbox = union([cell.bbox, b].into_iter());
            }
            _ => out.push(Cell { words: vec![w], bbox: b }),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::workdir::{TextSource, Word};

    /// A page from `(text, x, y)` words, 10 pt high, 6 pt per character.
    pub fn page(words: &[(&str, f32, f32)]) -> Page {
        Page {
            number: 1,
            width: 600.0,
            height: 800.0,
            source: TextSource::TextLayer,
            words: words
                .iter()
                .map(|(t, x, y)| Word {
                    text: t.to_string(),
                    bbox: [*x, *y, x + 6.0 * t.chars().count() as f32, y + 10.0],
                    conf: None,
                    bold: false,
                })
                .collect(),
            layout_image: None,
            ocr_image: None,
            regions: vec![],
            ocr_confidence: None,
            ocr_language: None,
            images: vec![],
            skew: None,
            turn: None,
            invisible_text: false,
            layer_agreement: None,
        }
    }

    #[test]
    fn a_value_right_of_its_label_below_it_or_glued_to_it() {
        let p = page(&[
            ("Invoice", 300.0, 100.0),
            ("Number:", 348.0, 100.0),
            ("42183017", 500.0, 100.0),
            ("Id.client", 100.0, 200.0),
            ("Other", 300.0, 200.0),
            ("10577874", 100.0, 215.0),
            ("9", 300.0, 215.0),
            ("Facture", 50.0, 300.0),
            ("n°562044387", 98.0, 300.0),
            ("du", 170.0, 300.0),
        ]);
        let grid = Grid::new(&p);
        assert_eq!(grid.lines.len(), 4);
        let hit = &grid.find_label("Invoice number")[0];
        let c = grid.candidates(hit, true, true);
        assert_eq!(grid.texts(&c[0]), ["42183017"], "the next cell right");
        let hit = &grid.find_label("Id.client")[0];
        let c = grid.candidates(hit, true, true);
        assert_eq!(grid.texts(&c[0]), ["Other"], "the next cell right");
        assert_eq!(grid.texts(&c[1]), ["10577874"], "the cell below");
        assert!(c[1].below);
        let hit = &grid.find_label("Facture n°")[0];
        let c = grid.candidates(hit, true, false);
        assert_eq!(grid.texts(&c[0]), ["562044387", "du"]);
        assert!(grid.find_label("Total").is_empty());
        assert!(grid.find_label("Fact").is_empty(), "a label ends at a word's end");
    }
}
