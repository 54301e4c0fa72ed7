//! Browser sessions for tower-sessions, kept in the same database so any number of
//! Rollcall processes sharing PostgreSQL see the same sessions.

use super::Db;
use super::sql::sql;
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        DbSessionStore { db }
    }

    /// Remove expired sessions; run periodically.
    pub async fn delete_expired(&self) -> Result<u64> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let done = self
            .db
            .execute(sql("DELETE FROM sessions WHERE expires_at < $1").bind(now))
            .await
            .map_err(backend)?;
        Ok(done)
    }
}

fn backend(e: super::StoreError) -> Error {
    Error::Backend(e.to_string())
}

fn encode(record: &Record) -> Result<String> {
    serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = encode(record)?;
        // Ids are 128 random bits; on the off chance of a collision, draw again.
        loop {
            let done = self.db.execute(sql("INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",)
        .bind(record.id.to_string())
        .bind(&data)
        .bind(record.expiry_date.unix_timestamp()))
        .await
            .map_err(backend)?;
            if done == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let data = encode(record)?;
        self.db.execute(sql("INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",)
        .bind(record.id.to_string())
        .bind(&data)
        .bind(record.expiry_date.unix_timestamp()))
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        struct Stored {
            data: String,
            expires_at: i64,
        }
        crate::from_row!(Stored { data, expires_at });
        let row = self
            .db
            .read_optional::<Stored>(
                sql("SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at >= $2")
                    .bind(id.to_string())
                    .bind(now),
            )
            .await
            .map_err(backend)?;
        let Some(Stored { data, expires_at }) = row else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data).map_err(|e| Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(expires_at)
            .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.db
            .execute(sql("DELETE FROM sessions WHERE id = $1").bind(id.to_string()))
            .await
            .map_err(backend)?;
        Ok(())
    }
}
