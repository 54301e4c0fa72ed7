//! PostgreSQL's connection pool (`store::pg`) gives a connection back to the next
//! request without a round trip when its work finished, so it must never hand on
//! one whose work did not: a transaction left uncommitted is rolled back first, and
//! a statement cut off midway is waited out. PostgreSQL only (the pool is its own);
//! on SQLite these return at once.

use crate::support::fresh_database_url;
use rollcall::store::Db;
use rollcall::store::sql::sql;
use std::time::Duration;

async fn postgres() -> Option<(String, Db)> {
    let url = fresh_database_url().await;
    if !url.starts_with("postgres") {
        return None;
    }
    let db = Db::connect(&url).await.expect("connect");
    Some((url, db))
}

/// The pool's connections as (open, idle), once they have all come back.
async fn settled(db: &Db) -> (u32, u32) {
    for _ in 0..100 {
        let p = &db.pool_use()[0];
        if p.size == p.idle {
            return (p.size, p.idle);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = &db.pool_use()[0];
    panic!("connections still out: {} open, {} idle", p.size, p.idle);
}

#[tokio::test]
async fn an_abandoned_transaction_is_rolled_back_before_its_connection_is_used_again() {
    let Some((url, db)) = postgres().await else {
        return;
    };
    db.execute(sql("CREATE TABLE t (x BIGINT PRIMARY KEY)"))
        .await
        .unwrap();
    db.abandon_transaction(sql("INSERT INTO t (x) VALUES (1)"))
        .await
        .unwrap();
    // Each of these commits on its own, whichever connection it gets (one still in
    // the abandoned transaction would hold them there, unseen by anyone else).
    for x in 2..10i64 {
        db.execute(sql("INSERT INTO t (x) VALUES ($1)").bind(x))
            .await
            .unwrap();
    }
    let other = Db::connect(&url).await.unwrap();
    let seen: Vec<i64> = other
        .read_all(sql("SELECT x FROM t ORDER BY x"))
        .await
        .unwrap();
    assert_eq!(seen, (2..10).collect::<Vec<i64>>());
    settled(&db).await;
    let in_transaction: i64 = other
        .read_one(sql("SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'"))
        .await
        .unwrap();
    assert_eq!(in_transaction, 0, "a connection was left in a transaction");
    db.close().await;
    other.close().await;
}

/// Twenty reads in a row, each answered with its own value.
async fn each_read_gets_its_own_answer(db: &Db) {
    for x in 0..20i64 {
        let got: i64 = db
            .read_one(sql("SELECT CAST($1 AS BIGINT)").bind(x))
            .await
            .unwrap();
        assert_eq!(got, x, "an answer meant for another statement");
    }
}

#[tokio::test]
async fn a_statement_cut_off_midway_costs_no_connection_and_no_wrong_answer() {
    let Some((_, db)) = postgres().await else {
        return;
    };
    db.cut_off(sql("SELECT pg_sleep(0.5)"), Duration::from_millis(200))
        .await;
    each_read_gets_its_own_answer(&db).await;
    // The cut-off connection is waited out and comes back (its slot is not lost),
    // and answers right when it is used again (taken first: the last one back).
    settled(&db).await;
    each_read_gets_its_own_answer(&db).await;
    db.close().await;
}

/// A backend ended under the pool (a server restart, a failover,
/// `pg_terminate_backend`) leaves a FATAL error waiting on its connection. The
/// request that reads it fails; its connection must not go back to the pool as
/// fit, or the next request fails on it too.
#[tokio::test]
async fn a_connection_whose_backend_was_ended_is_not_used_again() {
    let Some((url, db)) = postgres().await else {
        return;
    };
    let one = || async {
        db.read_one::<i64>(sql("SELECT CAST(1 AS BIGINT)"))
            .await
            .map(|_| ())
    };
    one().await.unwrap();
    settled(&db).await;
    let other = Db::connect(&url).await.unwrap();
    let ended: i64 = other
        .read_one(sql(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap();
    assert!(ended >= 1, "{ended} backends ended");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first use of the pool's one connection meets its end, at most.
    let first = one().await;
    settled(&db).await;
    let second = one().await;
    assert!(
        second.is_ok(),
        "the next request failed too: first {first:?}, then {second:?}"
    );
    db.close().await;
    other.close().await;
}
