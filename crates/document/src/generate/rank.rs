//! Ranking over embeddings: sentence centrality (TextRank on the cosine-similarity graph,
//! Mihalcea & Tarau 2004), diverse selection (maximal marginal relevance, Carbonell &
//! Goldstein 1998), and a term's nearest neighbours (quiz distractors).

/// Dot product of two unit vectors: their cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Above this many sentences the full similarity graph costs too much (quadratic):
/// centrality is then the similarity to the document's centroid (Radev et al., 2004).
pub const TEXTRANK_MAX: usize = 2500;

/// PageRank over the graph whose edge weights are positive cosine similarities.
/// Scores sum to 1; a document of one sentence gets `[1.0]`.
pub fn textrank(vectors: &[Vec<f32>]) -> Vec<f32> {
    let n = vectors.len();
    if n == 0 {
        return Vec::new();
    }
    if n > TEXTRANK_MAX {
        return centroid_similarity(vectors);
    }
    let mut weights = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let w = cosine(&vectors[i], &vectors[j]).max(0.0);
            weights[i * n + j] = w;
            weights[j * n + i] = w;
        }
    }
    let out_sum: Vec<f32> = (0..n).map(|i| weights[i * n..(i + 1) * n].iter().sum()).collect();
    let damping = 0.85;
    let mut score = vec![1.0 / n as f32; n];
    for _ in 0..50 {
        let mut next = vec![(1.0 - damping) / n as f32; n];
        for j in 0..n {
            if out_sum[j] == 0.0 {
                // A sentence like no other spreads its score evenly.
                let share = damping * score[j] / n as f32;
                next.iter_mut().for_each(|x| *x += share);
                continue;
            }
            let share = damping * score[j] / out_sum[j];
            for (i, x) in next.iter_mut().enumerate() {
                *x += share * weights[j * n + i];
            }
        }
        let delta: f32 = next.iter().zip(&score).map(|(a, b)| (a - b).abs()).sum();
        score = next;
        if delta < 1e-6 {
            break;
        }
    }
    score
}

/// Cosine similarity of each vector to the mean of all (clamped at 0), scaled to sum to 1.
pub fn centroid_similarity(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors[0].len();
    let mut centroid = vec![0f32; dim];
    for v in vectors {
        centroid.iter_mut().zip(v).for_each(|(c, x)| *c += x);
    }
    let norm = centroid.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    centroid.iter_mut().for_each(|c| *c /= norm);
    let sims: Vec<f32> = vectors.iter().map(|v| cosine(v, &centroid).max(0.0)).collect();
    let total = sims.iter().sum::<f32>().max(1e-12);
    sims.into_iter().map(|s| s / total).collect()
}

/// Picks up to `k` of `candidates` by maximal marginal relevance: each pick maximises
/// `lambda * relevance - (1 - lambda) * (highest similarity to what is already picked)`.
pub fn mmr(candidates: &[usize], relevance: &[f32], vectors: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    let max_rel = candidates.iter().map(|&i| relevance[i]).fold(f32::MIN_POSITIVE, f32::max);
    let mut picked: Vec<usize> = Vec::new();
    // (candidate, its highest similarity to a pick so far)
    let mut left: Vec<(usize, f32)> = candidates.iter().map(|&i| (i, 0.0)).collect();
    while picked.len() < k && !left.is_empty() {
        let value = |&(i, redundancy): &(usize, f32)| lambda * relevance[i] / max_rel - (1.0 - lambda) * redundancy;
        let (pos, _) = left
            .iter()
            .enumerate()
            .max_by(|a, b| value(a.1).total_cmp(&value(b.1)).then(b.1.0.cmp(&a.1.0)))
            .expect("not empty");
        let (new, _) = left.swap_remove(pos);
        picked.push(new);
        for (i, redundancy) in &mut left {
            *redundancy = redundancy.max(cosine(&vectors[*i], &vectors[new]));
        }
    }
    picked
}

/// Indices of `values`, highest value first (ties: lower index first).
pub fn descending(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order
}

/// Indices of `vectors` most similar to `vectors[of]`, best first, among those `allowed`.
pub fn neighbours(of: usize, vectors: &[Vec<f32>], allowed: impl Fn(usize, f32) -> bool) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> = (0..vectors.len())
        .filter(|&i| i != of)
        .map(|i| (i, cosine(&vectors[of], &vectors[i])))
        .filter(|&(i, sim)| allowed(i, sim))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn central_sentences_rank_first_and_mmr_avoids_repeats() {
        // Three near-identical sentences and one outlier: the cluster is central.
        let v = vec![unit(&[1.0, 0.1, 0.0]), unit(&[1.0, 0.0, 0.1]), unit(&[1.0, 0.05, 0.05]), unit(&[0.0, 0.0, 1.0])];
        let r = textrank(&v);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-3);
        assert!(r[2] > r[3] && r[0] > r[3]);
        // MMR with a low lambda takes one of the cluster, then the outlier.
        let picked = mmr(&[0, 1, 2, 3], &r, &v, 2, 0.3);
        assert!(picked.contains(&3), "{picked:?}");
        assert_eq!(neighbours(0, &v, |_, _| true)[0], 2);
        let c = centroid_similarity(&v);
        assert!(c[2] > c[3] && (c.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    }
}
