//! A page as blocks: its words grouped by the layout region they fall in, the groups in
//! [`reading_order`], headers and footers left out. The chunk stage and the export read
//! documents through this one view.

use crate::model::workdir::{BBox, Page, Word, area, centre_in, union};
use crate::text::reading_order;

/// What a block is, from its layout label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Heading,
    Text,
    Table,
    Caption,
    /// A slide's speaker notes.
    Notes,
}

/// Consecutive words of one layout region, with the page they are on.
#[derive(Debug)]
pub struct Block<'a> {
    pub kind: Kind,
    /// The layout label (`text` for words outside every region).
    pub label: &'a str,
    /// Heading level given by the source (DOCX styles); else it comes from numbering.
    pub level: Option<u8>,
    pub words: Vec<(u32, &'a Word)>,
    /// Union of the words' boxes.
    pub bbox: BBox,
}

/// Longest title treated as a heading; longer "titles" are misdetected paragraphs.
const MAX_HEADING_WORDS: usize = 24;

/// Every page's blocks, page after page.
pub fn blocks(pages: &[Page]) -> Vec<Block<'_>> {
    pages.iter().flat_map(page_blocks).collect()
}

/// A page's words grouped by layout region, with the region (`None`: a run of words outside
/// every region, in source order).
type Groups<'a> = Vec<(Option<usize>, Vec<&'a Word>)>;

fn is_furniture(page: &Page, region: Option<usize>) -> bool {
    region.is_some_and(|i| matches!(page.regions[i].label.as_str(), "header" | "footer"))
}

/// A page's running headers and footers (page numbers, running titles), in rows top to
/// bottom, each row left to right, as on the upright page: left out of [`page_blocks`],
/// kept for exports that give the whole page.
pub fn furniture(page: &Page) -> Vec<Block<'_>> {
    let mut groups = groups(page);
    groups.retain(|(region, _)| is_furniture(page, *region));
    rows_left_to_right(&upright_boxes(page, &groups))
        .into_iter()
        .map(|g| {
            let (region, words) = &groups[g];
            Block {
                kind: Kind::Text,
                label: region.map_or("text", |i| page.regions[i].label.as_str()),
                level: None,
                bbox: union(words.iter().map(|w| w.bbox)).expect("a group has a word"),
                words: words.iter().map(|&w| (page.number, w)).collect(),
            }
        })
        .collect()
}

/// Each group's box on the upright page: a tilted scan is ordered as read (its lines
/// would otherwise overlap rows, and the end of a line rise above its start).
fn upright_boxes(page: &Page, groups: &Groups) -> Vec<BBox> {
    groups
        .iter()
        .map(|(_, words)| union(words.iter().map(|w| page.upright(&w.bbox))).expect("a group has a word"))
        .collect()
}

/// Indices of `boxes` in rows, top to bottom (a box whose middle is above the bottom of the
/// row so far joins it), each row left to right.
fn rows_left_to_right(boxes: &[BBox]) -> Vec<usize> {
    let mut by_top: Vec<usize> = (0..boxes.len()).collect();
    by_top.sort_by(|&a, &b| boxes[a][1].total_cmp(&boxes[b][1]));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut bottom = f32::NEG_INFINITY;
    for i in by_top {
        let [_, top, _, low] = boxes[i];
        match rows.last_mut() {
            Some(row) if (top + low) / 2.0 < bottom => {
                row.push(i);
                bottom = bottom.max(low);
            }
            _ => {
                rows.push(vec![i]);
                bottom = low;
            }
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by(|&a, &b| boxes[a][0].total_cmp(&boxes[b][0]));
            row
        })
        .collect()
}

fn groups(page: &Page) -> Groups<'_> {
    let mut groups: Groups = Vec::new();
    let mut group_of_region = vec![None; page.regions.len()];
    let mut run = None;
    for (word, region) in page.words.iter().zip(word_regions(page)) {
        let slot = match region {
            Some(r) => &mut group_of_region[r],
            None => &mut run,
        };
        let g = *slot.get_or_insert_with(|| {
            groups.push((region, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(word);
        if region.is_some() {
            run = None;
        }
    }
    groups
}

/// One page's blocks in reading order, headers and footers left out. Words outside every
/// region are grouped by run of source order.
pub fn page_blocks<'a>(page: &'a Page) -> Vec<Block<'a>> {
    let mut groups = groups(page);
    groups.retain(|(region, _)| !is_furniture(page, *region));
    let boxes: Vec<BBox> =
        groups.iter().map(|(_, words)| union(words.iter().map(|w| w.bbox)).expect("a group has a word")).collect();
    let bold: Vec<&Word> = page.words.iter().filter(|w| w.bold).collect();
    let mut blocks = Vec::new();
    for g in reading_order::order(&upright_boxes(page, &groups)) {
        let (region, words) = &groups[g];
        let label = region.map(|i| page.regions[i].label.as_str()).unwrap_or("text");
        let kind = match label {
            "title" if is_float_label(words) => Kind::Caption,
            "title" if words.len() <= MAX_HEADING_WORDS && !is_contents_entry(words) && reads_as_title(words) => {
                Kind::Heading
            }
            "text" if is_numbered_title_line(words) => Kind::Heading,
            "table" => Kind::Table,
            "figure_caption" | "table_caption" => Kind::Caption,
            "notes" => Kind::Notes,
            _ => Kind::Text,
        };
        let level = region.and_then(|i| page.regions[i].level);
        let block = |kind, words: &[&'a Word], bbox| Block {
            kind,
            label,
            level,
            words: words.iter().map(|&w| (page.number, w)).collect(),
            bbox,
        };
        let pieces = if kind == Kind::Text { bold_title_pieces(words, &bold) } else { vec![(kind, &words[..])] };
        if pieces.len() == 1 {
            blocks.push(block(pieces[0].0, words, boxes[g]));
        } else {
            for (kind, words) in pieces {
                blocks.push(block(kind, words, union(words.iter().map(|w| w.bbox)).expect("a piece has a word")));
            }
        }
    }
    blocks
}

/// Most lines of a bold title set in running text.
const MAX_BOLD_TITLE_LINES: usize = 2;

/// A text group cut at its bold title lines, each piece with its kind. A bold title is a
/// run of at most [`MAX_BOLD_TITLE_LINES`] lines whose words are all bold (see
/// [`Word::bold`]), at most [`MAX_NUMBERED_TITLE_WORDS`] words, not ending like a sentence
/// or a lead-in, that reads as a title: a section heading the layout model read as text
/// ("Materials" in an APA paper, alone on its line or closing a paragraph's region). Bold
/// words elsewhere on the same line (`bold` holds the page's) make it a table's header row.
fn bold_title_pieces<'a, 'w>(words: &'a [&'w Word], bold: &[&Word]) -> Vec<(Kind, &'a [&'w Word])> {
    // Lines as ranges of `words`, and whether each is all bold.
    let boxes: Vec<BBox> = words.iter().map(|w| w.bbox).collect();
    let lines: Vec<(usize, usize, bool)> = line_ranges(&boxes)
        .into_iter()
        .map(|line| (line.start, line.end, words[line].iter().all(|w| w.bold)))
        .collect();
    // Bold words elsewhere on a title's line: a table's header row.
    let in_a_row = |title: &[&Word]| {
        bold.iter()
            .any(|b| !title.iter().any(|t| std::ptr::eq(*t, *b)) && title.iter().any(|t| level(&t.bbox, &b.bbox)))
    };
    let mut pieces = Vec::new();
    let mut text_from = 0;
    let mut i = 0;
    while i < lines.len() {
        let run = lines[i..].iter().take_while(|l| l.2).count();
        if run == 0 {
            i += 1;
            continue;
        }
        let (from, to) = (lines[i].0, lines[i + run - 1].1);
        let title = &words[from..to];
        let is_title = run <= MAX_BOLD_TITLE_LINES
            && title.len() <= MAX_NUMBERED_TITLE_WORDS
            && !title.last().is_some_and(|w| w.text.ends_with(['.', ':', ',', ';']))
            && !is_float_label(title)
            && reads_as_title(title)
            && !in_a_row(title);
        if is_title {
            if text_from < from {
                pieces.push((Kind::Text, &words[text_from..from]));
            }
            pieces.push((Kind::Heading, title));
            text_from = to;
        }
        i += run;
    }
    if text_from < words.len() {
        pieces.push((Kind::Text, &words[text_from..]));
    }
    pieces
}

/// Whether a "title" reads as one: it does not end in a colon (a sentence leading into a
/// list), carries no measured number after its numbering ("error: 10.93 on 10 degrees"), and
/// at least half its words are words (a formula or a line of code is not a title).
fn reads_as_title(words: &[&Word]) -> bool {
    let is_decimal = |t: &str| {
        let t = t.trim_end_matches([',', ';', ')']);
        t.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
        })
    };
    let wordlike = words.iter().filter(|w| w.text.chars().filter(|c| c.is_alphabetic()).count() >= 2).count();
    !words.last().is_some_and(|w| w.text.ends_with(':'))
        && !words.iter().skip(1).any(|w| is_decimal(&w.text))
        && 2 * wordlike >= words.len()
}

/// Most words of a numbered section title set as a line of text.
const MAX_NUMBERED_TITLE_WORDS: usize = 12;

/// A line of text that is a numbered section title the layout model took for text ("6.1
/// Lists", "12.5.1 Graphical elements"): one line, a multi-level section number, at most
/// [`MAX_NUMBERED_TITLE_WORDS`] words, no closing punctuation, and it reads as a title.
fn is_numbered_title_line(words: &[&Word]) -> bool {
    let (Some(first), Some(last)) = (words.first(), words.last()) else { return false };
    let numbered = !first.text.ends_with('.') && section_depth(&first.text).is_some_and(|depth| depth >= 2);
    let one_line = words.iter().all(|w| level(&w.bbox, &first.bbox));
    numbered
        && (2..=MAX_NUMBERED_TITLE_WORDS).contains(&words.len())
        && one_line
        && !last.text.ends_with(['.', ':', ',', ';'])
        && reads_as_title(words)
}

/// A figure's or table's number set on a line of its own ("Figure A1", "Table 2"), as APA
/// style does above the caption: part of the caption, not a section title.
fn is_float_label(words: &[&Word]) -> bool {
    match words {
        [name, number] => {
            matches!(name.text.as_str(), "Figure" | "Fig." | "Table") && number.text.chars().any(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// A table-of-contents line ("1 Introduction . . . . 3"): its dot leader, three dots or more
/// in words of nothing but dots. The layout model calls these titles; they are text.
fn is_contents_entry(words: &[&Word]) -> bool {
    let dots: usize = words.iter().filter(|w| w.text.chars().all(|c| c == '.')).map(|w| w.text.len()).sum();
    dots >= 3
}

/// Each word's layout region, decided a line at a time: the region most of the line's words
/// fall in (a region's box often stops short of its lines' last words, which would
/// otherwise leave the paragraph and be read elsewhere). A line is a run of words, in
/// source order, side by side on one baseline with no wider gap than [`MAX_WORD_GAP`].
fn word_regions(page: &Page) -> Vec<Option<usize>> {
    let own: Vec<Option<usize>> = page.words.iter().map(|w| region_of(page, w)).collect();
    let boxes: Vec<BBox> = page.words.iter().map(|w| page.upright(&w.bbox)).collect();
    let mut regions = own.clone();
    for range in line_ranges(&boxes) {
        let line = &own[range.clone()];
        // Most votes wins; on a tie a region beats none, then the first seen.
        let votes = |r: &Option<usize>| line.iter().filter(|o| *o == r).count();
        let winner = line.iter().copied().rev().max_by_key(|r| (votes(r), r.is_some())).flatten();
        regions[range].fill(winner);
    }
    regions
}

/// `boxes`, in source order, cut into lines: runs in which each box is [`same_line`] as the
/// one before it.
fn line_ranges(boxes: &[BBox]) -> Vec<std::ops::Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for end in 1..=boxes.len() {
        if end == boxes.len() || !same_line(&boxes[end - 1], &boxes[end]) {
            lines.push(start..end);
            start = end;
        }
    }
    lines
}

/// Widest gap between two words of one line, in line heights: wider is a column gutter.
const MAX_WORD_GAP: f32 = 1.5;

/// Whether two boxes stand on one baseline: their vertical middles less than half a line
/// height apart, however far apart across.
fn level(a: &BBox, b: &BBox) -> bool {
    ((a[1] + a[3]) - (b[1] + b[3])).abs() / 2.0 < line_height(a, b) / 2.0
}

fn line_height(a: &BBox, b: &BBox) -> f32 {
    (a[3] - a[1]).max(b[3] - b[1]).max(1.0)
}

/// Whether `b` follows `a` on the same line.
fn same_line(a: &BBox, b: &BBox) -> bool {
    let gap = b[0] - a[2];
    level(a, b) && gap > -line_height(a, b) / 2.0 && gap < MAX_WORD_GAP * line_height(a, b)
}

/// The smallest layout region holding the word's centre (on a tilted scan, both upright).
fn region_of(page: &Page, word: &Word) -> Option<usize> {
    let word = page.upright(&word.bbox);
    page.regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.label != "figure" && centre_in(&word, &page.upright(&r.bbox)))
        .min_by(|a, b| area(&a.1.bbox).total_cmp(&area(&b.1.bbox)))
        .map(|(i, _)| i)
}

/// A heading's level (1 = top): the source's when it gives one, else the depth of its
/// numbering ("2.1 Methods" is 2), else 1.
pub fn heading_level(title: &str, level: Option<u8>) -> usize {
    match level {
        Some(level) => usize::from(level.max(1)),
        None => title.split_whitespace().next().and_then(section_depth).unwrap_or(1),
    }
}

/// The depth of a section number ("2" or "2." is 1, "2.1" is 2); `None` for any other word.
fn section_depth(word: &str) -> Option<usize> {
    let number = word.trim_end_matches('.');
    let numbered =
        !number.is_empty() && number.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    numbered.then(|| number.split('.').count())
}

/// "interac-": a letter, then a hyphen.
pub fn ends_hyphenated(word: &str) -> bool {
    word.strip_suffix('-').is_some_and(|stem| stem.ends_with(char::is_alphabetic))
}

/// Words as running text: a word hyphenated at a line's end is joined with the next line's
/// first word when that starts in lower case ("interac- tion" → "interaction").
pub fn running_text(words: &[(u32, &Word)]) -> String {
    let mut out = String::new();
    for (i, (_, w)) in words.iter().enumerate() {
        let joined = i > 0 && {
            let prev = words[i - 1].1;
            ends_hyphenated(&prev.text) && w.bbox[1] >= prev.bbox[3] - 1.0 && w.text.starts_with(char::is_lowercase)
        };
        if joined {
            out.pop();
        } else if i > 0 {
            out.push(' ');
        }
        out.push_str(&w.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, x: f32, y: f32) -> Word {
        Word { text: text.into(), bbox: [x, y, x + 30.0, y + 10.0], conf: None, bold: false }
    }

    #[test]
    fn line_end_hyphens_join_only_across_lines() {
        let a = word("interac-", 300.0, 100.0);
        let b = word("tion", 50.0, 114.0);
        let c = word("well-", 80.0, 114.0);
        let d = word("known", 120.0, 114.0);
        assert_eq!(running_text(&[(1, &a), (1, &b), (1, &c), (1, &d)]), "interaction well- known");
    }

    #[test]
    fn a_line_sticking_out_of_its_region_stays_in_it() {
        use crate::model::workdir::{Region, TextSource};
        // Two lines of a paragraph whose region stops short of their last words, then a
        // second column's line beyond a gutter, outside every region.
        let words = vec![
            word("first", 10.0, 100.0),
            word("line", 45.0, 100.0),
            word("ends", 80.0, 100.0),
            word("here", 115.0, 100.0),
            word("second", 10.0, 112.0),
            word("line", 45.0, 112.0),
            word("too", 80.0, 112.0),
            word("beyond", 200.0, 112.0),
        ];
        let region = Region { label: "text".into(), bbox: [5.0, 95.0, 100.0, 125.0], score: 0.9, level: None };
        let page = Page {
            number: 1,
            width: 300.0,
            height: 300.0,
            source: TextSource::Ocr,
            words,
            layout_image: None,
            ocr_image: None,
            regions: vec![region],
            ocr_confidence: None,
            ocr_language: None,
            images: Vec::new(),
            skew: None,
            turn: None,
            invisible_text: false,
            layer_agreement: None,
        };
        let texts: Vec<String> = page_blocks(&page).iter().map(|b| running_text(&b.words)).collect();
        assert_eq!(texts, ["first line ends here second line too", "beyond"]);
    }

    #[test]
    fn running_heads_of_a_tilted_scan_read_left_to_right() {
        use crate::model::workdir::{Region, TextSource};
        // Turned 3.6° anticlockwise: the page number at the right end of the running head
        // sits 25 points above its start on the page as scanned.
        let skew = -3.6_f32;
        let at = |text: &str, x: f32, y: f32| {
            let upright = word(text, x, y);
            Word { bbox: crate::model::workdir::turn_box(&upright.bbox, skew, [300.0, 400.0]), ..upright }
        };
        let words =
            vec![at("6", 480.0, 60.0), at("Chapter", 70.0, 60.0), at("One", 110.0, 60.0), at("17", 300.0, 750.0)];
        let boxes: Vec<BBox> = words.iter().map(|w| w.bbox).collect();
        assert!(boxes[0][1] < boxes[1][1] - 20.0, "{boxes:?}");
        let header = |b: BBox| Region { label: "header".into(), bbox: b, score: 0.9, level: None };
        let page = Page {
            number: 1,
            width: 600.0,
            height: 800.0,
            source: TextSource::Ocr,
            regions: vec![
                header(boxes[0]),
                header(union([boxes[1], boxes[2]]).unwrap()),
                Region { label: "footer".into(), ..header(boxes[3]) },
            ],
            words,
            layout_image: None,
            ocr_image: None,
            ocr_confidence: None,
            ocr_language: None,
            images: Vec::new(),
            skew: Some(skew),
            turn: None,
            invisible_text: false,
            layer_agreement: None,
        };
        let texts: Vec<String> = furniture(&page).iter().map(|b| running_text(&b.words)).collect();
        assert_eq!(texts, ["Chapter One", "6", "17"]);
    }

    #[test]
    fn contents_lines_are_not_headings() {
        let entry: Vec<Word> = ["1", "Introduction", ".", ".", ".", "3"].iter().map(|t| word(t, 0.0, 0.0)).collect();
        assert!(is_contents_entry(&entry.iter().collect::<Vec<_>>()));
        let leader = [word("Methods", 0.0, 0.0), word("........", 40.0, 0.0)];
        assert!(is_contents_entry(&leader.iter().collect::<Vec<_>>()));
        let title = [word("Wait...", 0.0, 0.0), word("2.1", 40.0, 0.0), word("Setup.", 80.0, 0.0)];
        assert!(!is_contents_entry(&title.iter().collect::<Vec<_>>()));
    }

    /// Words side by side on one line at y = 100.
    fn line(texts: &[&str]) -> Vec<Word> {
        texts.iter().enumerate().map(|(i, t)| word(t, 40.0 * i as f32, 100.0)).collect()
    }

    #[test]
    fn titles_that_are_sentences_code_or_measurements_are_not_headings() {
        let reads = |texts: &[&str]| reads_as_title(&line(texts).iter().collect::<Vec<_>>());
        assert!(reads(&["11.7.2", "Maximum", "likelihood"]));
        assert!(reads(&["Conditional", "execution:", "if", "statements"]));
        assert!(!reads(&["arguments", "may", "be", "passed", "as", "follows:"]));
        assert!(!reads(&["Residual", "standard", "error:", "10.93", "on", "10", "degrees"]));
        assert!(!reads(&["y", "~", "A*B", "y", "~", "A", "+", "B"]));
    }

    #[test]
    fn a_numbered_line_of_text_is_a_heading() {
        let numbered = |words: &[Word]| is_numbered_title_line(&words.iter().collect::<Vec<_>>());
        assert!(numbered(&line(&["12.5.1", "Graphical", "elements"])));
        assert!(numbered(&line(&["6.3.2", "attach()", "and", "detach()"])));
        assert!(!numbered(&line(&["6", "Lists", "and", "data", "frames"])), "one level: a list item as likely");
        assert!(!numbered(&line(&["2.1", "Setup", "is", "done."])));
        let mut two_lines = line(&["6.1", "Lists"]);
        two_lines.push(word("continue", 0.0, 114.0));
        assert!(!numbered(&two_lines));
    }

    #[test]
    fn bold_title_lines_in_running_text_are_headings() {
        let bold = |t: &str, x: f32, y: f32| Word { bold: true, ..word(t, x, y) };
        let words = [
            bold("Materials", 50.0, 100.0),
            word("Fusce", 50.0, 114.0),
            word("mauris.", 85.0, 114.0),
            // A table's number on a line of its own belongs to its caption.
            bold("Table", 50.0, 128.0),
            bold("2", 85.0, 128.0),
            word("Vestibulum", 50.0, 142.0),
            bold("Discussion", 150.0, 156.0),
            // A bold lead-in word, then a bold sentence: text.
            bold("Note", 50.0, 170.0),
            word("that", 85.0, 170.0),
            bold("A", 50.0, 184.0),
            bold("bold", 85.0, 184.0),
            bold("sentence.", 120.0, 184.0),
        ];
        // A table's header row: bold cells side by side, each a group of its own.
        let header = [bold("Family", 50.0, 300.0), bold("name", 85.0, 300.0), bold("Link", 200.0, 300.0)];
        let refs: Vec<&Word> = words.iter().chain(&header).collect();
        let bold_words: Vec<&Word> = refs.iter().copied().filter(|w| w.bold).collect();
        let row = &refs[words.len()..words.len() + 2];
        assert_eq!(bold_title_pieces(row, &bold_words), [(Kind::Text, row)]);
        let refs = &refs[..words.len()];
        let pieces: Vec<(Kind, String)> = bold_title_pieces(refs, &bold_words)
            .into_iter()
            .map(|(kind, words)| (kind, words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")))
            .collect();
        let expected = [
            (Kind::Heading, "Materials"),
            (Kind::Text, "Fusce mauris. Table 2 Vestibulum"),
            (Kind::Heading, "Discussion"),
            (Kind::Text, "Note that A bold sentence."),
        ];
        assert_eq!(pieces, expected.map(|(k, t)| (k, t.to_string())));
    }

    #[test]
    fn heading_levels_from_source_then_numbering() {
        assert_eq!(heading_level("2.1 Setup", None), 2);
        assert_eq!(heading_level("3. Results", None), 1);
        assert_eq!(heading_level("Introduction", None), 1);
        assert_eq!(heading_level("2.1 Setup", Some(3)), 3);
    }
}
