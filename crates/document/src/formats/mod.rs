//! Input formats: the type of an upload from its bytes ([`sniff`]), DOCX and PPTX read from
//! their XML ([`office`]), image uploads ([`raster`]). PDFs are read through
//! [`crate::engines::pdfium`].

pub mod office;
pub mod raster;
pub mod sniff;
