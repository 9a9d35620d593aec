//! Input formats: the type of an upload from its bytes ([`sniff`]), DOCX and PPTX read from
//! their XML ([`office`]), image uploads ([`raster`]). PDFs are read through
//! [`crate::engines::pdfium`].

pub mod office;
pub mod raster;
pub mod sniff;

use crate::config::LimitsConfig;
use crate::error::StageError;

/// The error for a document with more pages than `[limits] max_pages`.
pub fn over_page_limit(what: &str, pages: impl std::fmt::Display, limits: &LimitsConfig) -> StageError {
    StageError::BadInput(format!(
        "the {what} has {pages} pages, over the limit of {} pages ([limits] max_pages)",
        limits.max_pages
    ))
}
