//! Image uploads (PNG, JPEG, TIFF): header checks against pixel bombs, the page count (a
//! TIFF may hold many pages) and decoding one page.

use std::io::BufReader;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, RgbImage, RgbaImage};
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

use crate::config::LimitsConfig;
use crate::error::StageError;
use crate::formats::sniff::MediaType;

/// Images above this many pixels are refused (decompression bombs).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

fn bad(e: impl std::fmt::Display) -> StageError {
    StageError::BadInput(format!("unreadable image: {e}"))
}

fn check_pixels(w: u32, h: u32, page: u32) -> Result<(), StageError> {
    if w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(StageError::BadInput(format!(
            "image page {page} is {w}×{h} pixels, over the limit of {MAX_IMAGE_PIXELS} pixels"
        )));
    }
    Ok(())
}

fn tiff_decoder(path: &Path) -> Result<Decoder<BufReader<std::fs::File>>, StageError> {
    Decoder::new(BufReader::new(std::fs::File::open(path)?)).map_err(bad)
}

/// Reads only headers: the number of pages, each checked against the pixel limit and
/// all of them against the document's budgets.
pub fn check(path: &Path, media: MediaType, limits: &LimitsConfig) -> Result<u32, StageError> {
    if media != MediaType::Tiff {
        let reader = image::ImageReader::open(path)?.with_guessed_format().map_err(bad)?;
        let (w, h) = reader.into_dimensions().map_err(bad)?;
        check_pixels(w, h, 1)?;
        return Ok(1);
    }
    let mut decoder = tiff_decoder(path)?;
    let (mut pages, mut pixels) = (0, 0u64);
    loop {
        pages += 1;
        let (w, h) = decoder.dimensions().map_err(bad)?;
        check_pixels(w, h, pages)?;
        pixels += w as u64 * h as u64;
        if pixels > limits.max_megapixels * 1_000_000 {
            return Err(StageError::BadInput(format!(
                "the TIFF's first {pages} pages hold {} million pixels, over the document's limit of {} million",
                pixels / 1_000_000,
                limits.max_megapixels
            )));
        }
        if !decoder.more_images() {
            return Ok(pages);
        }
        if pages >= limits.max_pages {
            return Err(super::over_page_limit("TIFF", format!("more than {pages}"), limits));
        }
        decoder.next_image().map_err(bad)?;
    }
}

/// Whether a page image is blank: between its darkest and lightest pixels (leaving out one
/// in 10,000 at each end: dust, speckles) lie less than 48 grey levels. Such pages have
/// nothing to OCR or lay out.
pub fn is_blank(grey: &GrayImage) -> bool {
    let mut histogram = [0usize; 256];
    for &p in grey.as_raw() {
        histogram[p as usize] += 1;
    }
    let ignore = grey.as_raw().len() / 10_000;
    let level = |order: &mut dyn Iterator<Item = usize>| -> Option<usize> {
        let mut seen = 0;
        for v in order {
            seen += histogram[v];
            if seen > ignore {
                return Some(v);
            }
        }
        None
    };
    match (level(&mut (0..256usize)), level(&mut (0..256usize).rev())) {
        (Some(dark), Some(light)) => light - dark < 48,
        _ => true,
    }
}

/// Side of the square cells paper brightness is measured in: at 300 DPI about 2.7 mm, wider
/// than a stroke of text, narrower than the edge of a shadow.
const CELL: usize = 32;

/// Paper at least this bright everywhere is left alone (a scan on white paper).
const WHITE_PAPER: u8 = 230;

/// Evens out the paper of a photographed page: each pixel is divided by the brightness of
/// the paper around it (the brightest tenth of its cell, spread over the neighbouring cells
/// so a cell full of ink takes its neighbours' paper), so a shadow or a grey, unevenly lit
/// background turns white and the ink keeps its contrast. Tesseract thresholds a page
/// with one global level, which a shadow across a photo defeats.
pub fn even_background(grey: &mut GrayImage) {
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    let (cols, rows) = (w.div_ceil(CELL), h.div_ceil(CELL));
    if cols < 2 || rows < 2 {
        return;
    }
    let pixels = grey.as_raw();
    let mut paper = vec![0u8; cols * rows];
    for r in 0..rows {
        for c in 0..cols {
            let mut histogram = [0u32; 256];
            let mut n = 0;
            for y in r * CELL..((r + 1) * CELL).min(h) {
                for &p in &pixels[y * w + c * CELL..y * w + ((c + 1) * CELL).min(w)] {
                    histogram[p as usize] += 1;
                    n += 1;
                }
            }
            let (mut seen, mut level) = (0, 255);
            while level > 0 && seen + histogram[level] < n / 10 {
                seen += histogram[level];
                level -= 1;
            }
            paper[r * cols + c] = level as u8;
        }
    }
    let neighbours = |r: usize, c: usize| {
        (r.saturating_sub(1)..=(r + 1).min(rows - 1))
            .flat_map(move |r| (c.saturating_sub(1)..=(c + 1).min(cols - 1)).map(move |c| (r, c)))
    };
    let paper: Vec<f32> = (0..rows * cols)
        .map(|i| neighbours(i / cols, i % cols).map(|(r, c)| paper[r * cols + c]).max().unwrap_or(255))
        .map(f32::from)
        .collect();
    if paper.iter().all(|&p| p >= f32::from(WHITE_PAPER)) {
        return;
    }
    // Bilinear between cell centres.
    let at = |x: usize, y: usize| -> f32 {
        let fx = ((x as f32 + 0.5) / CELL as f32 - 0.5).clamp(0.0, (cols - 1) as f32);
        let fy = ((y as f32 + 0.5) / CELL as f32 - 0.5).clamp(0.0, (rows - 1) as f32);
        let (c0, r0) = (fx as usize, fy as usize);
        let (c1, r1) = ((c0 + 1).min(cols - 1), (r0 + 1).min(rows - 1));
        let (tx, ty) = (fx - c0 as f32, fy - r0 as f32);
        let row = |r: usize| paper[r * cols + c0] + (paper[r * cols + c1] - paper[r * cols + c0]) * tx;
        row(r0) + (row(r1) - row(r0)) * ty
    };
    for (i, p) in grey.iter_mut().enumerate() {
        let light = at(i % w, i / w).max(1.0);
        *p = (f32::from(*p) * 255.0 / light).min(255.0) as u8;
    }
}

/// Decodes page `number` (1-based), upright: turned and mirrored as its EXIF (JPEG, PNG)
/// or TIFF orientation says, as a phone or camera scan is meant to be seen.
pub fn page(path: &Path, media: MediaType, number: u32) -> Result<DynamicImage, StageError> {
    let undecodable = |e: image::ImageError| StageError::BadInput(format!("the image cannot be decoded: {e}"));
    if media != MediaType::Tiff {
        let mut decoder = image::ImageReader::open(path)?.with_guessed_format()?.into_decoder().map_err(undecodable)?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
        image.apply_orientation(orientation);
        return Ok(image);
    }
    let mut decoder = tiff_decoder(path)?;
    decoder.seek_to_image(number as usize - 1).map_err(bad)?;
    let orientation = decoder
        .find_tag(Tag::Orientation)
        .ok()
        .flatten()
        .and_then(|v| Orientation::from_exif(v.into_u16().ok()?.min(255) as u8))
        .unwrap_or(Orientation::NoTransforms);
    let (w, h) = decoder.dimensions().map_err(bad)?;
    check_pixels(w, h, number)?;
    let color = decoder.colortype().map_err(bad)?;
    let data = decoder.read_image().map_err(|e| StageError::BadInput(format!("TIFF page {number}: {e}")))?;
    let unsupported = || StageError::BadInput(format!("TIFF page {number}: unsupported pixel format {color:?}"));
    let image = match (color, data) {
        (ColorType::Gray(1), DecodingResult::U8(packed)) => {
            let row = w.div_ceil(8) as usize;
            let mut grey = Vec::with_capacity(w as usize * h as usize);
            for line in packed.chunks_exact(row).take(h as usize) {
                grey.extend((0..w as usize).map(|x| if line[x / 8] & (0x80 >> (x % 8)) != 0 { 255 } else { 0 }));
            }
            GrayImage::from_raw(w, h, grey).map(DynamicImage::ImageLuma8)
        }
        (ColorType::Gray(8), DecodingResult::U8(v)) => GrayImage::from_raw(w, h, v).map(DynamicImage::ImageLuma8),
        (ColorType::Gray(16), DecodingResult::U16(v)) => {
            GrayImage::from_raw(w, h, v.into_iter().map(|p| (p >> 8) as u8).collect()).map(DynamicImage::ImageLuma8)
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => RgbImage::from_raw(w, h, v).map(DynamicImage::ImageRgb8),
        (ColorType::RGBA(8), DecodingResult::U8(v)) => RgbaImage::from_raw(w, h, v).map(DynamicImage::ImageRgba8),
        (ColorType::RGB(16), DecodingResult::U16(v)) => {
            RgbImage::from_raw(w, h, v.into_iter().map(|p| (p >> 8) as u8).collect()).map(DynamicImage::ImageRgb8)
        }
        (ColorType::CMYK(8), DecodingResult::U8(v)) => {
            let ink = |c: u8, k: u8| ((255 - c as u16) * (255 - k as u16) / 255) as u8;
            let rgb = v.chunks_exact(4).flat_map(|p| [ink(p[0], p[3]), ink(p[1], p[3]), ink(p[2], p[3])]).collect();
            RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
        }
        _ => return Err(unsupported()),
    };
    let mut image =
        image.ok_or_else(|| StageError::BadInput(format!("TIFF page {number}: pixel data is shorter than {w}×{h}")))?;
    image.apply_orientation(orientation);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_paper_turns_white_and_ink_stays_dark() {
        // Grey paper darkening to the right, with a stroke of ink every 40 pixels.
        let mut page = GrayImage::from_fn(640, 320, |x, _| image::Luma([200 - (x / 8) as u8]));
        for (x, y, p) in page.enumerate_pixels_mut() {
            if x % 40 < 3 && y % 40 < 30 {
                p.0[0] /= 4;
            }
        }
        even_background(&mut page);
        for x in [40, 320, 600] {
            assert!(page.get_pixel(x + 5, 100)[0] >= 240, "paper at {x}: {}", page.get_pixel(x + 5, 100)[0]);
            assert!(page.get_pixel(x, 100)[0] <= 70, "ink at {x}: {}", page.get_pixel(x, 100)[0]);
        }
        let white = GrayImage::from_fn(640, 320, |x, y| image::Luma([if (x + y) % 50 == 0 { 0 } else { 250 }]));
        let mut same = white.clone();
        even_background(&mut same);
        assert_eq!(same, white, "white paper is left alone");
    }

    #[test]
    fn blank_pages_are_told_from_pages_with_a_little_ink() {
        let mut page = GrayImage::from_pixel(1000, 1000, image::Luma([235]));
        for (i, p) in page.pixels_mut().enumerate() {
            p.0[0] = 225 + (i % 21) as u8; // paper grain
        }
        page.put_pixel(10, 10, image::Luma([0])); // a speck
        assert!(is_blank(&page));
        for x in 400..460 {
            for y in 500..520 {
                page.put_pixel(x, y, image::Luma([90])); // a short word
            }
        }
        assert!(!is_blank(&page));
    }
}
