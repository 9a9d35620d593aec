//! Deskew: the tilt of a scanned page's text lines, found from the image, and the image
//! turned upright before OCR.
//!
//! The tilt is found by projection profiles, as leptonica's `pixFindSkew` does: the ink
//! of a reduced, thresholded copy of the page is summed along rows slanted by each candidate
//! angle; at the lines' own slant the rows fall exactly on lines and gaps, so the profile's
//! jumps (sum of squared differences of neighbouring rows) are largest. A coarse sweep,
//! then a fine one around its best. A page without that peak (a photo, a drawing, a few
//! words) has no tilt.
//!
//! Angles are degrees, positive when lines descend to the right (clockwise on screen, with
//! y pointing down as in images and the page model).

/// Largest tilt looked for, either way.
pub const MAX_DEGREES: f32 = 8.0;

/// Tilts smaller than this are left alone: tesseract reads them as they are.
pub const MIN_DEGREES: f32 = 0.3;

const COARSE_STEP: f32 = 0.2;
const FINE_STEP: f32 = 0.02;

/// Pixels darker than this count as ink.
const INK: u8 = 128;

/// The profile's best score must beat its worst by this much for the peak to be lines
/// (leptonica's minimum confidence). Text pages score 60 to 80; noise about 2, from the
/// page's own edges.
pub const MIN_PEAK_RATIO: f64 = 3.0;

/// Fewer ink cells than this and there is no text to measure.
const MIN_INK: usize = 500;

/// Width of the reduced copy the profiles are taken on (about 75 DPI for a letter page).
const REDUCED_WIDTH: u32 = 700;

/// The tilt of `grey`'s text lines (`width * height` bytes, row-major), or `None` when the
/// page shows no clear lines.
pub fn find_skew(grey: &[u8], width: u32, height: u32) -> Option<f32> {
    lines(grey, width, height).skew()
}

/// A page's ink measured for text lines. Clarity is the peak ratio of a profile's coarse
/// sweep: text lines score 10 to 100 along themselves, 2 to 5 across; 0 where there is too
/// little ink to tell.
pub struct Lines {
    ink: Vec<(u32, u32)>,
    /// The coarse sweep's best slant along the rows.
    coarse: f32,
    /// How clearly lines run along the rows.
    pub rows: f64,
}

/// Measures `grey` (`width * height` bytes) for [`Lines`].
pub fn lines(grey: &[u8], width: u32, height: u32) -> Lines {
    let ink = ink_cells(grey, width, height);
    let (coarse, rows) = Profile::new(&ink).map_or((0.0, 0.0), |mut p| p.sweep());
    Lines { ink, coarse, rows }
}

impl Lines {
    /// How clearly lines run along the columns (a page on its side).
    pub fn columns(&self) -> f64 {
        let across: Vec<(u32, u32)> = self.ink.iter().map(|&(x, y)| (y, x)).collect();
        Profile::new(&across).map_or(0.0, |mut p| p.sweep().1)
    }

    /// The tilt of the lines along the rows (a fine sweep around the coarse one's best), or
    /// `None` when they are not clear.
    pub fn skew(&self) -> Option<f32> {
        if self.rows < MIN_PEAK_RATIO {
            return None;
        }
        let mut profile = Profile::new(&self.ink)?;
        let fine = (COARSE_STEP / FINE_STEP).round() as i32;
        let (degrees, _) = (-fine..=fine)
            .map(|k| self.coarse + k as f32 * FINE_STEP)
            .map(|d| (d, profile.score(d)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(degrees)
    }
}

/// Cells of a reduced grid (about [`REDUCED_WIDTH`] wide) holding a pixel darker than
/// [`INK`], as (column, row).
fn ink_cells(grey: &[u8], width: u32, height: u32) -> Vec<(u32, u32)> {
    let (w, h) = (width as usize, height as usize);
    if grey.len() < w * h || w == 0 {
        return Vec::new();
    }
    let r = (width / REDUCED_WIDTH).max(1) as usize;
    let mut cells = Vec::new();
    for cy in 0..h / r {
        for cx in 0..w / r {
            let dark = (cy * r..cy * r + r).any(|y| grey[y * w + cx * r..y * w + cx * r + r].iter().any(|&p| p < INK));
            if dark {
                cells.push((cx as u32, cy as u32));
            }
        }
    }
    cells
}

/// Row sums of ink along slanted rows, reusing one buffer across angles.
struct Profile<'a> {
    ink: &'a [(u32, u32)],
    /// Rows added above and below so that every slant stays inside `bins`.
    slack: f32,
    bins: Vec<u32>,
}

impl<'a> Profile<'a> {
    /// `None` when there are too few ink cells to measure.
    fn new(ink: &'a [(u32, u32)]) -> Option<Self> {
        if ink.len() < MIN_INK {
            return None;
        }
        let rows = ink.iter().map(|&(_, y)| y).max().unwrap_or(0) as usize + 1;
        let cols = ink.iter().map(|&(x, _)| x).max().unwrap_or(0) as usize + 1;
        let slack = (cols as f32 * MAX_DEGREES.to_radians().tan()).ceil() + 2.0;
        Some(Self { ink, slack, bins: vec![0; rows + 2 * slack as usize] })
    }

    /// The coarse sweep: the best slant and how much its score beats the worst's.
    fn sweep(&mut self) -> (f32, f64) {
        let steps = (MAX_DEGREES / COARSE_STEP).round() as i32;
        let scores: Vec<(f32, f64)> =
            (-steps..=steps).map(|k| k as f32 * COARSE_STEP).map(|d| (d, self.score(d))).collect();
        let worst = scores.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let (best, top) = scores.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0.0, 0.0));
        (best, if worst > 0.0 { top / worst } else { 0.0 })
    }

    /// Sum of squared differences of neighbouring slanted rows at `degrees`.
    fn score(&mut self, degrees: f32) -> f64 {
        self.bins.fill(0);
        let slope = degrees.to_radians().tan();
        let last = self.bins.len() - 1;
        for &(x, y) in self.ink {
            // The row a cell falls in once the lines are turned level.
            let row = (y as f32 - slope * x as f32 + self.slack).round().max(0.0) as usize;
            self.bins[row.min(last)] += 1;
        }
        self.bins.windows(2).map(|w| (f64::from(w[1]) - f64::from(w[0])).powi(2)).sum()
    }
}

/// An image of `C` bytes per pixel (`width * height * C`, row-major) turned by `degrees`
/// about its centre (positive: clockwise on screen), the same size, white where no pixel of
/// the source lands. Bicubic: bilinear blurs small print enough that tesseract lost the
/// numbers of a numbered list on a page turned 2.4° (scans bench).
pub fn rotate<const C: usize>(pixels: &[u8], width: u32, height: u32, degrees: f32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let stride = w * C;
    let mut out = vec![255u8; h * stride];
    if w == 0 || h == 0 || pixels.len() < h * stride {
        return out;
    }
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    // Weights for fractions in steps of 1/STEPS, computed once.
    let weights: Vec<[f32; 4]> = (0..=STEPS).map(|i| cubic_weights(i as f32 / STEPS as f32)).collect();
    let weights_at = |t: f32| weights[(t * STEPS as f32).round() as usize];
    for (y, row) in out.chunks_exact_mut(stride).enumerate() {
        let dy = y as f32 - cy;
        for (x, px) in row.chunks_exact_mut(C).enumerate() {
            let dx = x as f32 - cx;
            // The source pixel that turning by `degrees` brings here: turned back.
            let (sx, sy) = (cx + dx * cos + dy * sin, cy - dx * sin + dy * cos);
            if sx < 0.0 || sy < 0.0 || sx > (w - 1) as f32 || sy > (h - 1) as f32 {
                continue;
            }
            let (x0, y0) = (sx as usize, sy as usize);
            // Source columns and rows x0-1 ..= x0+2, clamped at the edges.
            let xs = [x0.saturating_sub(1), x0, (x0 + 1).min(w - 1), (x0 + 2).min(w - 1)].map(|x| x * C);
            let rows = [y0.saturating_sub(1), y0, (y0 + 1).min(h - 1), (y0 + 2).min(h - 1)]
                .map(|y| &pixels[y * stride..(y + 1) * stride]);
            // Paper stays paper (most of a page; the weights add up to one).
            if rows.iter().all(|r| xs.iter().all(|&x| r[x..x + C].iter().all(|&v| v == 255))) {
                continue;
            }
            let (wx, wy) = (weights_at(sx - x0 as f32), weights_at(sy - y0 as f32));
            for (c, v) in px.iter_mut().enumerate() {
                let mut sum = 0.0;
                for (r, ky) in rows.iter().zip(wy) {
                    sum += ky * (0..4).map(|i| f32::from(r[xs[i] + c]) * wx[i]).sum::<f32>();
                }
                *v = sum.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Fractions of a pixel the interpolation tells apart.
const STEPS: usize = 64;

/// Weights of the four samples at offsets -1, 0, 1, 2 for a point `t` (0..1) past the
/// second: the cubic convolution kernel with a = -0.5 (Keys; PIL's bicubic).
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.5;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> image::GrayImage {
        // The first page of the TIFF fixture: a 300-DPI scan of a text page.
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pages.tiff")).unwrap().to_luma8()
    }

    #[test]
    fn a_level_page_has_no_tilt_worth_turning() {
        let page = page();
        let found = find_skew(page.as_raw(), page.width(), page.height());
        assert!(found.is_none_or(|d| d.abs() < MIN_DEGREES), "{found:?}");
    }

    #[test]
    fn the_tilt_of_a_turned_page_is_found_either_way() {
        let page = page();
        // The scan itself leans a little (0.18°); turning adds to that.
        let own = find_skew(page.as_raw(), page.width(), page.height()).unwrap_or(0.0);
        for degrees in [-6.5, -2.0, 0.8, 3.0] {
            let turned = rotate::<1>(page.as_raw(), page.width(), page.height(), degrees);
            let found = find_skew(&turned, page.width(), page.height()).expect("lines are found");
            let expected = own + degrees;
            assert!((found - expected).abs() < 0.1, "turned {degrees}°, found {found}°, expected {expected}°");
            let level = rotate::<1>(&turned, page.width(), page.height(), -found);
            let again = find_skew(&level, page.width(), page.height());
            assert!(again.is_none_or(|d| d.abs() < MIN_DEGREES), "turned back, still {again:?}");
        }
    }

    #[test]
    fn noise_and_blank_pages_have_no_tilt() {
        let (w, h) = (1200u32, 1600u32);
        let mut state = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        assert_eq!(find_skew(&noise, w, h), None);
        assert_eq!(find_skew(&vec![255; (w * h) as usize], w, h), None);
    }

    #[test]
    fn turning_keeps_size_and_fills_with_white() {
        let rgb = vec![0u8; 100 * 50 * 3];
        let turned = rotate::<3>(&rgb, 100, 50, 30.0);
        assert_eq!(turned.len(), rgb.len());
        assert_eq!(turned[..3], [255; 3], "a corner no source pixel reaches");
        assert_eq!(turned[(25 * 100 + 50) * 3..][..3], [0; 3], "the centre stays");
    }

    #[test]
    fn cubic_weights_add_up_to_one_and_hit_samples() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            assert!((cubic_weights(t).iter().sum::<f32>() - 1.0).abs() < 1e-6, "{t}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }
}
