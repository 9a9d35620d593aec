//! Stage 2, render: pdfium reads each page's text layer with word boxes and decides per
//! page whether that text is usable or the page needs OCR; it renders a page image for
//! the layout model (150 DPI; not when the pipeline has no layout stage) and, for pages
//! that need OCR or whose invisible text layer OCR is to check, a 300-DPI grey image.
//! PNG/JPEG/TIFF uploads are 300 DPI scans, a page per image (TIFF: per TIFF page), turned
//! as their orientation tag says, their paper evened out for OCR. DOCX
//! and PPTX have nothing to render: their pages come from [`crate::formats::office`]. The
//! language of the text layer, when it says enough, is recorded on the document.

use std::path::Path;

use image::{DynamicImage, GenericImageView};

use super::Payload;
use crate::context::Context;
use crate::engines::pdfium::{IMAGE_DPI, LAYOUT_DPI, Renders, save_png};
use crate::error::StageError;
use crate::formats::sniff::MediaType;
use crate::model::workdir::{Page, TextSource, WorkDir};
use lectern_queue::storage::Figure;

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let doc = ctx
        .store
        .document(&payload.document_id)
        .await?
        .ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let media = doc
        .media_type
        .as_deref()
        .and_then(MediaType::from_mime)
        .ok_or_else(|| StageError::BadInput("document type unknown (ingest did not run)".into()))?;
    let range = payload.page_range(doc.pages.unwrap_or(1) as u32);
    let source = ctx.blobs.fetch_immutable(&super::ingest::upload_key(&doc.sha256)).await?;
    let workdir = ctx.workdir(&payload.document_id);
    std::fs::create_dir_all(workdir.pages_dir())?;
    let pages_dir = workdir.pages_dir();
    let pages = match media {
        MediaType::Pdf => {
            let follows = |stage: &str| ctx.pipeline.stages.iter().any(|s| s == stage);
            let renders = Renders { layout: follows("layout"), layer_check: follows("ocr") };
            ctx.pdfium_process().await?.render(source, pages_dir, range, renders).await?
        }
        MediaType::Docx | MediaType::Pptx => {
            let dir = workdir.clone();
            let (pages, figures) =
                crate::engines::cpu::spawn_cpu(move || read_office(&source, media, &dir, range)).await??;
            for (page, figs) in figures {
                ctx.blobs.publish_all(&figs.iter().map(|f| f.path.clone()).collect::<Vec<_>>()).await?;
                ctx.store.replace_figures(&payload.document_id, page, &figs).await?;
            }
            pages
        }
        _ => crate::engines::cpu::spawn_cpu(move || render_image(&source, media, &pages_dir, range)).await??,
    };
    let detect = doc.language.is_none();
    let keys: Vec<String> = pages.iter().flat_map(|p| workdir.page_keys(p)).collect();
    let language = crate::engines::cpu::spawn_cpu(move || {
        pages.iter().try_for_each(|p| workdir.save_page(p))?;
        let text = detect.then(|| {
            pages.iter().filter(|p| p.source == TextSource::TextLayer).map(|p| p.text() + " ").collect::<String>()
        });
        Ok::<_, StageError>(text.and_then(|text| crate::text::language::detect(&text)))
    })
    .await??;
    ctx.blobs.publish_all(&keys).await?;
    if let Some(lang) = language {
        ctx.store.set_language(&payload.document_id, lang).await?;
    }
    Ok(())
}

/// Image uploads: each page (a TIFF may have several) is a scan at [`IMAGE_DPI`].
fn render_image(
    path: &Path,
    media: MediaType,
    pages_dir: &Path,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Vec<Page>, StageError> {
    let mut pages = Vec::new();
    for number in range {
        let image = crate::formats::raster::page(path, media, number)?;
        let (w, h) = image.dimensions();
        let mut grey = image.to_luma8();
        let page = |layout_image, ocr_image| Page {
            number,
            width: w as f32 * 72.0 / IMAGE_DPI,
            height: h as f32 * 72.0 / IMAGE_DPI,
            source: TextSource::Ocr,
            words: Vec::new(),
            layout_image,
            ocr_image,
            regions: Vec::new(),
            ocr_confidence: None,
            skew: None,
            turn: None,
            invisible_text: false,
            layer_agreement: None,
            ocr_language: None,
            images: Vec::new(),
        };
        // A blank page has nothing to lay out or OCR.
        if crate::formats::raster::is_blank(&grey) {
            pages.push(page(None, None));
            continue;
        }
        // Photos of pages: shadows and grey paper evened out for OCR.
        crate::formats::raster::even_background(&mut grey);
        let scale = LAYOUT_DPI / IMAGE_DPI;
        let layout = image.resize_exact(
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        let (layout_name, ocr_name) = (format!("p{number:04}-layout.png"), format!("p{number:04}-ocr.png"));
        save_png(&DynamicImage::ImageRgb8(layout.to_rgb8()), &pages_dir.join(&layout_name))?;
        save_png(&DynamicImage::ImageLuma8(grey), &pages_dir.join(&ocr_name))?;
        pages.push(page(Some(layout_name), Some(ocr_name)));
    }
    Ok(pages)
}

/// Office images smaller than this (pixels, either side) are icons and bullets.
const MIN_OFFICE_IMAGE_SIDE: u32 = 48;

/// Pages, and the figures of each page by page number.
type PagesAndFigures = (Vec<Page>, Vec<(i64, Vec<Figure>)>);

/// DOCX/PPTX pages in `range`, and their embedded images saved as figures (PNG).
fn read_office(
    path: &Path,
    media: MediaType,
    workdir: &WorkDir,
    range: std::ops::RangeInclusive<u32>,
) -> Result<PagesAndFigures, StageError> {
    std::fs::create_dir_all(workdir.figures_dir())?;
    let mut pages = Vec::new();
    let mut figures = Vec::new();
    let mut package = crate::formats::office::Package::open(path)?;
    for laid in crate::formats::office::read(&mut package, media, range)? {
        let number = laid.page.number;
        let mut page_figures = Vec::new();
        for (bbox, part) in laid.images {
            let Some(bytes) = package.bytes(&part)? else { continue };
            // Formats the image crate does not read (EMF, WMF, GIF) and pixel bombs are skipped.
            let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format() else {
                continue;
            };
            let Ok((w, h)) = reader.into_dimensions() else { continue };
            if w.min(h) < MIN_OFFICE_IMAGE_SIDE || w as u64 * h as u64 > crate::formats::raster::MAX_IMAGE_PIXELS {
                continue;
            }
            let Ok(image) = image::load_from_memory(&bytes) else { continue };
            let idx = page_figures.len() as i64;
            let name = format!("figures/p{number:04}-{idx:02}.png");
            save_png(&image, &workdir.root.join(&name))?;
            // The virtual page reserves a square; the figure keeps the image's aspect ratio.
            let height = (bbox[2] - bbox[0]) * h as f32 / w as f32;
            let bbox = [bbox[0], bbox[1], bbox[2], bbox[1] + height.min(bbox[3] - bbox[1])];
            page_figures.push(Figure {
                page: number as i64,
                idx,
                label: "figure".into(),
                score: 1.0,
                bbox: bbox.map(f64::from),
                path: workdir.key(&name),
            });
        }
        figures.push((number as i64, page_figures));
        pages.push(laid.page);
    }
    Ok((pages, figures))
}
