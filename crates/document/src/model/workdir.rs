//! The per-document work directory and the page model stages pass along.
//!
//! Coordinates are PDF points (1/72 inch) with the origin at the page's top-left corner;
//! boxes are `[x0, y0, x1, y1]`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StageError;

pub type BBox = [f32; 4];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Word {
    pub text: String,
    pub bbox: BBox,
    /// OCR confidence 0–100; `None` for the PDF text layer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conf: Option<f32>,
    /// Set in a heavier weight than the page's body text (PDF text layer only).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub bold: bool,
}

/// Where a page's text came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// The PDF's own text layer was usable.
    TextLayer,
    /// The page needs (or had) OCR.
    Ocr,
}

/// A region found by the layout model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Region {
    pub label: String,
    pub score: f32,
    pub bbox: BBox,
    /// Heading level (1 = top) when the source says it (DOCX heading styles).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    pub width: f32,
    pub height: f32,
    pub source: TextSource,
    pub words: Vec<Word>,
    /// Page image for the layout model (file name inside `pages/`).
    pub layout_image: Option<String>,
    /// 300-DPI grey page image for OCR (file name inside `pages/`), when the page needs OCR.
    pub ocr_image: Option<String>,
    /// Set by the layout stage.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Mean OCR word confidence, set by the OCR stage.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ocr_confidence: Option<f32>,
    /// Tesseract language(s) the OCR stage read the page in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ocr_language: Option<String>,
    /// Boxes of the raster images embedded in a PDF page (exact; layout adds drawn figures).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub images: Vec<BBox>,
    /// Tilt of a scanned page's lines in degrees (positive: descending to the right), set
    /// by the OCR stage when it turned the page's image upright to read it. Word boxes are
    /// on the page as it is; [`Page::upright`] turns a box level.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skew: Option<f32>,
    /// Degrees (90, 180, 270) the layout stage turned a scanned page on its side or upside
    /// down clockwise to set it upright. Its size, words and regions are the upright page's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub turn: Option<u32>,
    /// A PDF page whose text layer is invisible (an earlier OCR's over a scan), set by the
    /// render stage, which then renders an OCR image too.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub invisible_text: bool,
    /// Share (0–1) of a sample of the page read by OCR that the invisible layer's words
    /// agree with, set by the OCR stage; below its bar the page is OCR'd instead.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub layer_agreement: Option<f32>,
}

impl Page {
    pub fn text(&self) -> String {
        self.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// Where `b` is once the page is turned upright (no change on a page without skew).
    pub fn upright(&self, b: &BBox) -> BBox {
        match self.skew {
            Some(degrees) => turn_box(b, -degrees, [self.width / 2.0, self.height / 2.0]),
            None => *b,
        }
    }
}

/// Paths inside `<data>/documents/<id>/`, and the blob-store keys they stand for
/// (`documents/<id>/…`, see [`crate::blob`]).
#[derive(Debug, Clone)]
pub struct WorkDir {
    pub root: PathBuf,
    key: String,
}

impl WorkDir {
    pub fn new(data_dir: &Path, document_id: &str) -> Self {
        let key = crate::config::document_key(document_id);
        Self { root: data_dir.join(&key), key }
    }
    pub fn pages_dir(&self) -> PathBuf {
        self.root.join("pages")
    }
    pub fn figures_dir(&self) -> PathBuf {
        self.root.join("figures")
    }
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }
    /// One JSON file per page, so page ranges can be worked on by different workers.
    pub fn page_file(&self, number: u32) -> PathBuf {
        self.pages_dir().join(page_name(number))
    }
    pub fn chunks_file(&self) -> PathBuf {
        self.root.join("chunks.json")
    }
    /// The key of a file in this directory, given by its path relative to it
    /// (`pages/p0001.json`).
    pub fn key(&self, relative: &str) -> String {
        format!("{}/{relative}", self.key)
    }
    /// The key of everything in this directory.
    pub fn prefix(&self) -> &str {
        &self.key
    }
    pub fn page_key(&self, number: u32) -> String {
        self.key(&format!("pages/{}", page_name(number)))
    }
    /// Keys of a page's file and of the images it names.
    pub fn page_keys(&self, page: &Page) -> Vec<String> {
        let images = [&page.layout_image, &page.ocr_image].into_iter().flatten();
        std::iter::once(self.page_key(page.number)).chain(images.map(|i| self.key(&format!("pages/{i}")))).collect()
    }
    pub fn chunks_key(&self) -> String {
        self.key("chunks.json")
    }

    pub fn load_page(&self, number: u32) -> Result<Page, StageError> {
        read_json(&self.page_file(number))
    }
    pub fn save_page(&self, page: &Page) -> Result<(), StageError> {
        write_json(&self.page_file(page.number), page)
    }
    /// Page numbers, sorted, from the keys or names of a pages listing (`…/pages/p0001.json`).
    pub fn numbers_of(keys: &[String]) -> Vec<u32> {
        let mut numbers: Vec<u32> = keys
            .iter()
            .filter_map(|k| k.rsplit('/').next()?.strip_prefix('p')?.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        numbers
    }
    /// Numbers of the pages rendered so far, in order.
    pub fn page_numbers(&self) -> Result<Vec<u32>, StageError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.pages_dir())? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(Self::numbers_of(&names))
    }
    /// Every page rendered so far, in page order.
    pub fn load_pages(&self) -> Result<Vec<Page>, StageError> {
        self.page_numbers()?.into_iter().map(|n| self.load_page(n)).collect()
    }
}

/// A page's file name: `p0001.json`.
fn page_name(number: u32) -> String {
    format!("p{number:04}.json")
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StageError> {
    let bytes = std::fs::read(path).map_err(|e| StageError::transient(&format!("read {}", path.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| StageError::transient(&format!("parse {}", path.display()), e))
}

/// Writes JSON atomically (temp file + rename), so a crash never leaves half a file.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StageError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StageError::transient("serialise", e))?;
    write_atomic(path, &bytes)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StageError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk leaves part of the file: it goes, so space and the old file remain.
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// Area of a box; 0 when it is empty.
pub fn area(b: &BBox) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Area of the overlap of two boxes.
pub fn overlap(a: &BBox, b: &BBox) -> f32 {
    area(&[a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])])
}

/// Whether the centre of `inner` lies in `outer`.
pub fn centre_in(inner: &BBox, outer: &BBox) -> bool {
    let (cx, cy) = ((inner[0] + inner[2]) / 2.0, (inner[1] + inner[3]) / 2.0);
    cx >= outer[0] && cx <= outer[2] && cy >= outer[1] && cy <= outer[3]
}

/// `b` moved as turning its page by `degrees` about `centre` (positive: clockwise on
/// screen, y pointing down) moves its centre; its size stays, so turning back restores it.
pub fn turn_box(b: &BBox, degrees: f32, centre: [f32; 2]) -> BBox {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (dx, dy) = ((b[0] + b[2]) / 2.0 - centre[0], (b[1] + b[3]) / 2.0 - centre[1]);
    let (x, y) = (centre[0] + dx * cos - dy * sin, centre[1] + dx * sin + dy * cos);
    let (hw, hh) = ((b[2] - b[0]) / 2.0, (b[3] - b[1]) / 2.0);
    [x - hw, y - hh, x + hw, y + hh]
}

/// `b` on a page of `width` × `height` once the page is turned clockwise by `degrees`, a
/// multiple of 90.
pub fn quarter_turn_box(b: &BBox, degrees: u32, width: f32, height: f32) -> BBox {
    match degrees % 360 {
        90 => [height - b[3], b[0], height - b[1], b[2]],
        180 => [width - b[2], height - b[3], width - b[0], height - b[1]],
        270 => [b[1], width - b[2], b[3], width - b[0]],
        _ => *b,
    }
}

/// Union of boxes; `None` for an empty iterator.
pub fn union(boxes: impl IntoIterator<Item = BBox>) -> Option<BBox> {
    boxes.into_iter().reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turning_a_box_moves_its_centre_and_keeps_its_size() {
        let b = [90.0, 40.0, 110.0, 50.0];
        let turned = turn_box(&b, 90.0, [100.0, 100.0]);
        // Right above the centre, a quarter turn clockwise puts it to the right.
        let [x0, y0, x1, y1] = turned;
        assert!((x0 - 145.0).abs() < 1e-3 && (y0 - 95.0).abs() < 1e-3, "{turned:?}");
        assert!((x1 - x0 - 20.0).abs() < 1e-3 && (y1 - y0 - 10.0).abs() < 1e-3);
        let back = turn_box(&turned, -90.0, [100.0, 100.0]);
        assert!(back.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-3), "{back:?}");
    }

    #[test]
    fn quarter_turns_carry_a_box_with_its_page() {
        // A box at the top left of a 100 × 200 page.
        let b = [10.0, 20.0, 30.0, 60.0];
        assert_eq!(quarter_turn_box(&b, 90, 100.0, 200.0), [140.0, 10.0, 180.0, 30.0], "top right");
        assert_eq!(quarter_turn_box(&b, 180, 100.0, 200.0), [70.0, 140.0, 90.0, 180.0], "bottom right");
        assert_eq!(quarter_turn_box(&b, 270, 100.0, 200.0), [20.0, 70.0, 60.0, 90.0], "bottom left");
        let (mut turned, mut size) = (b, (100.0, 200.0));
        for _ in 0..4 {
            turned = quarter_turn_box(&turned, 90, size.0, size.1);
            size = (size.1, size.0);
        }
        assert_eq!(turned, b);
    }
}
