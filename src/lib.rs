//! Lectern: a background job engine that turns uploaded documents into searchable
//! knowledge and study material.
//!
//! # Layout
//!
//! - [`storage`] — the job store interface ([`storage::JobStore`]) and its backends
//!   ([`storage::sqlite`], the embedded default). Documents, jobs, figures, artifacts.
//! - [`engine`] — worker pools: claim, lease + heartbeat, run a stage, retry with backoff,
//!   enqueue the next stage; [`background`] — pools beside the HTTP server, on a runtime
//!   of their own at a lower CPU priority.
//! - [`pipeline`] — one module per stage: [`pipeline::ingest`], [`pipeline::render`]
//!   (pdfium), [`pipeline::layout`] (ONNX layout model), [`pipeline::ocr`] (tesseract),
//!   [`pipeline::chunk`], [`pipeline::embed`] (fastembed → LanceDB) and
//!   [`pipeline::generate`] (cheat sheet, quiz, flashcards); inputs other than PDF are read
//!   by [`pipeline::office`] (DOCX, PPTX) and [`pipeline::raster`] (PNG, JPEG, TIFF), and
//!   [`pipeline::language`] picks the OCR language.
//! - [`index`] — LanceDB, one table of chunks per collection: upsert, maintenance, vector,
//!   full-text and hybrid search; [`search`] embeds the query and asks it;
//!   [`classify`] — a document's type from its embedding.
//! - [`http`] — the HTTP API; [`cli`] — the command line. Both are thin. [`auth`] — API
//!   tokens and per-token limits.
//! - [`context`] — shared process state and lazily loaded models; [`config`] — settings
//!   and the pipeline definition (`jobs/pipeline.toml`); [`onnx`] — the one ONNX Runtime
//!   environment; [`sniff`] — file types from bytes; [`status`] — the operator's view of
//!   a document; [`shutdown`] — graceful stop; [`sm2`] — flashcard review scheduling;
//!   [`eval`] — quality measurements (`lectern eval`); [`webhook`] — signed callbacks
//!   when a document finishes, delivered as jobs of their own.

pub mod auth;
pub mod background;
pub mod classify;
pub mod cli;
pub mod config;
pub mod context;
pub mod engine;
pub mod eval;
pub mod http;
pub mod index;
pub mod onnx;
pub mod pipeline;
pub mod search;
pub mod shutdown;
pub mod sm2;
pub mod sniff;
pub mod status;
pub mod storage;
pub mod webhook;
