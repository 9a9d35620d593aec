//! Markdown, and plain text (the same reading order without markup; pages separated by a
//! form feed, like `pdftotext`).

use std::io::{self, Write};

use super::{Headings, PageWriter, Source, figure_file, page_figures, table};
use crate::model::workdir::{Page, Word};
use crate::text::blocks::{Block, Kind, running_text};

pub struct Writer<'a> {
    source: &'a Source<'a>,
    plain: bool,
}

impl<'a> Writer<'a> {
    pub fn new(source: &'a Source<'a>, plain: bool) -> Self {
        Self { source, plain }
    }

    fn figure(&self, out: &mut dyn Write, figure: &lectern_queue::storage::Figure) -> io::Result<()> {
        if self.plain {
            return Ok(());
        }
        let (page, n, file) = (figure.page, figure.idx + 1, figure_file(figure));
        writeln!(out, "![Figure {page}.{n}]({}{file})\n", self.source.figure_base)
    }

    fn block(&self, out: &mut dyn Write, block: &Block, headings: &mut Headings) -> io::Result<()> {
        if block.kind == Kind::Table {
            return self.table(out, &table::rows(&block.words));
        }
        let text = running_text(&block.words);
        let level = (block.kind == Kind::Heading).then(|| headings.enter(&text, block.level));
        if self.plain {
            return writeln!(out, "{text}\n");
        }
        match (block.kind, level) {
            (Kind::Heading, Some(level)) => writeln!(out, "{} {text}\n", "#".repeat(level.min(6))),
            (Kind::Caption, _) => writeln!(out, "*{text}*\n"),
            (Kind::Notes, _) => writeln!(out, "> {text}\n"),
            _ => match list_items(&block.words) {
                Some(items) => {
                    for (marker, words) in items {
                        writeln!(out, "{marker} {}", running_text(words))?;
                    }
                    writeln!(out)
                }
                None => writeln!(out, "{}\n", escape_start(&text)),
            },
        }
    }

    /// A GitHub table (its first row the header), or tab-separated rows in plain text.
    fn table(&self, out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
        for (i, row) in rows.iter().enumerate() {
            if self.plain {
                writeln!(out, "{}", row.join("\t"))?;
                continue;
            }
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
            if i == 0 {
                writeln!(out, "|{}", " --- |".repeat(row.len()))?;
            }
        }
        writeln!(out)
    }
}

impl PageWriter for Writer<'_> {
    fn start(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn page(
        &mut self,
        out: &mut dyn Write,
        index: usize,
        page: &Page,
        blocks: &[Block],
        headings: &mut Headings,
    ) -> io::Result<()> {
        if self.plain {
            if index > 0 {
                write!(out, "\x0c")?;
            }
        } else {
            writeln!(out, "<!-- page {} -->\n", page.number)?;
        }
        let mut figures = page_figures(self.source.figures, page.number).into_iter().peekable();
        for block in blocks {
            let top = block.bbox[1];
            while let Some(figure) = figures.next_if(|f| f.bbox[1] as f32 <= top) {
                self.figure(out, figure)?;
            }
            self.block(out, block, headings)?;
        }
        for figure in figures {
            self.figure(out, figure)?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// A paragraph that starts the way a heading or a quote does (an R comment "## then …",
/// a shell prompt "> ls") gets a backslash, so Markdown keeps it a paragraph.
fn escape_start(text: &str) -> String {
    if text.starts_with(['#', '>']) { format!("\\{text}") } else { text.to_string() }
}

/// A list item: its Markdown marker and its words (the bullet or number left out).
type ListItem<'w, 'a> = (String, &'w [(u32, &'a Word)]);

/// Bullets that open a list item.
const BULLETS: [&str; 11] = ["•", "◦", "▪", "‣", "●", "○", "■", "–", "-", "*", "·"];

/// A block that starts with a bullet or an item number ("1.", "2)") as list items: split
/// where such a marker starts a line. Bullets become `-`, numbers `N.`.
fn list_items<'w, 'a>(words: &'w [(u32, &'a Word)]) -> Option<Vec<ListItem<'w, 'a>>> {
    let marker = |w: &Word| -> Option<String> {
        if BULLETS.contains(&w.text.as_str()) {
            return Some("-".into());
        }
        let number = w.text.strip_suffix(['.', ')'])?;
        (!number.is_empty() && number.len() <= 3 && number.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{number}."))
    };
    marker(words.first()?.1)?;
    let mut starts = Vec::new();
    for (i, (_, w)) in words.iter().enumerate() {
        let line_start = i == 0 || w.bbox[1] >= words[i - 1].1.bbox[3] - 1.0;
        if line_start && let Some(m) = marker(w) {
            starts.push((i, m));
        }
    }
    let items = starts
        .iter()
        .enumerate()
        .map(|(k, (i, m))| {
            let end = starts.get(k + 1).map_or(words.len(), |(next, _)| *next);
            (m.clone(), &words[i + 1..end])
        })
        .filter(|(_, words)| !words.is_empty())
        .collect();
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[&str], y: f32) -> Vec<Word> {
        words
            .iter()
            .enumerate()
            .map(|(i, t)| Word {
                text: (*t).into(),
                bbox: [50.0 + 30.0 * i as f32, y, 75.0 + 30.0 * i as f32, y + 10.0],
                conf: None,
                bold: false,
            })
            .collect()
    }

    #[test]
    fn bullets_and_numbers_split_at_line_starts() {
        let mut words = line(&["•", "first", "item"], 100.0);
        words.extend(line(&["wraps", "-", "here"], 114.0));
        words.extend(line(&["•", "second"], 128.0));
        let words: Vec<(u32, &Word)> = words.iter().map(|w| (1, w)).collect();
        let items = list_items(&words).expect("a list");
        let texts: Vec<(String, String)> = items.iter().map(|(m, w)| (m.clone(), running_text(w))).collect();
        assert_eq!(texts, vec![("-".into(), "first item wraps - here".into()), ("-".into(), "second".into())]);

        let numbered = line(&["2)", "two"], 100.0);
        let numbered: Vec<(u32, &Word)> = numbered.iter().map(|w| (1, w)).collect();
        assert_eq!(list_items(&numbered).expect("a list")[0].0, "2.");
        let prose = line(&["2021", "was", "a", "year."], 100.0);
        let prose: Vec<(u32, &Word)> = prose.iter().map(|w| (1, w)).collect();
        assert!(list_items(&prose).is_none());
    }

    #[test]
    fn a_paragraph_that_starts_like_a_heading_or_quote_stays_a_paragraph() {
        assert_eq!(escape_start("## then the same function"), "\\## then the same function");
        assert_eq!(escape_start("> search()"), "\\> search()");
        assert_eq!(escape_start("C# is a language"), "C# is a language");
    }
}
