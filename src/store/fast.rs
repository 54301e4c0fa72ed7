//! The SQLite hot-path reads, on the calling thread.
//!
//! sqlx-sqlite runs each connection on a worker thread of its own and sends every
//! statement there and the rows back: two thread hand-offs per statement. Profiling
//! the benchmark showed about half the server's time in the kernel switching threads
//! for that, against under 2% in SQLite itself. The reads on every SCIM request (the
//! bearer token) and the ones IdPs send most (a member by id, the userName /
//! externalId / email existence check) are single index lookups of a few
//! microseconds, so here they run synchronously on the async worker that asked,
//! through rusqlite on read-only WAL connections (which never wait for the writer).
//! Anything that may scan stays on sqlx.
//!
//! Values are read back the way sqlx wrote them: UUIDs as 16-byte blobs, times as
//! RFC 3339 text, booleans as integers, JSON as text.

use super::scim_sql::Bind;
use super::{Result, StoreError};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, Row};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Idle connections kept; at most one per async worker is busy at a time.
const KEEP: usize = 8;

#[derive(Debug)]
pub(crate) struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Reader {
    /// A reader of the SQLite file at `path` (not for in-memory databases, which
    /// exist once per connection).
    pub(crate) fn new(path: PathBuf) -> Reader {
        Reader {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA cache_size = -4000; PRAGMA query_only = 1;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Run `f` on an idle connection (opened when none is idle).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open().map_err(fail)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push(conn);
        }
        out.map_err(fail)
    }
}

/// Prepare `sql` (cached on the connection) with `$n` bound to `params[n - 1]`.
pub(crate) fn prepare<'c>(
    c: &'c Connection,
    sql: &str,
    params: &[SqlValue],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = c.prepare_cached(sql)?;
    for (i, v) in params.iter().enumerate() {
        if let Some(at) = stmt.parameter_index(&format!("${}", i + 1))? {
            stmt.raw_bind_parameter(at, v)?;
        }
    }
    Ok(stmt)
}

/// Run one statement; the number of rows it changed.
pub(crate) fn execute(c: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<usize> {
    prepare(c, sql, params)?.raw_execute()
}

/// A nullable text parameter.
pub(crate) fn opt_text(v: Option<&str>) -> SqlValue {
    v.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()))
}

/// The constraint (or message) of a unique-index violation, like
/// `super::unique_violation` for sqlx errors.
pub(crate) fn unique_violation(e: &rusqlite::Error) -> Option<String> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Some(msg.clone().unwrap_or_else(|| "unique constraint".into()))
        }
        _ => None,
    }
}

pub(crate) fn fail(e: rusqlite::Error) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(format!("sqlite read: {e}")))
}

fn conversion(i: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("not {what}").into(),
    )
}

/// Column `i` as a time written by sqlx (RFC 3339 text).
pub(crate) fn time_at(row: &Row, i: usize) -> rusqlite::Result<OffsetDateTime> {
    match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
            .ok_or_else(|| conversion(i, "an RFC 3339 time")),
        ValueRef::Integer(n) => {
            OffsetDateTime::from_unix_timestamp(n).map_err(|_| conversion(i, "a time"))
        }
        _ => Err(conversion(i, "a time")),
    }
}

pub(crate) fn opt_time_at(row: &Row, i: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    match row.get_ref(i)? {
        ValueRef::Null => Ok(None),
        _ => time_at(row, i).map(Some),
    }
}

/// Column `i` as a UUID written by sqlx (a 16-byte blob).
pub(crate) fn uuid_at(row: &Row, i: usize) -> rusqlite::Result<Uuid> {
    match row.get_ref(i)? {
        ValueRef::Blob(b) => Uuid::from_slice(b).map_err(|_| conversion(i, "a UUID")),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| conversion(i, "a UUID")),
        _ => Err(conversion(i, "a UUID")),
    }
}

/// Column `i` as JSON text.
pub(crate) fn json_at(row: &Row, i: usize) -> rusqlite::Result<serde_json::Value> {
    match row.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            serde_json::from_slice(t).map_err(|_| conversion(i, "JSON"))
        }
        _ => Err(conversion(i, "JSON")),
    }
}

/// A bound parameter as sqlx would have bound it.
pub(crate) fn value(b: &Bind) -> SqlValue {
    match b {
        Bind::Text(s) => SqlValue::Text(s.clone()),
        Bind::Bool(v) => SqlValue::Integer(i64::from(*v)),
        Bind::Uuid(u) => SqlValue::Blob(u.as_bytes().to_vec()),
        Bind::Time(t) => SqlValue::Text(t.format(&Rfc3339).unwrap_or_default()),
        Bind::Int(n) => SqlValue::Integer(*n),
        Bind::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let conn = Connection::open_in_memory().unwrap();
        let id = Uuid::now_v7();
        let at = crate::store::now();
        let row: (
            Uuid,
            OffsetDateTime,
            Option<OffsetDateTime>,
            serde_json::Value,
        ) = conn
            .query_row(
                "SELECT ?1, ?2, NULL, ?3",
                rusqlite::params![
                    value(&Bind::Uuid(id)),
                    value(&Bind::Time(at)),
                    r#"{"a":[1]}"#
                ],
                |r| {
                    Ok((
                        uuid_at(r, 0)?,
                        time_at(r, 1)?,
                        opt_time_at(r, 2)?,
                        json_at(r, 3)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(row, (id, at, None, serde_json::json!({"a": [1]})));
        let bad = conn.query_row("SELECT 'nope'", [], |r| time_at(r, 0));
        assert!(bad.is_err());
    }
}
