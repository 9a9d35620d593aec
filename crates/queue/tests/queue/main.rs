//! The queue crate's tests, one binary: the storage conformance suite every backend runs
//! (`store`) and the worker engine over both backends (`engine`). PostgreSQL is the server
//! `scripts/pg.sh` starts (`make test` sets `LECTERN_TEST_PG_URL`).

mod engine;
mod pg;
mod store;

pub use pg::fresh_pg_database;
