//! Words as study material compares them: normalised (lower case, surrounding punctuation
//! trimmed), stop-words, and phrases found word by word.

const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "as",
    "at",
    "be",
    "by",
    "do",
    "if",
    "in",
    "is",
    "it",
    "of",
    "on",
    "or",
    "so",
    "to",
    "up",
    "we",
    "no",
    "the",
    "and",
    "for",
    "are",
    "but",
    "not",
    "you",
    "all",
    "any",
    "can",
    "had",
    "her",
    "was",
    "one",
    "our",
    "out",
    "has",
    "have",
    "been",
    "this",
    "that",
    "with",
    "from",
    "they",
    "will",
    "would",
    "there",
    "their",
    "what",
    "which",
    "when",
    "where",
    "who",
    "whom",
    "into",
    "than",
    "then",
    "them",
    "these",
    "those",
    "some",
    "such",
    "only",
    "other",
    "also",
    "more",
    "most",
    "very",
    "just",
    "over",
    "each",
    "about",
    "after",
    "before",
    "between",
    "both",
    "does",
    "doing",
    "during",
    "here",
    "its",
    "itself",
    "may",
    "might",
    "must",
    "should",
    "could",
    "being",
    "were",
    "while",
    "your",
    "yours",
    "how",
    "why",
    "use",
    "used",
    "using",
    "his",
    "she",
    "him",
    "because",
    "same",
    "many",
    "much",
    "own",
    "per",
    "via",
    "etc",
    "see",
    "upon",
    "within",
    "without",
    "shall",
    "let",
    "like",
    "new",
    "two",
    "three",
    "first",
    "second",
    "however",
    "thus",
    "therefore",
    "given",
    "following",
    "section",
    "figure",
    "table",
    "page",
    "example",
    "e.g",
    "i.e",
    "et",
    "al",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Lower-case word without surrounding punctuation.
pub fn normalize(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

/// Words of `text`, normalised; empty strings dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(normalize).filter(|w| !w.is_empty()).collect()
}

/// Position of `phrase` as consecutive words in `words`.
pub fn find_phrase(words: &[String], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > words.len() {
        return None;
    }
    (0..=words.len() - phrase.len()).find(|&i| words[i..i + phrase.len()] == *phrase)
}

/// A text as its normalised words joined by single spaces: how items are compared for
/// repeats.
pub fn normalize_text(s: &str) -> String {
    s.split_whitespace().map(normalize).collect::<Vec<_>>().join(" ")
}
