//! Lectern's document side: from an uploaded file to pages, chunks, vectors and study
//! material. Depends on [`lectern_queue`] for the store and the engine; knows nothing of
//! HTTP or the command line.
//!
//! # Layout
//!
//! Lowest first; a module only uses modules above it in this list (`scripts/layers.py`
//! checks it).
//!
//! - [`error`] — [`error::StageError`]: bad input (fail now) or transient (retry).
//! - [`blob`] — where every file is kept: the data directory, or an S3-compatible store
//!   with the data directory as this host's cache.
//! - [`config`] — settings and the pipeline definition (`jobs/pipeline.toml`): stages,
//!   queues, and the `[chunk]`, `[classify]`, `[generate]` sections.
//! - [`model`] — the page model and geometry, the per-document files, chunks.
//! - [`formats`] — file types from bytes, DOCX/PPTX from their XML, image uploads.
//! - [`text`] — reading order and language detection.
//! - [`engines`] — pdfium (one owner thread), tesseract, the layout model, the embedder,
//!   the ONNX Runtime environment, CPU priority.
//! - [`schedule`] — flashcard reviews under SM-2 or FSRS; [`generate`] — study material (cheat sheet,
//!   quiz, flashcards and their Anki, CSV, Moodle XML and GIFT exports); [`index`] — LanceDB, one table of chunks per collection;
//!   [`classify`] — a document's type from its embedding; [`export`] — a document's
//!   content as Markdown, JSON or plain text; [`extract`] — schema fields (invoice number,
//!   dates, amounts…) found by geometry on the pages, typed, checked and scored.
//! - [`context`] — settings, the store, and the engines loaded on first use.
//! - [`stages`] — one module per stage, all `run(ctx, payload)`: ingest, render, layout,
//!   ocr, chunk, embed, extract, generate, and `study` (material over a collection); [`search`] — embed a query and ask the index;
//!   [`ask`] — answers with citations from retrieved passages (extractive, or an LLM's);
//!   [`webhook`] — signed callbacks when a document finishes; [`orphans`] — files no row
//!   refers to, swept.
//! - [`pipeline`] — the engine's handlers: run a stage, then enqueue what follows;
//!   [`housekeeping`] — periodic cache trims and orphan sweeps.
//! - [`background`] — worker pools beside a server.

pub mod ask;
pub mod background;
pub mod blob;
pub mod classify;
pub mod config;
pub mod context;
pub mod engines;
pub mod error;
pub mod export;
pub mod extract;
pub mod formats;
pub mod generate;
pub mod housekeeping;
pub mod index;
pub mod model;
pub mod orphans;
pub mod pipeline;
pub mod schedule;
pub mod search;
pub mod stages;
pub mod text;
pub mod webhook;
