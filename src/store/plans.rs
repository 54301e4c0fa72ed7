//! The queries on the SCIM and token hot paths, as the store runs them, and their
//! query plans: what the EXPLAIN test (tests/it/plans.rs) checks uses an index on
//! both databases.

use super::members::{self, Search};
use super::scim_sql::Bind;
use super::sql::{Sql, sql};
use super::{Backend, Db, Engine, Result, oauth, rate_limits, tokens};
use crate::scim::filter::{self, Filter};
use uuid::Uuid;

/// One hot-path query with sample parameters.
pub struct HotQuery {
    pub name: String,
    pub sql: String,
    pub binds: Vec<Bind>,
    /// Indexes of which the plan must name one, where using just any index is not
    /// enough (a filter must use the filtered column's index, not walk the
    /// workspace). Empty: any index will do.
    pub index: &'static [&'static str],
}

fn q(name: &str, sql: impl Into<String>, binds: Vec<Bind>) -> HotQuery {
    HotQuery {
        name: name.to_owned(),
        sql: sql.into(),
        binds,
        index: &[],
    }
}

/// Every query a SCIM request or a token-endpoint call runs (reads and the updates
/// that find their row), with sample values for `workspace_id`.
pub fn hot_queries(backend: Backend, workspace_id: i64) -> Result<Vec<HotQuery>> {
    let digest = || Bind::Bytes(vec![7; 32]);
    let at = || Bind::Time(super::now());
    let id = Uuid::now_v7();
    let mut out = vec![
        q(
            "api token + workspace",
            tokens::AUTHENTICATE_SQL,
            vec![digest()],
        ),
        q(
            "api token touch",
            tokens::TOUCH_SQL,
            vec![at(), Bind::Int(1)],
        ),
        q("oauth token", oauth::TOKEN_SQL, vec![digest()]),
        q(
            "oauth grant touch",
            oauth::TOUCH_GRANT_SQL,
            vec![at(), Bind::Int(1)],
        ),
        q(
            "oauth client",
            oauth::client_sql(),
            vec![Bind::Text("c".into())],
        ),
        q(
            "code redeem",
            oauth::REDEEM_CODE_SQL,
            vec![at(), digest(), Bind::Text("c".into())],
        ),
        q(
            "refresh grant lock",
            oauth::REFRESH_LOCK_SQL,
            vec![at(), digest()],
        ),
        q("refresh state", oauth::REFRESH_STATE_SQL, vec![digest()]),
        // Only the newest token of the family: not a walk of every token the
        // grant ever had (what (grant_id, kind) alone gave).
        HotQuery {
            index: &["oauth_tokens_by_grant_state"],
            ..q(
                "refresh rotate",
                oauth::ROTATE_SQL,
                vec![at(), Bind::Int(1)],
            )
        },
        q(
            "client credentials grant",
            oauth::CLIENT_GRANT_SQL,
            vec![
                Bind::Text("c".into()),
                Bind::Int(workspace_id),
                Bind::Text("scim:read".into()),
                at(),
                Bind::Int(1),
                at(),
                Bind::Text("rotated".into()),
            ],
        ),
        q(
            "client credentials grant use",
            oauth::CLIENT_GRANT_USE_SQL,
            vec![Bind::Text("c".into()), Bind::Int(1)],
        ),
        q(
            "rate limit hit",
            rate_limits::HIT_SQL,
            vec![Bind::Text("k".into()), Bind::Int(0)],
        ),
        q(
            "member by id",
            members::by_id_sql(),
            vec![Bind::Int(workspace_id), Bind::Uuid(id)],
        ),
        q(
            "member locked for a change",
            members::locked_sql(backend),
            vec![Bind::Int(workspace_id), Bind::Uuid(id)],
        ),
        q(
            "rate limit batch",
            rate_limits::ADD_SQL,
            vec![Bind::Text("k".into()), Bind::Int(0), Bind::Int(3)],
        ),
        q(
            "member count",
            match backend {
                Backend::Sqlite => members::COUNT_SQLITE,
                Backend::Postgres => members::COUNT_PG,
            },
            vec![Bind::Int(workspace_id)],
        ),
        q(
            "member emails delete",
            members::DELETE_EMAILS_SQL,
            vec![Bind::Uuid(id)],
        ),
    ];
    // UPDATE members: $1..$11 plain values, $12 the resource (JSON), $13 the time.
    let update = |check_version: bool| {
        let mut binds: Vec<Bind> = vec![
            Bind::Int(workspace_id),
            Bind::Uuid(id),
            Bind::Text("u".into()),
            Bind::Text("u".into()),
            Bind::Text("e".into()),
            Bind::Text("d".into()),
            Bind::Text("g".into()),
            Bind::Text("f".into()),
            Bind::Text("viewer".into()),
            Bind::Bool(true),
            Bind::Bool(true),
        ];
        binds.push(Bind::Json(serde_json::json!({})));
        binds.push(at());
        if check_version {
            binds.push(Bind::Int(1));
        }
        HotQuery {
            name: format!("member update (version check: {check_version})"),
            sql: members::update_sql(check_version),
            binds,
            index: &[],
        }
    };
    out.push(update(false));
    out.push(update(true));
    if backend == Backend::Postgres {
        out.push(HotQuery {
            index: &["oauth_tokens_by_grant_state"],
            ..q(
                "refresh rotate and issue",
                oauth::ROTATE_AND_ISSUE_PG,
                vec![
                    Bind::Int(1),
                    digest(),
                    Bind::Text("scim:read".into()),
                    at(),
                    at(),
                    Bind::Bytes(vec![8; 32]),
                    at(),
                ],
            )
        });
    }

    if backend == Backend::Postgres {
        out.push(q(
            "member count fold",
            members::FOLD_PG,
            vec![Bind::Int(workspace_id)],
        ));
        // A batch of lookups (`member_reads`): each key by its own unique index.
        let keys = super::member_reads::keys(
            [
                (
                    workspace_id,
                    &super::member_reads::Key::UserName("m1@acme.test".into()),
                ),
                (
                    workspace_id,
                    &super::member_reads::Key::ExternalId("ext-1".into()),
                ),
                (workspace_id, &super::member_reads::Key::Id(id)),
            ]
            .into_iter(),
        );
        out.push(HotQuery {
            index: &["members_user_name"],
            ..q(
                "member lookups",
                super::member_reads::lookup_sql(),
                vec![Bind::Json(keys)],
            )
        });
        // A batch of member changes (`member_batch`), found by the primary key.
        let key = serde_json::json!([{"w": workspace_id, "i": id}]);
        let ids = || Bind::Text(super::batch::array([id].iter()));
        out.push(HotQuery {
            index: &["members_pkey"],
            ..q(
                "member batch locked for changes",
                super::member_batch::locked_batch_sql(),
                vec![Bind::Json(key), ids()],
            )
        });
        // A batch of refresh-token presentations (`refresh_batch`): the token by
        // its digest, the family by its grant.
        let digests = || {
            Bind::Text(super::refresh_batch::digests(
                [[7u8; 32].as_slice()].into_iter(),
            ))
        };
        out.push(HotQuery {
            index: &["oauth_tokens_digest_key"],
            ..q(
                "refresh batch lock",
                super::refresh_batch::LOCK_BATCH_SQL,
                vec![at(), digests()],
            )
        });
        out.push(HotQuery {
            index: &["oauth_tokens_digest_key"],
            ..q(
                "refresh batch state",
                super::refresh_batch::state_batch_sql(),
                vec![digests()],
            )
        });
        out.push(HotQuery {
            index: &["oauth_tokens_by_grant_state"],
            ..q(
                "refresh batch rotate and issue",
                super::refresh_batch::ROTATE_AND_ISSUE_BATCH_SQL,
                vec![
                    Bind::Json(serde_json::json!([{"g": 1, "s": "scim:read", "t": 0, "a": "07", "r": "08", "ae": 0, "re": 0}])),
                    Bind::Text(super::batch::array([1].iter())),
                ],
            )
        });
        let data = members::MemberData {
            user_name: "u".into(),
            external_id: None,
            display_name: None,
            given_name: None,
            family_name: None,
            role: crate::domain::Role::Viewer,
            active: true,
            scim_managed: true,
            resource: serde_json::json!({}),
            emails_ci: Vec::new(),
        };
        let row = super::member_batch::update_row(workspace_id, id, &data);
        out.push(HotQuery {
            index: &["members_pkey"],
            ..q(
                "member batch update",
                super::member_batch::update_batch_sql(),
                vec![Bind::Json(serde_json::json!([row])), at(), ids()],
            )
        });
    }

    // Walking (workspace_id, id), or the primary key (id order) filtered by
    // workspace: PostgreSQL picks the latter when one workspace holds every row.
    let in_id_order: &[&str] = match backend {
        Backend::Sqlite => &["members_by_workspace"],
        Backend::Postgres => &["members_by_workspace", "members_pkey"],
    };
    // The primary key, or (workspace_id, id) with both columns bound.
    let by_id: &[&str] = match backend {
        Backend::Sqlite => &["sqlite_autoindex_members_1"],
        Backend::Postgres => &["members_pkey", "members_by_workspace"],
    };
    let filters: [(&str, Option<String>, &[&str]); 5] = [
        ("list", None, in_id_order),
        (
            "filter userName eq",
            Some("userName eq \"a@b.c\"".into()),
            &["members_user_name"],
        ),
        (
            "filter externalId eq",
            Some("externalId eq \"x\"".into()),
            &["members_external_id"],
        ),
        (
            "filter emails.value eq",
            Some("emails.value eq \"a@b.c\"".into()),
            &["member_emails_value"],
        ),
        ("filter id eq", Some(format!("id eq \"{id}\"")), by_id),
    ];
    for (name, f, index) in filters {
        let parsed: Option<Filter> = match f.as_deref() {
            Some(f) => {
                Some(filter::parse(f).map_err(|e| super::StoreError::InvalidFilter(e.detail))?)
            }
            None => None,
        };
        let search = Search {
            filter: parsed.as_ref(),
            sort: None,
            descending: false,
            // startIndex=1&count=100, as Okta's existence check sends.
            offset: 0,
            limit: 100,
            teams: true,
        };
        let l = members::list_sql(backend, workspace_id, &search, None)?;
        let with_index = |mut h: HotQuery| {
            h.index = index;
            h
        };
        out.push(with_index(q(
            &format!("{name}: count"),
            l.count_sql,
            l.count_binds,
        )));
        out.push(with_index(q(
            &format!("{name}: page"),
            l.page_sql,
            l.page_binds,
        )));
        if f.is_none() {
            let l = members::list_sql(backend, workspace_id, &search, Some(id))?;
            out.push(with_index(q(
                &format!("{name}: keyset page"),
                l.page_sql,
                l.page_binds,
            )));
        }
    }
    Ok(out)
}

/// The plan of `q`, one line per node. On PostgreSQL sequential scans are switched
/// off for this one transaction, so a plan still showing one means no index can
/// serve the query (small test tables would otherwise be scanned regardless).
pub async fn explain(db: &Db, q: &HotQuery) -> Result<Vec<String>> {
    /// One line of a plan: SQLite's `detail`, PostgreSQL's one column.
    struct Line(String);
    impl super::sql::FromRow for Line {
        fn from_row(r: &super::sql::Row<'_>) -> Result<Self> {
            Ok(Line(match r {
                super::sql::Row::Lite(_) => r.get("detail")?,
                super::sql::Row::Pg(_) => r.get("QUERY PLAN")?,
            }))
        }
    }
    let plan = |prefix: &str| -> Sql {
        sql(format!("{prefix} {}", q.sql)).bind_all(q.binds.iter().cloned())
    };
    let lines: Vec<Line> = match db.engine() {
        Engine::Sqlite(_) => db.read_all(plan("EXPLAIN QUERY PLAN")).await?,
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            sql("SET LOCAL enable_seqscan = off")
                .pg_execute(&mut *tx)
                .await?;
            let lines = plan("EXPLAIN").pg_all(&mut *tx).await?;
            tx.rollback().await?;
            lines
        }
    };
    Ok(lines.into_iter().map(|l| l.0).collect())
}

/// Whether a plan reads a table without an index: `SCAN <table>` with no index in
/// SQLite (virtual tables such as json_each are not tables), `Seq Scan` in
/// PostgreSQL.
pub fn full_scans(backend: Backend, plan: &[String]) -> Vec<String> {
    plan.iter()
        .filter(|line| {
            let l = line.trim();
            match backend {
                Backend::Sqlite => {
                    let l = l.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
                    l.starts_with("SCAN ")
                        && !l.contains("USING")
                        && !l.contains("VIRTUAL TABLE")
                        && !l.contains("CONSTANT ROW")
                }
                Backend::Postgres => l.contains("Seq Scan"),
            }
        })
        .cloned()
        .collect()
}

/// After seeding a test database: give PostgreSQL fresh statistics, as autovacuum
/// would in production. SQLite keeps none unless ANALYZE is run, and Rollcall never
/// runs it, so its default estimates are what production sees: left alone.
pub async fn analyze(db: &Db) -> Result<()> {
    if let Engine::Postgres(p) = db.engine() {
        p.execute(&sql("ANALYZE")).await?;
    }
    Ok(())
}
