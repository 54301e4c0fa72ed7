//! One integration-test binary. Every test starts the real server on 127.0.0.1:0
//! over a fresh database: SQLite by default, PostgreSQL when
//! ROLLCALL_TEST_DATABASE_URL names a server (each test gets its own database).

mod auth_cache;
mod browser;
mod clients;
mod crash;
mod foundation;
mod fuzz_corpus;
mod groups;
mod hardening;
mod hostile;
mod isolation;
mod metrics;
mod oauth;
mod pg_pool;
mod plans;
mod scale_out;
mod scim;
mod scim_filter_prop;
mod scim_rate;
mod security;
mod sso;
mod support;
mod teams_pages;
