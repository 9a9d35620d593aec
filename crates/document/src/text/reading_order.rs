//! Reading order: the order a person reads a page's blocks in, whatever order the PDF's
//! content stream or OCR gave them. Multi-column pages read column by column; blocks that
//! span the columns (a title, a wide figure caption, footnotes) are read where they stand.
//!
//! A recursive XY-cut on the blocks' boxes, with one guard against its known failure:
//! 1. an empty vertical band through the whole set splits it into columns, read left to right;
//! 2. else, when the narrow blocks alone leave such a band (a gutter), the wide blocks that
//!    cross it cut the set into horizontal bands, read top to bottom, each cut again; this
//!    keeps a two-column body whose paragraph gaps happen to line up across the gutter from
//!    being read row by row;
//! 3. else every empty horizontal band splits it into rows, read top to bottom;
//! 4. blocks that no band separates keep their source order.

use crate::model::workdir::{BBox, union};

/// Narrowest empty band that separates blocks, in points.
const MIN_GAP: f32 = 3.0;
/// A block narrower than this share of its set's width may sit in a column.
const NARROW: f32 = 0.6;

/// Indices of `boxes` in reading order; `boxes` are given in source order.
pub fn order(boxes: &[BBox]) -> Vec<usize> {
    // Every cut needs boxes with finite, ordered corners to split a set in two non-empty
    // parts (a page file from a hostile PDF may hold an infinite or inverted box).
    let boxes: Vec<BBox> = boxes.iter().map(tidy).collect();
    let mut out = Vec::with_capacity(boxes.len());
    cut(&boxes, (0..boxes.len()).collect(), &mut out);
    out
}

/// The box with each coordinate finite (within ±1e6 points) and its corners in order.
fn tidy(b: &BBox) -> BBox {
    let f = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(-1e6, 1e6) };
    let [x0, y0, x1, y1] = b.map(f);
    [x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)]
}

/// `set` is sorted ascending (source order).
fn cut(boxes: &[BBox], set: Vec<usize>, out: &mut Vec<usize>) {
    if set.len() <= 1 {
        out.extend(set);
        return;
    }
    // 1. Columns, when they stand side by side: two blocks one above the other that no
    // vertical band separates (a centred section title, then a flush-left subtitle) are
    // rows, read top to bottom.
    if let Some(x) = widest_gap(boxes, &set, 0) {
        let (left, right): (Vec<usize>, Vec<usize>) = set.iter().partition(|&&i| boxes[i][2] <= x);
        if side_by_side(boxes, &left, &right) {
            cut(boxes, left, out);
            cut(boxes, right, out);
            return;
        }
    }
    // 2. A gutter between narrow blocks, crossed by wide ones.
    let x0 = set.iter().map(|&i| boxes[i][0]).fold(f32::INFINITY, f32::min);
    let x1 = set.iter().map(|&i| boxes[i][2]).fold(f32::NEG_INFINITY, f32::max);
    let narrow: Vec<usize> = set.iter().copied().filter(|&i| boxes[i][2] - boxes[i][0] < NARROW * (x1 - x0)).collect();
    let crosses = |i: usize, x: f32| boxes[i][0] < x && boxes[i][2] > x;
    // Without a block crossing it, a band would hold the whole set again.
    if let Some(x) = widest_gap(boxes, &narrow, 0).filter(|&x| set.iter().any(|&i| crosses(i, x))) {
        let mut by_top = set.clone();
        by_top.sort_by(|&a, &b| boxes[a][1].total_cmp(&boxes[b][1]).then(a.cmp(&b)));
        let mut band = Vec::new();
        for i in by_top {
            if crosses(i, x) {
                band.sort_unstable();
                cut(boxes, std::mem::take(&mut band), out);
                out.push(i);
            } else {
                band.push(i);
            }
        }
        band.sort_unstable();
        cut(boxes, band, out);
        return;
    }
    // 3. Rows.
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut rest = set;
    while let Some(y) = first_gap(boxes, &rest, 1) {
        let (above, below): (Vec<usize>, Vec<usize>) = rest.iter().partition(|&&i| boxes[i][3] <= y);
        rows.push(above);
        rest = below;
    }
    if rows.is_empty() {
        // 4. Nothing separates them.
        out.extend(rest);
        return;
    }
    rows.push(rest);
    for row in rows {
        cut(boxes, row, out);
    }
}

/// Whether the vertical extents of two sets of blocks overlap.
fn side_by_side(boxes: &[BBox], a: &[usize], b: &[usize]) -> bool {
    let extent = |set: &[usize]| union(set.iter().map(|&i| boxes[i]));
    let (Some(a), Some(b)) = (extent(a), extent(b)) else { return false };
    a[1].max(b[1]) < a[3].min(b[3])
}

/// Middle of the widest empty band (at least [`MIN_GAP`]) between the blocks along `axis`
/// (0 = x, 1 = y).
fn widest_gap(boxes: &[BBox], set: &[usize], axis: usize) -> Option<f32> {
    gaps(boxes, set, axis).max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, mid)| mid)
}

/// Middle of the first empty band along `axis`.
fn first_gap(boxes: &[BBox], set: &[usize], axis: usize) -> Option<f32> {
    gaps(boxes, set, axis).next().map(|(_, mid)| mid)
}

/// Empty bands between the blocks' extents along `axis`, in order: (width, middle).
fn gaps(boxes: &[BBox], set: &[usize], axis: usize) -> impl Iterator<Item = (f32, f32)> {
    let mut spans: Vec<(f32, f32)> = set.iter().map(|&i| (boxes[i][axis], boxes[i][axis + 2])).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut end = f32::NEG_INFINITY;
    let mut out = Vec::new();
    for (start, stop) in spans {
        if end.is_finite() && start - end >= MIN_GAP {
            out.push((start - end, (start + end) / 2.0));
        }
        end = end.max(stop);
    }
    out.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-column page: a title across both columns, then three paragraphs a side whose
    /// gaps line up across the gutter at y 300–310, then a footnote across both.
    fn two_columns() -> Vec<BBox> {
        vec![
            [300.0, 310.0, 540.0, 500.0], // 0 right, lower
            [72.0, 100.0, 290.0, 300.0],  // 1 left, upper
            [72.0, 60.0, 540.0, 80.0],    // 2 title
            [300.0, 100.0, 540.0, 300.0], // 3 right, upper
            [72.0, 700.0, 540.0, 720.0],  // 4 footnote
            [72.0, 310.0, 290.0, 500.0],  // 5 left, lower
            [72.0, 520.0, 290.0, 600.0],  // 6 left, bottom
        ]
    }

    /// Found by `scripts/fuzz.sh page-json`: a word box whose top was 1e39 (infinite as
    /// f32) made the cuts recurse until the stack overflowed.
    #[test]
    fn infinite_nan_and_inverted_boxes_still_get_an_order() {
        let mut boxes = two_columns();
        boxes[1] = [72.0, f32::INFINITY, 80.0, 226.0];
        boxes[3] = [f32::NAN, 100.0, 540.0, f32::NEG_INFINITY];
        boxes[5] = [290.0, 500.0, 72.0, 310.0];
        let mut order = order(&boxes);
        order.sort_unstable();
        assert_eq!(order, (0..boxes.len()).collect::<Vec<_>>());
    }

    #[test]
    fn columns_read_one_after_the_other_between_wide_blocks() {
        assert_eq!(order(&two_columns()), [2, 1, 5, 6, 3, 0, 4]);
    }

    #[test]
    fn a_single_column_reads_top_to_bottom() {
        let boxes = [[72.0, 300.0, 540.0, 400.0], [72.0, 100.0, 200.0, 120.0], [72.0, 130.0, 540.0, 290.0]];
        assert_eq!(order(&boxes), [1, 2, 0]);
    }

    #[test]
    fn side_by_side_blocks_read_left_to_right() {
        let boxes = [[320.0, 100.0, 540.0, 120.0], [72.0, 100.0, 290.0, 120.0]];
        assert_eq!(order(&boxes), [1, 0]);
    }

    #[test]
    fn a_centred_title_above_a_flush_left_one_reads_first() {
        // An APA paper's "Method" (centred), then "Participants" (flush left) below it, in
        // either source order; no vertical band holds them side by side.
        let method = [284.0, 540.0, 329.0, 551.0];
        let participants = [72.0, 568.0, 143.0, 578.0];
        assert_eq!(order(&[participants, method]), [1, 0]);
        assert_eq!(order(&[method, participants]), [0, 1]);
    }

    #[test]
    fn a_gutter_no_block_crosses_falls_through_to_rows() {
        // The narrow blocks leave a 4 pt gutter around x = 102; the wide block above ends
        // at 101.5, inside it, so nothing crosses the gutter's middle.
        let boxes = [[0.0, 20.0, 100.0, 30.0], [0.0, 0.0, 101.5, 10.0], [104.0, 20.0, 168.0, 30.0]];
        assert_eq!(order(&boxes), [1, 0, 2]);
    }

    #[test]
    fn overlapping_blocks_keep_source_order() {
        let boxes = [[100.0, 100.0, 300.0, 200.0], [72.0, 90.0, 250.0, 210.0], [80.0, 150.0, 500.0, 160.0]];
        assert_eq!(order(&boxes), [0, 1, 2]);
    }
}
