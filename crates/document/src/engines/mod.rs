//! The native libraries and models the stages wrap, each with an explicit thread budget:
//! [`pdfium`] (its one owner thread, for tools; uploads go to [`pdfium_child`], pooled
//! processes under memory and CPU limits), [`tesseract`] (a pool of engines reused across
//! pages) with [`orientation`] and [`deskew`] (scans set upright and straightened before
//! layout and OCR), [`layout`] (the ONNX layout model), [`embedder`] (fastembed on its own
//! thread), [`onnx`] (the one ONNX
//! Runtime environment) and [`cpu`] (the priority their CPU work runs at).

pub mod cpu;
pub mod deskew;
pub mod embedder;
pub mod layout;
pub mod onnx;
pub mod orientation;
pub mod pdfium;
pub mod pdfium_child;
pub mod tesseract;
