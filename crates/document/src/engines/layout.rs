//! The layout model: `layout_cdla.onnx` (PP-PicoDet trained on CDLA) finds regions (text,
//! title, figure, table, caption, header, footer, …) on a page image. Resize, BGR,
//! ImageNet normalisation; DFL box decoding and per-class NMS.

use std::sync::Mutex;

use image::RgbImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::Tensor;

use crate::config::Settings;
use crate::error::StageError;
use crate::model::workdir::{Region, area, overlap};

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

pub struct LayoutModel {
    session: Mutex<Session>,
}

impl LayoutModel {
    pub fn load(settings: &Settings) -> Result<Self, StageError> {
        let env = crate::engines::onnx::environment(&settings.onnxruntime_library()).map_err(StageError::Transient)?;
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
