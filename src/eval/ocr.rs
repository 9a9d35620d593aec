//! `lectern eval ocr`: OCR quality and OCR decisions on real pages.
//!
//! - Character error rate: born-digital pages are rendered to 300-DPI images and OCR'd;
//!   their own text layer is the reference.
//! - Decisions: every page of every PDF under the corpus goes through the render stage's
//!   text-layer test; pages of files the manifest lists without a text layer must go to
//!   OCR, pages of born-digital files must not.

/// Character error rate: edit distance between the whitespace-normalised texts over the
/// reference's length (0 = identical).
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect::<Vec<char>>();
    let (r, h) = (norm(reference), norm(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hc) in h.iter().enumerate() {
            let substitute = diagonal + usize::from(rc != hc);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_counts_edits_over_reference_length() {
        assert_eq!(cer("hello  world", "hello world"), 0.0);
        assert_eq!(cer("abcd", "abed"), 0.25);
        assert_eq!(cer("abcd", "abcdxy"), 0.5);
        assert_eq!(cer("", ""), 0.0);
        assert_eq!(cer("ab", ""), 1.0);
    }
}
