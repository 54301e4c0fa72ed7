//! Use cases: what Rollcall does, one module per area, between the HTTP adapters
//! (`http`, the CLI in `main.rs`) and the protocol rules (`scim`, `oauth`, `sso`) and
//! storage (`store`). Each takes typed values (a `Workspace`, a `Member`, a
//! `Subdomain`), never strings to look up again, and returns an error enum of its
//! own that the caller renders in its format (a page, RFC 6749 JSON, a SCIM error,
//! a CLI message). None of them knows about HTTP, so each is tested without a
//! server.
//!
//! - [`provisioning`]: the SCIM API (who is calling, read, list, create, replace,
//!   patch) and its activity log.
//! - [`teams`]: teams, through SCIM Groups (read, list, create, replace, patch,
//!   delete) and on the admin pages, with their activity log.
//! - [`tokens`]: the OAuth authorization server (checking an authorization request,
//!   consent, the code and refresh grants, revocation, introspection, and the rate
//!   limits around them).
//! - [`signin`]: signing a member in, by password (rate limits, timing defence)
//!   and by the workspace's identity provider (finding, linking or creating the
//!   member).
//! - [`admin`]: workspace administration shared by the CLI, `--demo`, the admin
//!   pages and the tests.

pub mod admin;
pub mod provisioning;
pub mod signin;
pub mod teams;
pub mod tokens;

#[cfg(test)]
pub(crate) mod testing;
