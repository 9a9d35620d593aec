//! Either database behind one type, so SQL that both run alike is written once.
//!
//! [`on_pool!`] and [`on_tx!`] expand a body once per backend with that backend's concrete
//! pool or transaction bound to a name; the body is ordinary sqlx code. SQL uses `$1`-style
//! parameters, which SQLite reads too, and `TRUE`/`FALSE` for booleans.

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use super::Result;

pub(crate) enum Db {
    /// Reads go to `reader`; every write to `writer`, a single connection, so this process's
    /// writers queue in order instead of colliding on SQLite's write lock and sleeping in
    /// its busy handler.
    Sqlite {
        reader: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

/// A write transaction on either database.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Db {
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// `on_pool!(db, read |pool| body)` or `on_pool!(db, write |pool| body)`: runs `body` with
/// `pool` bound to the database's pool for reads or for writes (the same pool on
/// PostgreSQL; SQLite's single writer connection for writes).
macro_rules! on_pool {
    ($db:expr, read | $pool:ident | $body:expr) => {
        match $db {
            $crate::storage::db::Db::Sqlite { reader: $pool, .. } => $body,
            $crate::storage::db::Db::Postgres($pool) => $body,
        }
    };
    ($db:expr, write | $pool:ident | $body:expr) => {
        match $db {
            $crate::storage::db::Db::Sqlite { writer: $pool, .. } => $body,
            $crate::storage::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// `on_tx!(tx, |t| body)`: runs `body` with `t` bound to the backend's `&mut Transaction`
/// (statements execute on `&mut **t`).
macro_rules! on_tx {
    ($tx:expr, | $t:ident | $body:expr) => {
        match $tx {
            $crate::storage::db::Tx::Sqlite($t) => $body,
            $crate::storage::db::Tx::Postgres($t) => $body,
        }
    };
}
pub(crate) use on_tx;
