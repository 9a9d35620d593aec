//! Lectern: a background job engine that turns uploaded documents into searchable
//! knowledge and study material. This crate is the front ends; the work is in
//! [`lectern_document`] (stages, engines, index) over [`lectern_queue`] (engine, storage).
//!
//! # Layout
//!
//! - [`cli`] — the `lectern` command line; [`http`] — the HTTP API and dashboard. Both
//!   are thin: they parse, call a use case and print or answer.
//! - Use cases both call: [`upload`] (type check, dedupe, submit), [`status`] (a
//!   document's status and pages, delete, flashcard review, progress events) and
//!   [`export`] (a document's content as Markdown, JSON or text), [`collections`]
//!   (documents page by page, collections, deleting a collection), [`study`] (study sets
//!   over a collection, reviews under its scheduler, due cards, collection settings).
//! - [`auth`] — API tokens and per-token limits.
//!
//! Quality measurements are `lectern-eval` (`crates/eval`), outside the server binary.

pub mod auth;
pub mod cli;
pub mod collections;
pub mod export;
pub mod http;
pub mod status;
pub mod study;
pub mod upload;
