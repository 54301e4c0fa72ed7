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
use rollcall::store::{Backend, plans};

#[tokio::test]
async fn hot_path_queries_use_indexes() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let ws = crate::support::ops::workspace(&app.db, "acme")
        .await
        .unwrap();
    for i in 0..2000 {
        let email = rollcall::domain::Email::parse(&format!("m{i}@acme.test")).unwrap();
        let mut data = crate::support::ops::local_member(&email, rollcall::domain::Role::Viewer);
        data.external_id = Some(format!("ext-{i}"));
        rollcall::store::members::create(&app.db, ws.id, &data, None)
            .await
            .unwrap();
    }
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
