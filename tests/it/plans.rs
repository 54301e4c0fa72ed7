//! Every query on a SCIM or token hot path uses an index, on SQLite and on
//! PostgreSQL (the suite runs on both). The queries are the store's own SQL texts
//! (`store::plans::hot_queries`), so a change to a query is checked here.
//!
//! PostgreSQL: on tiny tables the planner rightly prefers a sequential scan, or any
//! index at all, whatever indexes fit best. So the test does both: it seeds 2,000
//! members and runs ANALYZE, so the members indexes are chosen on their merits (a
//! filter must use the filtered column's own index), and `explain` turns sequential
//! scans off for its transaction (`SET LOCAL enable_seqscan = off`) for the small
//! token tables, so a `Seq Scan` left in a plan means no index can serve it.

use crate::support::TestApp;
use rollcall::store::workspaces::Workspace;
use rollcall::store::{Backend, plans};

/// Workspace `acme` with `n` members (m0@acme.test ..., externalId ext-0 ...).
async fn seeded(n: usize) -> (TestApp, Workspace) {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let ws = crate::support::ops::workspace(&app.db, "acme")
        .await
        .unwrap();
    for i in 0..n {
        let email = rollcall::domain::Email::parse(&format!("m{i}@acme.test")).unwrap();
        let mut data = crate::support::ops::local_member(&email, rollcall::domain::Role::Viewer);
        data.external_id = Some(format!("ext-{i}"));
        rollcall::store::members::create(&app.db, ws.id, &data, None)
            .await
            .unwrap();
    }
    (app, ws)
}

#[tokio::test]
async fn hot_path_queries_use_indexes() {
    let (app, ws) = seeded(2000).await;
    plans::analyze(&app.db).await.unwrap();
    let backend = app.db.backend();
    let mut problems = Vec::new();
    let queries = plans::hot_queries(backend, ws.id).unwrap();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    for q in &queries {
        let plan = plans::explain(&app.db, q)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {}: {e}\n{}", q.name, q.sql));
        let scans = plans::full_scans(backend, &plan);
        if !scans.is_empty() {
            problems.push(format!(
                "{}: {scans:?}\n  {}\n  plan: {plan:?}",
                q.name, q.sql
            ));
        }
        if !q.index.is_empty() && !plan.iter().any(|l| q.index.iter().any(|i| l.contains(i))) {
            problems.push(format!("{} uses none of {:?}: {plan:?}", q.name, q.index));
        }
        // Listing in the default order walks the (workspace_id, id) index: no sort.
        if backend == Backend::Sqlite
            && q.name.starts_with("list:")
            && plan.iter().any(|l| l.contains("TEMP B-TREE"))
        {
            problems.push(format!("{} sorts: {plan:?}", q.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.stop().await;
}

/// PostgreSQL keeps one plan for each SCIM list statement rather than planning it
/// again on every execution. After five executions of a prepared statement it
/// compares its generic plan with the ones it made for the values, and keeps making
/// new ones when the generic looks dearer: it did for the list pages while LIMIT
/// and OFFSET were parameters and the teams subquery read tables without statistics
/// (a workspace that never had teams: autovacuum never analyzes an empty table).
/// Each existence check then paid a planning. So the members here are analyzed,
/// as autovacuum does after an import, and the team tables are not.
#[tokio::test]
async fn list_pages_keep_one_plan() {
    use rollcall::store::sql::Bind;
    use sqlx::Connection;
    let (app, ws) = seeded(500).await;
    if app.db.backend() != Backend::Postgres {
        app.stop().await;
        return;
    }
    let literal = |b: &Bind| match b {
        Bind::Int(i) => i.to_string(),
        Bind::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Bind::Uuid(u) => format!("'{u}'"),
        other => panic!("no literal for {other:?}"),
    };
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::raw_sql("ANALYZE members; ANALYZE member_emails")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut checked = 0;
    let mut problems = Vec::new();
    for q in plans::hot_queries(Backend::Postgres, ws.id).unwrap() {
        // A keyset page (`id > $n`, an import's next page) is rightly planned for
        // where it starts: how many rows follow depends on the value.
        if !q.name.ends_with(": page") {
            continue;
        }
        let args: Vec<String> = q.binds.iter().map(literal).collect();
        let prepare = format!("PREPARE p{checked} AS {}", q.sql);
        sqlx::raw_sql(&prepare)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", q.name, q.sql));
        let execute = format!("EXECUTE p{checked}({})", args.join(", "));
        for _ in 0..6 {
            sqlx::raw_sql(&execute).execute(&mut conn).await.unwrap();
        }
        let explain = format!("EXPLAIN {execute}");
        let plan: Vec<String> = sqlx::query_scalar(&explain)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        // A generic plan names the parameters; one made for the values shows them.
        if !plan.iter().any(|l| l.contains("$1")) {
            problems.push(format!(
                "{} is planned for each execution: {plan:?}",
                q.name
            ));
        }
        checked += 1;
    }
    assert!(checked >= 5, "{checked} list statements");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.stop().await;
}
