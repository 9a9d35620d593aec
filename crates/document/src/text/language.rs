//! A document's language: detected (whichlang: 16 languages, among them all those set-up
//! installs tesseract data for) from its text layer or from a first OCR pass, recorded on
//! the document, and used to pick the tesseract language data for OCR.

use std::path::PathBuf;

/// Fewer letters than this say too little about the language.
const MIN_LETTERS: usize = 80;

/// The language of `text` as an ISO 639-3 code (`eng`, `fra`, …), when the text is long
/// enough and the answer is stable: the whole text and at least two of its thirds must
/// agree (garbage from a bad OCR pass and mixed-language text do not).
pub fn detect(text: &str) -> Option<&'static str> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let whole = whichlang::detect_language(text);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let cut = |k: usize| chars.get(k * chars.len() / 3).map_or(text.len(), |(i, _)| *i);
    let agreeing = (0..3).filter(|&k| whichlang::detect_language(&text[cut(k)..cut(k + 1)]) == whole).count();
    (agreeing >= 2).then(|| whole.three_letter_code())
}

/// Directories tesseract may read language data from: `TESSDATA_PREFIX`, then Debian's.
fn tessdata_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("TESSDATA_PREFIX").map(PathBuf::from).into_iter().collect();
    dirs.extend(["/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata"].map(PathBuf::from));
    dirs
}

/// Whether tesseract has language data for `code` (whichlang's and tesseract's codes agree
/// for the languages set-up installs).
pub fn ocr_installed(code: &str) -> bool {
    tessdata_dirs().iter().any(|dir| dir.join(format!("{code}.traineddata")).is_file())
}

/// Whether a page read with tesseract languages `used` (e.g. `eng+fra`) should be read
/// again in `found`, the language its text turned out to be in.
pub fn should_reread(used: &str, found: &str) -> bool {
    !used.split('+').any(|l| l == found) && ocr_installed(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_reliable_languages_only() {
        let fr = "La reconnaissance optique de caractères désigne les procédés informatiques pour la \
                  traduction d'images de textes imprimés ou dactylographiés en fichiers de texte.";
        let en = "Optical character recognition is the electronic conversion of images of typed, \
                  handwritten or printed text into machine-encoded text, from a scanned document.";
        assert_eq!(detect(fr), Some("fra"));
        assert_eq!(detect(en), Some("eng"));
        assert_eq!(detect("Bonjour"), None, "too short to say");
        assert!(!should_reread("eng", "eng"));
        assert!(!should_reread("eng+fra", "fra"));
        assert!(!should_reread("eng", "xyz"), "no language data for it");
    }
}
