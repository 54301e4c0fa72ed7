//! SCIM 2.0 protocol (RFC 7643, RFC 7644): schemas, filters, PATCH, resource JSON,
//! errors. Pure: no axum, no SQL, no I/O.
pub mod error;
pub mod filter;
pub mod group;
pub mod patch;
pub mod resource;
pub mod schema;
