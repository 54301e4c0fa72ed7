//! Every query on a SCIM or token hot path uses an index, on SQLite and on
//! PostgreSQL (the suite runs on both). The queries are the store's own SQL texts
//! (`store::plans::hot_queries`), so a change to a query is checked here.
//!
//! PostgreSQL: the test tables are tiny, and the planner rightly prefers a
//! sequential scan for them whatever indexes exist; `explain` turns sequential scans
//! off for its transaction (`SET LOCAL enable_seqscan = off`), so a `Seq Scan` left in
//! the plan means no index can serve the query at all.

use crate::harness::TestApp;
use rollcall::store::{Backend, plans};

#[tokio::test]
async fn hot_path_queries_use_indexes() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let ws = rollcall::ops::workspace(&app.db, "acme").await.unwrap();
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
        if let Some(index) = q.index
            && !plan.iter().any(|l| l.contains(index))
        {
            problems.push(format!("{} does not use {index}: {plan:?}", q.name));
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
