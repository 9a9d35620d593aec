//! Document type by embeddings: the document's mean chunk vector against a vector per label
//! description (from `[classify]` in `jobs/pipeline.toml`); the closest label wins when its
//! cosine similarity reaches the threshold, otherwise the type is `other`.

use crate::engines::embedder::normalise;
use crate::model::chunk::Chunk;

pub const OTHER: &str = "other";

/// Label vectors, embedded once per process.
pub struct Labels {
    pub names: Vec<String>,
    pub vectors: Vec<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub label: String,
    /// Cosine similarity of the document to the chosen label (to the best label for `other`).
    pub score: f32,
}

/// The document vector is the token-weighted mean of its chunk vectors.
pub fn classify(labels: &Labels, chunks: &[Chunk], vectors: &[Vec<f32>], threshold: f32) -> Class {
    let Some(dim) = vectors.first().map(Vec::len) else {
        return Class { label: OTHER.into(), score: 0.0 };
    };
    let mut doc = vec![0.0f32; dim];
    for (chunk, v) in chunks.iter().zip(vectors) {
        let w = chunk.tokens.max(1) as f32;
        doc.iter_mut().zip(v).for_each(|(d, x)| *d += w * x);
    }
    normalise(&mut doc);
    let best = labels
        .names
        .iter()
        .zip(&labels.vectors)
        .map(|(name, v)| (name, v.iter().zip(&doc).map(|(a, b)| a * b).sum::<f32>()))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((name, score)) if score >= threshold => Class { label: name.clone(), score },
        Some((_, score)) => Class { label: OTHER.into(), score },
        None => Class { label: OTHER.into(), score: 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(tokens: u32) -> Chunk {
        Chunk {
            id: String::new(),
            document_id: String::new(),
            index: 0,
            page: 1,
            bbox: [0.0; 4],
            spans: vec![],
            heading_path: vec![],
            figures: vec![],
            tokens,
            text: String::new(),
        }
    }

    #[test]
    fn closest_label_wins_and_weak_matches_are_other() {
        let labels =
            Labels { names: vec!["paper".into(), "invoice".into()], vectors: vec![vec![1.0, 0.0], vec![0.0, 1.0]] };
        let c = classify(&labels, &[chunk(10), chunk(1)], &[vec![1.0, 0.0], vec![0.0, 1.0]], 0.5);
        assert_eq!(c.label, "paper");
        assert!(c.score > 0.9);
        let c = classify(&labels, &[chunk(1)], &[vec![-1.0, 0.0]], 0.5);
        assert_eq!(c.label, OTHER);
    }
}
