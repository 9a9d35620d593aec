//! A fresh PostgreSQL database per test; `tests/end_to_end` includes this file too.

/// A fresh, empty database on the PostgreSQL server started by `scripts/pg.sh`.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("LECTERN_TEST_PG_URL").expect(
        "LECTERN_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL with scripts/pg.sh",
    );
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, _) = admin.rsplit_once('/').expect("URL has a database");
    format!("{base}/{name}")
}
