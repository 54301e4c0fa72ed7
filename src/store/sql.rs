//! One statement, either database: its text (with `$1`, `$2`, ... placeholders,
//! which both dialects accept), its parameters, and rows read back by column name.
//!
//! SQLite is reached through rusqlite only (see `sqlite`), PostgreSQL through sqlx
//! only. A store function builds one `Sql` and hands it to `Db` (`read_*` on a
//! reader, `write_*`/`execute` on the write side), so its SQL text exists once; a
//! transaction with several statements is written once per database, side by side,
//! with the same `Sql` values (`lite_*` on the SQLite write thread, `pg_*` on a
//! PostgreSQL transaction).
//!
//! On SQLite values are stored the way earlier versions (through sqlx) stored them:
//! UUIDs as 16-byte blobs, times as RFC 3339 text, booleans as integers, JSON as
//! text; so a database written by any version reads back the same.

use super::{Result, StoreError};
use rusqlite::types::{Value as LiteValue, ValueRef};
use serde::de::DeserializeOwned;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use std::borrow::Cow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The type of a parameter, for a NULL (PostgreSQL types every parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Uuid,
    Time,
    Int,
    Bytes,
    Json,
}

/// A value bound to a numbered parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Bool(bool),
    Uuid(Uuid),
    Time(OffsetDateTime),
    Int(i64),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    Null(Kind),
}

/// Something that can be bound as a parameter.
pub trait IntoBind {
    const KIND: Kind;
    fn into_bind(self) -> Bind;
}

macro_rules! into_bind {
    ($($t:ty => $kind:ident, |$v:ident| $e:expr;)*) => {$(
        impl IntoBind for $t {
            const KIND: Kind = Kind::$kind;
            fn into_bind(self) -> Bind {
                let $v = self;
                $e
            }
        }
    )*};
}

into_bind! {
    &str => Text, |v| Bind::Text(v.to_owned());
    String => Text, |v| Bind::Text(v);
    &String => Text, |v| Bind::Text(v.clone());
    bool => Bool, |v| Bind::Bool(v);
    Uuid => Uuid, |v| Bind::Uuid(v);
    OffsetDateTime => Time, |v| Bind::Time(v);
    i64 => Int, |v| Bind::Int(v);
    i32 => Int, |v| Bind::Int(i64::from(v));
    &[u8] => Bytes, |v| Bind::Bytes(v.to_vec());
    Vec<u8> => Bytes, |v| Bind::Bytes(v);
    &Vec<u8> => Bytes, |v| Bind::Bytes(v.clone());
    serde_json::Value => Json, |v| Bind::Json(v);
    &serde_json::Value => Json, |v| Bind::Json(v.clone());
    crate::domain::Role => Text, |v| Bind::Text(v.as_str().to_owned());
}

impl<T: IntoBind> IntoBind for Option<T> {
    const KIND: Kind = T::KIND;
    fn into_bind(self) -> Bind {
        match self {
            Some(v) => v.into_bind(),
            None => Bind::Null(T::KIND),
        }
    }
}

impl IntoBind for Bind {
    const KIND: Kind = Kind::Text;
    fn into_bind(self) -> Bind {
        self
    }
}

impl Bind {
    /// The value as SQLite stores it. A time RFC 3339 cannot write (before year 0)
    /// is refused, as sqlx refused it,
    /// rather than stored as something unreadable.
    pub(crate) fn lite(&self) -> rusqlite::Result<LiteValue> {
        Ok(match self {
            Bind::Text(s) => LiteValue::Text(s.clone()),
            Bind::Bool(v) => LiteValue::Integer(i64::from(*v)),
            Bind::Uuid(u) => LiteValue::Blob(u.as_bytes().to_vec()),
            Bind::Time(t) => LiteValue::Text(
                t.format(&Rfc3339)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            ),
            Bind::Int(n) => LiteValue::Integer(*n),
            Bind::Bytes(b) => LiteValue::Blob(b.clone()),
            Bind::Json(v) => LiteValue::Text(v.to_string()),
            Bind::Null(_) => LiteValue::Null,
        })
    }

    fn pg<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match self {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Bool(v) => q.bind(*v),
            Bind::Uuid(u) => q.bind(*u),
            Bind::Time(t) => q.bind(*t),
            Bind::Int(n) => q.bind(*n),
            Bind::Bytes(b) => q.bind(b.as_slice()),
            Bind::Json(v) => q.bind(sqlx::types::Json(v)),
            Bind::Null(Kind::Text) => q.bind(None::<&str>),
            Bind::Null(Kind::Bool) => q.bind(None::<bool>),
            Bind::Null(Kind::Uuid) => q.bind(None::<Uuid>),
            Bind::Null(Kind::Time) => q.bind(None::<OffsetDateTime>),
            Bind::Null(Kind::Int) => q.bind(None::<i64>),
            Bind::Null(Kind::Bytes) => q.bind(None::<&[u8]>),
            Bind::Null(Kind::Json) => q.bind(None::<sqlx::types::Json<()>>),
        }
    }
}

/// One statement and its parameters.
#[derive(Debug, Clone)]
pub struct Sql {
    text: Cow<'static, str>,
    binds: Vec<Bind>,
    slow: bool,
}

/// A statement, parameters to follow.
pub fn sql(text: impl Into<Cow<'static, str>>) -> Sql {
    Sql {
        text: text.into(),
        binds: Vec::new(),
        slow: false,
    }
}

impl Sql {
    /// The next parameter (`$1`, then `$2`, ...).
    pub fn bind(mut self, v: impl IntoBind) -> Sql {
        self.binds.push(v.into_bind());
        self
    }

    /// Parameters already collected (a SCIM filter's).
    pub fn bind_all(mut self, binds: impl IntoIterator<Item = Bind>) -> Sql {
        self.binds.extend(binds);
        self
    }

    /// This read may scan many rows: on SQLite, run it on a blocking thread rather
    /// than on the async worker that asked (index lookups of a few microseconds
    /// run inline: a thread hand-off would cost more than the query).
    pub fn slow(mut self) -> Sql {
        self.slow = true;
        self
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.slow
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn params(&self) -> &[Bind] {
        &self.binds
    }

    /// The statement prepared (and cached) on a SQLite connection, `$n` bound to
    /// the n-th parameter (by name, so a parameter may appear more than once).
    fn lite_prepare<'c>(
        &self,
        c: &'c rusqlite::Connection,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        let mut stmt = c.prepare_cached(&self.text)?;
        for (i, v) in self.binds.iter().enumerate() {
            if let Some(at) = stmt.parameter_index(&format!("${}", i + 1))? {
                stmt.raw_bind_parameter(at, v.lite()?)?;
            }
        }
        Ok(stmt)
    }

    /// Every row, on a SQLite connection.
    pub(crate) fn lite_all<T: FromRow>(&self, c: &rusqlite::Connection) -> Result<Vec<T>> {
        let mut stmt = self.lite_prepare(c)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(T::from_row(&Row::Lite(r))?);
        }
        Ok(out)
    }

    /// The first row, if any, on a SQLite connection.
    pub(crate) fn lite_optional<T: FromRow>(&self, c: &rusqlite::Connection) -> Result<Option<T>> {
        let mut stmt = self.lite_prepare(c)?;
        let mut rows = stmt.raw_query();
        match rows.next()? {
            Some(r) => Ok(Some(T::from_row(&Row::Lite(r))?)),
            None => Ok(None),
        }
    }

    /// The first row, on a SQLite connection (`NotFound` when there is none).
    pub(crate) fn lite_one<T: FromRow>(&self, c: &rusqlite::Connection) -> Result<T> {
        self.lite_optional(c)?.ok_or(StoreError::NotFound)
    }

    /// Run a statement on a SQLite connection; the rows it changed.
    pub(crate) fn lite_execute(&self, c: &rusqlite::Connection) -> Result<u64> {
        Ok(self.lite_prepare(c)?.raw_execute()? as u64)
    }

    fn pg_query(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        self.binds
            .iter()
            .fold(sqlx::query(&self.text), |q, b| b.pg(q))
    }

    /// Every row, on PostgreSQL (a connection taken from `pg::Pg`, or a transaction).
    pub(crate) async fn pg_all<'e, T: FromRow>(
        &self,
        on: impl sqlx::PgExecutor<'e>,
    ) -> Result<Vec<T>> {
        let rows = self.pg_query().fetch_all(on).await?;
        rows.iter().map(|r| T::from_row(&Row::Pg(r))).collect()
    }

    pub(crate) async fn pg_optional<'e, T: FromRow>(
        &self,
        on: impl sqlx::PgExecutor<'e>,
    ) -> Result<Option<T>> {
        match self.pg_query().fetch_optional(on).await? {
            Some(r) => Ok(Some(T::from_row(&Row::Pg(&r))?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn pg_one<'e, T: FromRow>(&self, on: impl sqlx::PgExecutor<'e>) -> Result<T> {
        self.pg_optional(on).await?.ok_or(StoreError::NotFound)
    }

    pub(crate) async fn pg_execute<'e>(&self, on: impl sqlx::PgExecutor<'e>) -> Result<u64> {
        Ok(self.pg_query().execute(on).await?.rows_affected())
    }
}

/// A row of either database, read by column name.
pub enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(&'r PgRow),
}

/// Which column.
#[derive(Clone, Copy)]
pub enum Key<'k> {
    Name(&'k str),
    Position(usize),
}

impl std::fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Name(n) => f.write_str(n),
            Key::Position(i) => write!(f, "#{i}"),
        }
    }
}

impl Row<'_> {
    /// The column called `name`.
    pub fn get<T: Column>(&self, name: &str) -> Result<T> {
        self.at(Key::Name(name))
    }

    fn at<T: Column>(&self, key: Key<'_>) -> Result<T> {
        let undecodable = |why: String| StoreError::Decode(format!("column {key}: {why}"));
        match self {
            Row::Lite(r) => {
                let v = match key {
                    Key::Name(n) => r.get_ref(n),
                    Key::Position(i) => r.get_ref(i),
                }?;
                T::lite(v).map_err(undecodable)
            }
            Row::Pg(r) => Ok(T::pg(r, key)?),
        }
    }
}

/// A value a column can be read as.
pub trait Column: Sized {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String>;
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self>;
}

fn pg_get<'r, T>(r: &'r PgRow, key: Key<'_>) -> sqlx::Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    match key {
        Key::Name(n) => r.try_get(n),
        Key::Position(i) => r.try_get(i),
    }
}

fn expected<T>(what: &str, got: ValueRef<'_>) -> std::result::Result<T, String> {
    Err(format!("expected {what}, found {:?}", got.data_type()))
}

fn text(v: ValueRef<'_>) -> std::result::Result<&str, String> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| e.to_string()),
        other => expected("text", other),
    }
}

impl Column for String {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        text(v).map(str::to_owned)
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for i64 {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(n) => Ok(n),
            other => expected("an integer", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for i32 {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        i64::lite(v).and_then(|n| i32::try_from(n).map_err(|e| e.to_string()))
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for bool {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(n) => Ok(n != 0),
            other => expected("a boolean", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for Vec<u8> {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => expected("a blob", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for Uuid {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Uuid::from_slice(b).map_err(|e| e.to_string()),
            ValueRef::Text(_) => Uuid::parse_str(text(v)?).map_err(|e| e.to_string()),
            other => expected("a UUID", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for OffsetDateTime {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(_) => {
                OffsetDateTime::parse(text(v)?, &Rfc3339).map_err(|e| e.to_string())
            }
            ValueRef::Integer(n) => {
                OffsetDateTime::from_unix_timestamp(n).map_err(|e| e.to_string())
            }
            other => expected("a time", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl Column for crate::domain::Role {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        crate::domain::Role::parse(text(v)?).map_err(|e| e.0)
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        let name: String = pg_get(r, key)?;
        crate::domain::Role::parse(&name).map_err(|e| sqlx::Error::Decode(e.0.into()))
    }
}

impl<T: DeserializeOwned> Column for sqlx::types::Json<T> {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(t) | ValueRef::Blob(t) => serde_json::from_slice(t)
                .map(sqlx::types::Json)
                .map_err(|e| e.to_string()),
            other => expected("JSON", other),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        pg_get(r, key)
    }
}

impl<T: Column> Column for Option<T> {
    fn lite(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::lite(v).map(Some),
        }
    }
    fn pg(r: &PgRow, key: Key<'_>) -> sqlx::Result<Self> {
        use sqlx::ValueRef as _;
        let raw = match key {
            Key::Name(n) => r.try_get_raw(n),
            Key::Position(i) => r.try_get_raw(i),
        }?;
        if raw.is_null() {
            return Ok(None);
        }
        T::pg(r, key).map(Some)
    }
}

/// A type made from a whole row.
pub trait FromRow: Sized {
    fn from_row(r: &Row<'_>) -> Result<Self>;
}

/// One-column results (`SELECT COUNT(*)`, `RETURNING id`) read as their value.
macro_rules! scalar_rows {
    ($($t:ty),*) => {$(
        impl FromRow for $t {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                r.at(Key::Position(0))
            }
        }
        impl FromRow for Option<$t> {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                r.at(Key::Position(0))
            }
        }
    )*};
}
scalar_rows!(i64, bool, String, Uuid, OffsetDateTime, Vec<u8>);

/// `FromRow` for a struct whose fields are columns of the same names:
/// `from_row!(Workspace { id, subdomain, name })`.
#[macro_export]
macro_rules! from_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::store::sql::FromRow for $ty {
            fn from_row(r: &$crate::store::sql::Row<'_>) -> $crate::store::Result<Self> {
                Ok($ty { $($field: r.get(stringify!($field))?),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Mixed {
        id: Uuid,
        at: OffsetDateTime,
        gone: Option<OffsetDateTime>,
        doc: sqlx::types::Json<serde_json::Value>,
        flag: bool,
        n: i64,
    }
    from_row!(Mixed {
        id,
        at,
        gone,
        doc,
        flag,
        n
    });

    #[test]
    fn values_read_back_as_written_by_name() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let id = Uuid::now_v7();
        let at = crate::store::now();
        let q = sql(
            "SELECT $2 AS at, $1 AS id, $3 AS gone, $4 AS doc, $5 AS flag, $6 AS n, $6 + 1 AS m",
        )
        .bind(id)
        .bind(at)
        .bind(None::<OffsetDateTime>)
        .bind(serde_json::json!({"a": [1]}))
        .bind(true)
        .bind(41_i64);
        let row: Mixed = q.lite_one(&conn).unwrap();
        assert_eq!(
            row,
            Mixed {
                id,
                at,
                gone: None,
                doc: sqlx::types::Json(serde_json::json!({"a": [1]})),
                flag: true,
                n: 41
            }
        );
        let bad = sql("SELECT 'nope' AS at").lite_one::<OffsetDateTime>(&conn);
        assert!(matches!(bad, Err(StoreError::Decode(_))), "{bad:?}");
        let missing = sql("SELECT 1 AS n").lite_one::<Mixed>(&conn);
        assert!(missing.is_err());
        // RFC 3339 has no year before 0000.
        let early = time::macros::datetime!(-0001-01-01 0:00 UTC);
        let refused = sql("SELECT $1 AS at")
            .bind(early)
            .lite_one::<OffsetDateTime>(&conn);
        assert!(matches!(refused, Err(StoreError::Sqlite(_))), "{refused:?}");
    }
}
