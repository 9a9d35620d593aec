//! The cheat sheet (.docx, docx-rs): A4, 0.5" margins, two columns, Arial 9 pt body,
//! 11 pt bold headings in Word's built-in "heading 1" style, the best sentences per page
//! and figures 3.2" wide.

use docx_rs::{Docx, PageMargin, Paragraph, Pic, Run, RunFonts, Style, StyleType};

use super::text::Material;
use crate::pipeline::StageError;
use crate::storage::Figure;

pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
/// About two pages of 9 pt text in two columns.
const SENTENCE_BUDGET: usize = 40;
const MAX_FIGURES: usize = 4;
const EMU_PER_INCH: f32 = 914_400.0;
const FIGURE_WIDTH_IN: f32 = 3.2;

pub fn build(title: &str, material: &Material, figures: &[Figure]) -> Result<Vec<u8>, StageError> {
    let arial = || RunFonts::new().ascii("Arial").hi_ansi("Arial").cs("Arial");
    let mut docx = Docx::new()
        .page_size(11_906, 16_838) // A4 in twips
        .page_margin(PageMargin { top: 720, left: 720, bottom: 720, right: 720, header: 360, footer: 360, gutter: 0 })
        .default_fonts(arial())
        .default_size(18) // half-points: 9 pt
        .add_style(Style::new("Heading1", StyleType::Paragraph).name("heading 1").size(22).bold().fonts(arial()));
    docx.document.section_property.columns = 2;
    docx.document.section_property.space = 360;

    docx = docx.add_paragraph(
        Paragraph::new().style("Heading1").add_run(Run::new().add_text(format!("Cheat sheet: {title}"))),
    );
    let mut current_page = None;
    for s in material.top_sentences(SENTENCE_BUDGET) {
        if current_page != Some(s.page) {
            current_page = Some(s.page);
            docx = docx.add_paragraph(
                Paragraph::new().style("Heading1").add_run(Run::new().add_text(format!("Page {}", s.page))),
            );
        }
        docx = docx.add_paragraph(Paragraph::new().add_run(Run::new().add_text(format!("• {}", s.text))));
    }
    for f in figures.iter().take(MAX_FIGURES) {
        let Ok(bytes) = std::fs::read(&f.path) else { continue };
        let Ok((w, h)) = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|_| ())
            .and_then(|r| r.into_dimensions().map_err(|_| ()))
        else {
            continue;
        };
        let width = (FIGURE_WIDTH_IN * EMU_PER_INCH) as u32;
        let height = (width as f32 * h as f32 / w.max(1) as f32) as u32;
        docx = docx
            .add_paragraph(Paragraph::new().add_run(Run::new().add_image(Pic::new(&bytes).size(width, height))))
            .add_paragraph(Paragraph::new().add_run(Run::new().add_text(format!("Figure, page {}", f.page)).size(16)));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    docx.build().pack(&mut out).map_err(|e| StageError::transient("write cheat sheet", e))?;
    Ok(out.into_inner())
}
