//! Stage 3, layout: the ONNX layout model (PP-PicoDet trained on CDLA, `layout_cdla.onnx`)
//! finds regions on each page image. Figures are the PDF's embedded raster images (exact
//! boxes from the render stage) and the model's figure regions that no image covers
//! (vector drawings, figures in scans); each is cropped and saved as a PNG file linked to
//! the document and page.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::Tensor;

use super::Payload;
use super::StageError;
use super::render::{LAYOUT_DPI, pixels_per_point};
use super::workdir::{BBox, Page, Region, WorkDir, area, centre_in, overlap, union};
use crate::config::Settings;
use crate::context::Context;
use crate::storage::Figure;

/// Labels of `layout_cdla.onnx`, in output order.
pub const LABELS: [&str; 10] = [
    "text",
    "title",
    "figure",
    "figure_caption",
    "table",
    "table_caption",
    "header",
    "footer",
    "reference",
    "equation",
];
const INPUT_W: u32 = 608;
const INPUT_H: u32 = 800;
const STRIDES: [u32; 4] = [8, 16, 32, 64];
const REG_MAX: usize = 7;
/// Photos often score ~0.45 as figures; other labels need more confidence.
const FIGURE_THRESHOLD: f32 = 0.4;
const THRESHOLD: f32 = 0.5;
const NMS_IOU: f32 = 0.5;
/// Figures smaller than this (in points, either side) are decoration.
const MIN_FIGURE_SIDE: f32 = 36.0;
/// An embedded image covering more of the page than this is a scan or a background.
const MAX_IMAGE_SHARE: f32 = 0.6;
/// Embedded images closer than this (points) belong to one figure.
const IMAGE_MERGE_GAP: f32 = 24.0;
/// A figure region this much covered by text-layer words is text the model took for a
/// figure (code, equations); drawings with labels measured at most 0.11 on the corpus
/// pages of `benches/quality/figures.toml`, such text 0.17 and 0.40.
const MAX_FIGURE_TEXT_COVER: f32 = 0.15;

pub struct LayoutModel {
    session: Mutex<Session>,
}

impl LayoutModel {
    pub fn load(settings: &Settings) -> Result<Self, StageError> {
        let env = crate::onnx::environment(&settings.onnxruntime_library()).map_err(StageError::Transient)?;
        let path = settings.layout_model();
        let configure = |e: ort::Error<_>| StageError::transient("configure layout session", e);
        let session = Session::builder(&env)
            .map_err(|e| StageError::transient("configure layout session", e))?
            .with_intra_threads(settings.onnx_threads)
            .map_err(configure)?
            .with_inter_threads(1)
            .map_err(configure)?
            .commit_from_file(&path)
            .map_err(|e| StageError::transient(&format!("load layout model {}", path.display()), e))?;
        Ok(Self { session: Mutex::new(session) })
    }

    /// Detects regions; boxes are in the image's pixel coordinates.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Region>, StageError> {
        let input = preprocess(image);
        let mut session = self.session.lock().map_err(|_| StageError::Transient("layout session poisoned".into()))?;
        let tensor = Tensor::from_array(input).map_err(|e| StageError::transient("layout input", e))?;
        let outputs = session.run(ort::inputs![tensor]).map_err(|e| StageError::transient("layout inference", e))?;
        let mut arrays = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (shape, data) =
                value.try_extract_tensor::<f32>().map_err(|e| StageError::transient("layout output", e))?;
            arrays.push((shape.to_vec(), data.to_vec()));
        }
        drop(outputs);
        drop(session);
        decode(&arrays, image.width() as f32 / INPUT_W as f32, image.height() as f32 / INPUT_H as f32)
    }
}

/// Stretch-resize to 608×800 (bilinear, as OpenCV's `INTER_LINEAR` the model was trained
/// with), BGR, /255, ImageNet mean/std, NCHW — in one pass over the output.
fn preprocess(image: &RgbImage) -> Array4<f32> {
    let (w, h) = (INPUT_W as usize, INPUT_H as usize);
    let (sw, sh) = (image.width() as usize, image.height() as usize);
    // Per output column (row): the two source columns (rows) and the weight of the second.
    let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
        let scale = src as f32 / dst as f32;
        (0..dst)
            .map(|i| {
                let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s as usize).min(src - 1);
                (i0, (i0 + 1).min(src - 1), s - i0 as f32)
            })
            .collect()
    };
    let (xs, ys) = (taps(w, sw), taps(h, sh));
    // Model channel m is BGR: it reads RGB channel 2 - m. value = byte * k + b.
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let k: [f32; 3] = std::array::from_fn(|m| 1.0 / (255.0 * std[m]));
    let b: [f32; 3] = std::array::from_fn(|m| -mean[m] / std[m]);
    let raw = image.as_raw();
    let plane = w * h;
    let mut out = vec![0f32; 3 * plane];
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let (r0, r1) = (&raw[y0 * sw * 3..(y0 + 1) * sw * 3], &raw[y1 * sw * 3..(y1 + 1) * sw * 3]);
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            for m in 0..3 {
                let c = 2 - m;
                let top = r0[x0 * 3 + c] as f32 + (r0[x1 * 3 + c] as f32 - r0[x0 * 3 + c] as f32) * fx;
                let bottom = r1[x0 * 3 + c] as f32 + (r1[x1 * 3 + c] as f32 - r1[x0 * 3 + c] as f32) * fx;
                out[m * plane + y * w + x] = (top + (bottom - top) * fy) * k[m] + b[m];
            }
        }
    }
    Array4::from_shape_vec((1, 3, h, w), out).expect("shape matches the buffer")
}

/// PicoDet head: per stride a score map [N, classes] and a DFL box map [N, 4*(REG_MAX+1)].
fn decode(outputs: &[(Vec<i64>, Vec<f32>)], sx: f32, sy: f32) -> Result<Vec<Region>, StageError> {
    if outputs.len() != 2 * STRIDES.len() {
        return Err(StageError::Transient(format!("layout model gave {} outputs, expected 8", outputs.len())));
    }
    let classes = LABELS.len();
    let mut candidates: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for (level, stride) in STRIDES.iter().enumerate() {
        let (_, scores) = &outputs[level];
        let (_, boxes) = &outputs[level + STRIDES.len()];
        let fm_w = INPUT_W.div_ceil(*stride) as usize;
        let n = scores.len() / classes;
        for i in 0..n {
            let s = &scores[i * classes..(i + 1) * classes];
            let (best, score) = s.iter().copied().enumerate().fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
            let threshold = if LABELS[best] == "figure" { FIGURE_THRESHOLD } else { THRESHOLD };
            if score < threshold {
                continue;
            }
            let cx = ((i % fm_w) as f32 + 0.5) * *stride as f32;
            let cy = ((i / fm_w) as f32 + 0.5) * *stride as f32;
            let mut d = [0f32; 4];
            for (side, dist) in d.iter_mut().enumerate() {
                let bins = &boxes[(i * 4 + side) * (REG_MAX + 1)..(i * 4 + side + 1) * (REG_MAX + 1)];
                let max = bins.iter().copied().fold(f32::MIN, f32::max);
                let exp: [f32; REG_MAX + 1] = std::array::from_fn(|k| (bins[k] - max).exp());
                let sum: f32 = exp.iter().sum();
                *dist = exp.iter().enumerate().map(|(k, e)| k as f32 * e / sum).sum::<f32>() * *stride as f32;
            }
            let b = [
                (cx - d[0]).clamp(0.0, INPUT_W as f32) * sx,
                (cy - d[1]).clamp(0.0, INPUT_H as f32) * sy,
                (cx + d[2]).clamp(0.0, INPUT_W as f32) * sx,
                (cy + d[3]).clamp(0.0, INPUT_H as f32) * sy,
            ];
            candidates.push((best, score, b));
        }
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for c in candidates {
        if kept.iter().all(|k| k.0 != c.0 || iou(&k.2, &c.2) <= NMS_IOU) {
            kept.push(c);
        }
    }
    Ok(kept
        .into_iter()
        .map(|(l, score, bbox)| Region { label: LABELS[l].to_string(), score, bbox, level: None })
        .collect())
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let inter = overlap(a, b);
    inter / (area(a) + area(b) - inter + 1e-5)
}

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let model = ctx.layout_model().await?;
    let workdir = ctx.workdir(&payload.document_id);
    let range = super::page_range(ctx, payload).await?;
    let figures = crate::background::spawn_cpu(move || analyse(&model, &workdir, range)).await??;
    for (page, figs) in figures {
        ctx.store.replace_figures(&payload.document_id, page, &figs).await?;
    }
    Ok(())
}

type PageFigures = Vec<(i64, Vec<Figure>)>;

/// Runs the model on each page in `range`, saves regions into the page files and crops figures.
fn analyse(
    model: &LayoutModel,
    workdir: &WorkDir,
    range: std::ops::RangeInclusive<u32>,
) -> Result<PageFigures, StageError> {
    let mut figures = Vec::new();
    let figures_dir = workdir.figures_dir();
    std::fs::create_dir_all(&figures_dir)?;
    for number in range {
        let mut page = workdir.load_page(number)?;
        let Some(name) = &page.layout_image else { continue };
        let image = image::open(workdir.pages_dir().join(name))
            .map_err(|e| StageError::transient("read layout image", e))?
            .to_rgb8();
        let to_points = 1.0 / pixels_per_point(LAYOUT_DPI);
        let regions = model.detect(&image)?;
        let mut page_figures = Vec::new();
        for (bbox, score) in figure_boxes(&page, &regions, to_points) {
            let idx = page_figures.len() as i64;
            let file = figures_dir.join(format!("p{:04}-{idx:02}.png", page.number));
            crop(&image, bbox.map(|v| v / to_points), &file)?;
            page_figures.push(Figure {
                page: page.number as i64,
                idx,
                label: "figure".into(),
                score: score as f64,
                bbox: bbox.map(|v| v as f64),
                path: file.to_string_lossy().into_owned(),
            });
        }
        page.regions = regions.into_iter().map(|r| Region { bbox: r.bbox.map(|v| v * to_points), ..r }).collect();
        workdir.save_page(&page)?;
        figures.push((page.number as i64, page_figures));
    }
    Ok(figures)
}

/// Figures of a page in points, with a score: the embedded raster images (exact boxes;
/// images a few points apart, like subfigures or a plot and its colour bar, are one
/// figure; images covering most of the page are scans or backgrounds), then the model's
/// figure regions no image explains (vector drawings, figures in scans) and that are not
/// mostly text. Tiny ones are decoration.
fn figure_boxes(page: &Page, regions: &[Region], to_points: f32) -> Vec<(BBox, f32)> {
    let big_enough = |b: &BBox| b[2] - b[0] >= MIN_FIGURE_SIDE && b[3] - b[1] >= MIN_FIGURE_SIDE;
    // Share of the smaller box covered by the other.
    let covered = |a: &BBox, b: &BBox| overlap(a, b) / area(a).min(area(b)).max(1.0);
    let gap = |a: &BBox, b: &BBox| (a[0] - b[2]).max(b[0] - a[2]).max(a[1] - b[3]).max(b[1] - a[3]).max(0.0);
    let mut images: Vec<BBox> = page
        .images
        .iter()
        .map(|i| [i[0].max(0.0), i[1].max(0.0), i[2].min(page.width), i[3].min(page.height)])
        .filter(|b| area(b) > 0.0 && area(b) < MAX_IMAGE_SHARE * page.width * page.height)
        .collect();
    // Merge images that touch or nearly touch, until none do.
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..images.len() {
            for j in i + 1..images.len() {
                if gap(&images[i], &images[j]) < IMAGE_MERGE_GAP {
                    let b = images.swap_remove(j);
                    images[i] = union([images[i], b]).expect("two boxes");
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    // Share of a box covered by text-layer words (their centres inside it).
    let text_cover = |b: &BBox| {
        let inside = page.words.iter().map(|w| w.bbox).filter(|w| centre_in(w, b));
        inside.map(|w| area(&w)).sum::<f32>() / area(b).max(1.0)
    };
    let figure_regions: Vec<(BBox, f32)> = regions
        .iter()
        .filter(|r| r.label == "figure")
        .map(|r| (r.bbox.map(|v| v * to_points), r.score))
        .filter(|(b, _)| text_cover(b) < MAX_FIGURE_TEXT_COVER)
        .collect();
    let mut out: Vec<(BBox, f32)> = images.into_iter().filter(big_enough).map(|b| (b, 1.0)).collect();
    for (region, score) in figure_regions {
        if big_enough(&region) && out.iter().all(|(o, _)| covered(o, &region) < 0.5) {
            out.push((region, score));
        }
    }
    out
}

fn crop(image: &RgbImage, bbox: [f32; 4], path: &Path) -> Result<(), StageError> {
    let x0 = bbox[0].max(0.0) as u32;
    let y0 = bbox[1].max(0.0) as u32;
    let x1 = (bbox[2].ceil() as u32).min(image.width());
    let y1 = (bbox[3].ceil() as u32).min(image.height());
    let view = image::imageops::crop_imm(image, x0, y0, x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1));
    view.to_image()
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| StageError::transient("write figure", e))
}
