//! Lectern end to end, one test binary (each binary links the whole stack): the stages on
//! real fixtures, the pipeline through the engine, retrieval, study material, export, the HTTP API
//! and worker processes. `pg_restart` stays a binary of its own: it restarts the shared
//! PostgreSQL server.

mod common;
mod course;
mod disk_full;
mod export;
mod extract;
mod hostile;
mod http;
mod object_store;
mod pipeline;
mod processes;
mod retrieval;
mod stages;
mod study;
