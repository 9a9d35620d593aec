//! A table region's words as rows of cells: lines by vertical position, each read left to
//! right; cells split at `|` words (how DOCX/PPTX tables are laid out) or else at gaps
//! wider than the line's height.

use crate::model::workdir::Word;

pub fn rows(words: &[(u32, &Word)]) -> Vec<Vec<String>> {
    let mut sorted: Vec<&Word> = words.iter().map(|w| w.1).collect();
    sorted.sort_by(|a, b| centre_y(a).total_cmp(&centre_y(b)));
    let mut lines: Vec<Vec<&Word>> = Vec::new();
    for word in sorted {
        match lines.last_mut() {
            Some(line) if centre_y(word) <= line.iter().map(|w| w.bbox[3]).fold(f32::MIN, f32::max) => line.push(word),
            _ => lines.push(vec![word]),
        }
    }
    let mut rows: Vec<Vec<String>> = lines
        .into_iter()
        .map(|mut line| {
            line.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
            cells(&line)
        })
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    for row in &mut rows {
        row.resize(columns, String::new());
    }
    rows
}

fn centre_y(w: &Word) -> f32 {
    (w.bbox[1] + w.bbox[3]) / 2.0
}

fn cells(line: &[&Word]) -> Vec<String> {
    let piped = line.iter().any(|w| w.text == "|");
    let mut cells: Vec<Vec<&str>> = vec![Vec::new()];
    for (i, w) in line.iter().enumerate() {
        let new_cell = if piped {
            w.text == "|"
        } else {
            i > 0 && w.bbox[0] - line[i - 1].bbox[2] > (w.bbox[3] - w.bbox[1]).max(4.0)
        };
        if new_cell {
            cells.push(Vec::new());
        }
        if !(piped && w.text == "|") {
            cells.last_mut().expect("one cell at least").push(&w.text);
        }
    }
    cells.into_iter().map(|c| c.join(" ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, x: f32, y: f32) -> Word {
        Word { text: text.into(), bbox: [x, y, x + 6.0 * text.len() as f32, y + 10.0], conf: None, bold: false }
    }

    #[test]
    fn cells_from_gaps_and_rows_from_lines() {
        // Source order column by column, as some PDFs give it.
        let words = [
            word("Name", 50.0, 100.0),
            word("Ada", 50.0, 114.0),
            word("Total", 150.0, 100.0),
            word("cost", 182.0, 100.0),
            word("42", 150.0, 114.0),
        ];
        let words: Vec<(u32, &Word)> = words.iter().map(|w| (1, w)).collect();
        assert_eq!(rows(&words), vec![vec!["Name", "Total cost"], vec!["Ada", "42"]]);
    }

    #[test]
    fn pipes_split_office_tables_and_short_rows_are_padded() {
        let words = [word("a", 50.0, 100.0), word("|", 58.0, 100.0), word("b", 66.0, 100.0), word("c", 50.0, 114.0)];
        let words: Vec<(u32, &Word)> = words.iter().map(|w| (1, w)).collect();
        assert_eq!(rows(&words), vec![vec!["a", "b"], vec!["c", ""]]);
    }
}
