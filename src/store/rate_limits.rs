//! Fixed-window rate limits kept in the database, so every process sharing it
//! counts together. A window is a row `(key, window_start, count)` bumped by one
//! atomic upsert.

use super::{Db, Result};
use crate::on_pool;

/// Count one event in a fixed window (one atomic upsert).
pub(crate) const HIT_SQL: &str = "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 \
             RETURNING count";

/// A limit: at most `max` events per `window_secs` for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: u32,
}

/// The outcome of counting an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; try again after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

fn window(limit: Limit, now_unix: i64) -> (i64, u64) {
    let w = i64::from(limit.window_secs.max(1));
    let start = now_unix - now_unix.rem_euclid(w);
    let retry = (start + w - now_unix).max(1) as u64;
    (start, retry)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Count one event for `key` and say whether it is within the limit.
pub async fn hit(db: &Db, key: &str, limit: Limit) -> Result<Verdict> {
    let (start, retry) = window(limit, unix_now());
    let count = on_pool!(db.writer(), |p| {
        sqlx::query_scalar::<_, i64>(HIT_SQL)
            .bind(key)
            .bind(start)
            .fetch_one(p)
            .await
    })?;
    Ok(if count > i64::from(limit.max) {
        Verdict::Limited {
            retry_after_secs: retry,
        }
    } else {
        Verdict::Allowed
    })
}

/// Whether `key` has already used up its limit in this window, without counting.
pub async fn check(db: &Db, key: &str, limit: Limit) -> Result<Verdict> {
    let (start, retry) = window(limit, unix_now());
    let count = on_pool!(db.reader(), |p| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count FROM rate_limits WHERE key = $1 AND window_start = $2",
        )
        .bind(key)
        .bind(start)
        .fetch_optional(p)
        .await
    })?
    .unwrap_or(0);
    Ok(if count >= i64::from(limit.max) {
        Verdict::Limited {
            retry_after_secs: retry,
        }
    } else {
        Verdict::Allowed
    })
}

/// Forget windows that ended more than a day ago.
pub async fn delete_old(db: &Db) -> Result<u64> {
    let before = unix_now() - 86_400;
    Ok(on_pool!(db.writer(), |p| {
        sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_retry_points_to_the_next() {
        let l = Limit {
            max: 1,
            window_secs: 60,
        };
        assert_eq!(window(l, 120), (120, 60));
        assert_eq!(window(l, 179), (120, 1));
        assert_eq!(window(l, 150), (120, 30));
    }
}
