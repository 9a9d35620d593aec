//! Orientation: whether a scanned page lies on its side or upside down, found from the
//! image alone, in a few milliseconds (tesseract's orientation detection costs 0.6–0.9 CPU s
//! a page, too much to run on every scan).
//!
//! - On its side: text lines run down the page, so the projection profiles that find the
//!   tilt ([`super::deskew`]) are sharp along columns and flat along rows.
//! - Upside down: in Latin, Greek and Cyrillic text, capitals, digits and ascenders
//!   (b d f h k l t) far outnumber descenders (g j p q y), so on an upright line more ink
//!   sits above the band of the lowercase letters than below it. Turned over, below.
//!   Scripts without that lean (Arabic, CJK) are left as they are.

use image::GrayImage;

use super::deskew::{MIN_DEGREES, MIN_PEAK_RATIO, find_skew, lines, rotate};

/// Pixels darker than this count as ink.
const INK: u8 = 128;

/// Lines must be this much clearer along columns than along rows for a page on its side.
const SIDEWAYS_MARGIN: f64 = 2.0;

/// Fewer measurable text lines than this and the page's way up is not judged (a title, a
/// figure with labels).
const MIN_LINES: usize = 5;

/// Ink above the lowercase band over ink below it: upright pages measured 1.5 to 5.8 on the
/// corpus, so below this the page is upside down.
const UPSIDE_DOWN_BELOW: f64 = 0.75;

/// A line's rows shorter than this (pixels) are specks or rules, not text.
const MIN_LINE_ROWS: usize = 4;

/// How a page lies and how to set it upright.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Upright {
    /// Degrees to turn the page clockwise to set it upright: 0, 90, 180 or 270.
    pub turn: u32,
    /// The tilt left once it is turned ([`find_skew`]), when worth straightening.
    pub skew: Option<f32>,
}

/// How the page in `grey` lies. Pages that show no clear text lines are left as they are.
pub fn find(grey: &GrayImage) -> Upright {
    let measured = lines(grey.as_raw(), grey.width(), grey.height());
    let columns = measured.columns();
    let sideways = columns >= MIN_PEAK_RATIO && columns >= SIDEWAYS_MARGIN * measured.rows;
    let turned;
    // Upright as far as sideways goes: a page turned by a quarter is measured again.
    let (page, skew) = if sideways {
        turned = image::imageops::rotate90(grey);
        (&turned, find_skew(turned.as_raw(), turned.width(), turned.height()))
    } else {
        (grey, measured.skew())
    };
    let (w, h) = page.dimensions();
    let skew = skew.filter(|d| d.abs() >= MIN_DEGREES);
    let level = skew.map(|d| rotate::<1>(page.as_raw(), w, h, -d));
    let over = upside_down(level.as_deref().unwrap_or(page.as_raw()), w, h);
    let turn = match (sideways, over) {
        (false, false) => 0,
        (true, false) => 90,
        (false, true) => 180,
        (true, true) => 270,
    };
    Upright { turn, skew }
}

/// Whether the level text in `grey` (`width * height` bytes) is upside down: the rows of
/// ink are split into lines at blank rows, each line's lowercase band is where its rows
/// hold at least half its fullest row's ink, and the ink above and below the bands is
/// compared over the page.
fn upside_down(grey: &[u8], width: u32, height: u32) -> bool {
    let w = width as usize;
    let profile: Vec<usize> =
        grey.chunks_exact(w.max(1)).take(height as usize).map(|row| row.iter().filter(|&&p| p < INK).count()).collect();
    // A row with less than this is blank (specks of noise aside).
    let blank = w / 1000 + 1;
    let mut lines: Vec<&[usize]> = profile.split(|&n| n < blank).filter(|l| l.len() >= MIN_LINE_ROWS).collect();
    // Lines much taller than most are two lines touching, or a figure: left out.
    let mut heights: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    heights.sort_unstable();
    let Some(&median) = heights.get(heights.len() / 2) else { return false };
    lines.retain(|l| l.len() * 5 <= median * 8);
    if lines.len() < MIN_LINES {
        return false;
    }
    let (mut above, mut below) = (0usize, 0usize);
    for line in lines {
        let fullest = line.iter().copied().max().unwrap_or(0);
        let in_band = |n: &usize| 2 * n >= fullest;
        let top = line.iter().position(in_band).unwrap_or(0);
        let bottom = line.iter().rposition(in_band).unwrap_or(line.len() - 1);
        above += line[..top].iter().sum::<usize>();
        below += line[bottom + 1..].iter().sum::<usize>();
    }
    (above as f64) < UPSIDE_DOWN_BELOW * below as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::{rotate90, rotate180, rotate270};

    /// The first page of `fixtures/pages.tiff`: a 300-DPI text scan, upright, tilted 0.18°.
    fn page() -> GrayImage {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pages.tiff");
        image::open(path).expect("fixture").to_luma8()
    }

    #[test]
    fn a_page_turned_any_way_is_found_and_set_upright() {
        let page = page();
        // Each way the page may lie, and the turn that sets it upright.
        for (lying, turn) in
            [(page.clone(), 0), (rotate270(&page), 90), (rotate180(&page), 180), (rotate90(&page), 270)]
        {
            assert_eq!(find(&lying).turn, turn, "a page that needs turning by {turn}°");
        }
    }

    #[test]
    fn a_tilted_page_on_its_side_keeps_its_tilt() {
        let page = page();
        let (w, h) = page.dimensions();
        let tilted = GrayImage::from_raw(w, h, rotate::<1>(page.as_raw(), w, h, 3.0)).expect("same size");
        let found = find(&rotate270(&tilted));
        assert_eq!(found.turn, 90);
        let skew = found.skew.expect("a tilt");
        assert!((skew - 3.18).abs() < 0.1, "tilt {skew}°");
    }

    #[test]
    fn pages_without_lines_stay_as_they_are() {
        let blank = GrayImage::from_pixel(600, 800, image::Luma([255]));
        let mut seed = 7u32;
        let noise = GrayImage::from_fn(600, 800, |_, _| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            image::Luma([if seed >> 16 & 31 == 0 { 0 } else { 255 }])
        });
        for page in [blank, noise] {
            assert_eq!(find(&page), Upright { turn: 0, skew: None });
        }
    }
}
