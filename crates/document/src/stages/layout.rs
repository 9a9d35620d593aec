//! Stage 3, layout: the layout model ([`crate::engines::layout`]) finds regions on each
//! page image. Figures are the PDF's embedded raster images (exact boxes from the render
//! stage) and the model's figure regions that no image covers (vector drawings, figures in
//! scans); each is cropped and saved as a PNG file linked to the document and page. A scan
//! on its side or upside down ([`crate::engines::orientation`]) has its page images turned
//! upright for good; a tilted one ([`crate::engines::deskew`]) is laid out straightened and
//! its tilt recorded.

use std::path::Path;

use image::{DynamicImage, RgbImage};

use super::Payload;
use crate::context::Context;
use crate::engines::deskew::rotate;
use crate::engines::layout::LayoutModel;
use crate::engines::orientation;
use crate::engines::pdfium::save_png;
use crate::error::StageError;
use crate::model::workdir::{
    BBox, Page, Region, TextSource, WorkDir, area, centre_in, overlap, quarter_turn_box, turn_box, union,
};
use lectern_queue::storage::Figure;

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

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let model = ctx.layout_model().await?;
    let workdir = ctx.workdir(&payload.document_id);
    let range = super::page_range(ctx, payload).await?;
    ctx.fetch_pages(&workdir, range.clone(), |p| [p.layout_image.as_ref(), p.ocr_image.as_ref()]).await?;
    let (figures, written) = crate::engines::cpu::spawn_cpu(move || analyse(&model, &workdir, range)).await??;
    ctx.blobs.publish_all(&written).await?;
    for (page, figs) in figures {
        ctx.blobs.publish_all(&figs.iter().map(|f| f.path.clone()).collect::<Vec<_>>()).await?;
        ctx.store.replace_figures(&payload.document_id, page, &figs).await?;
    }
    Ok(())
}

/// Each page's figures, and the keys of the page files (and turned images) written.
type PageFigures = (Vec<(i64, Vec<Figure>)>, Vec<String>);

/// Runs the model on each page in `range`, saves regions into the page files and crops figures.
fn analyse(
    model: &LayoutModel,
    workdir: &WorkDir,
    range: std::ops::RangeInclusive<u32>,
) -> Result<PageFigures, StageError> {
    let mut figures = Vec::new();
    let mut written = Vec::new();
    std::fs::create_dir_all(workdir.figures_dir())?;
    for number in range {
        let mut page = workdir.load_page(number)?;
        let Some(name) = &page.layout_image else { continue };
        let mut image = image::open(workdir.pages_dir().join(name))
            .map_err(|e| StageError::transient("read layout image", e))?
            .to_rgb8();
        // A scan on its side or upside down is turned upright, files and all; a tilted one
        // is laid out straightened, regions and figure boxes turned back onto the page,
        // figures cropped straight. OCR reads it at the same tilt.
        if page.source == TextSource::Ocr {
            let upright = orientation::find(&image::imageops::grayscale(&image));
            if upright.turn != 0 {
                image = turn_page(workdir, &mut page, upright.turn, &image)?;
            }
            page.skew = upright.skew;
        }
        // A very large page is rendered at less than LAYOUT_DPI: scale by the image.
        let to_points = page.width / image.width().max(1) as f32;
        let (w, h) = image.dimensions();
        let image = match page.skew {
            Some(d) => RgbImage::from_raw(w, h, rotate::<3>(image.as_raw(), w, h, -d)).expect("the same size"),
            None => image,
        };
        let centre = [page.width / 2.0, page.height / 2.0];
        let on_page = |b: BBox| page.skew.map_or(b, |d| turn_box(&b, d, centre));
        let regions = model.detect(&image)?;
        let mut page_figures = Vec::new();
        for (bbox, score) in figure_boxes(&page, &regions, to_points) {
            let idx = page_figures.len() as i64;
            let name = format!("figures/p{:04}-{idx:02}.png", page.number);
            crop(&image, bbox.map(|v| v / to_points), &workdir.root.join(&name))?;
            page_figures.push(Figure {
                page: page.number as i64,
                idx,
                label: "figure".into(),
                score: score as f64,
                bbox: on_page(bbox).map(|v| v as f64),
                path: workdir.key(&name),
            });
        }
        page.regions =
            regions.into_iter().map(|r| Region { bbox: on_page(r.bbox.map(|v| v * to_points)), ..r }).collect();
        workdir.save_page(&page)?;
        written.extend(workdir.page_keys(&page));
        figures.push((page.number as i64, page_figures));
    }
    Ok((figures, written))
}

/// Turns a scanned page clockwise by `degrees` (90, 180 or 270) for good: its size, the
/// boxes it already holds, and its images, saved under new names so that running the stage
/// again finds the page upright whichever files it last saved. Returns the turned layout
/// image.
fn turn_page(workdir: &WorkDir, page: &mut Page, degrees: u32, layout: &RgbImage) -> Result<RgbImage, StageError> {
    let upright_name = |name: &str| format!("upright-{name}");
    let layout = turn_image(layout, degrees);
    if let Some(name) = &page.layout_image {
        let name = upright_name(name);
        save_png(&DynamicImage::ImageRgb8(layout.clone()), &workdir.pages_dir().join(&name))?;
        page.layout_image = Some(name);
    }
    if let Some(name) = &page.ocr_image {
        let grey = image::open(workdir.pages_dir().join(name))
            .map_err(|e| StageError::transient("read OCR image", e))?
            .to_luma8();
        let name = upright_name(name);
        save_png(&DynamicImage::ImageLuma8(turn_image(&grey, degrees)), &workdir.pages_dir().join(&name))?;
        page.ocr_image = Some(name);
    }
    let (w, h) = (page.width, page.height);
    let turn = |b: &BBox| quarter_turn_box(b, degrees, w, h);
    page.words.iter_mut().for_each(|word| word.bbox = turn(&word.bbox));
    page.images.iter_mut().for_each(|b| *b = turn(b));
    if degrees != 180 {
        (page.width, page.height) = (h, w);
    }
    page.turn = Some(degrees);
    Ok(layout)
}

/// `image` turned clockwise by `degrees`, a multiple of 90.
fn turn_image<P: image::Pixel + 'static>(
    image: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    degrees: u32,
) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    match degrees % 360 {
        90 => image::imageops::rotate90(image),
        180 => image::imageops::rotate180(image),
        270 => image::imageops::rotate270(image),
        _ => image.clone(),
    }
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
