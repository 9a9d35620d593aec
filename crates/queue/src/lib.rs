//! Lectern's job queue: persisted jobs, worker pools and the databases under them. It knows
//! nothing about documents beyond the rows it stores for them; what a job does is a
//! [`engine::Handler`] registered for its queue.
//!
//! # Layout
//!
//! - [`engine`] — worker pools: claim in batches, lease + heartbeat, run the queue's
//!   handler with its timeout, retry with exponential backoff and jitter, `dead` after
//!   `max_attempts`, batched completions, a janitor for finished jobs. Owns the error kinds
//!   a handler returns ([`engine::JobError`]: fail now or retry) and the per-queue settings
//!   ([`engine::QueueConfig`]).
//! - [`storage`] — the driver interface ([`storage::Store`]) and one backend per
//!   database: [`storage::sqlite`] (the embedded default: one file, WAL, a single writer)
//!   and [`storage::postgres`] (`FOR UPDATE SKIP LOCKED`, `LISTEN/NOTIFY`). Migrations are
//!   the top-level `migrations/<backend>/`, run at open. The same store also keeps the
//!   catalog rows (documents, figures, artifacts, flashcards, API tokens).
//! - [`shutdown`] — the graceful-stop signal every loop listens to.
//!
//! Tests: `tests/queue/` — one conformance suite every backend runs, and the engine over
//! both backends with scripted handlers.

pub mod engine;
pub mod shutdown;
pub mod storage;
