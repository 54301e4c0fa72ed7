//! Fixed-window rate limits kept in the database, so every process sharing it
//! counts together. A window is a row `(key, window_start, count)` bumped by one
//! atomic upsert.
//!
//! [`hit`] writes every event. [`hit_batched`], for limits that guard every request
//! of an endpoint (the OAuth token, revocation and introspection endpoints), counts
//! in the process and writes the events in batches while the window is far from its
//! limit; from a quarter of the limit on, and whenever a batch is 64 events or 250 ms
//! old, it writes through. A process never allows an event its own count already
//! refuses, so the limit holds exactly for one process; several processes can
//! together overshoot by what each has not yet written (at most a quarter of the
//! limit between them while below the quarter, then nothing).

use super::{Db, Result};
use crate::on_pool;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    Ok(count(db, key, limit).await?.verdict)
}

/// An event counted by [`count`], which [`refund`] can take back.
#[derive(Debug, Clone)]
pub struct Counted {
    key: String,
    window_start: i64,
    pub verdict: Verdict,
}

/// Count one event for `key` (one atomic upsert, so concurrent events across
/// every process each see a distinct count) and say whether it is within the limit.
pub async fn count(db: &Db, key: &str, limit: Limit) -> Result<Counted> {
    let (start, retry) = window(limit, unix_now());
    let count = on_pool!(db.writer(), |p| {
        sqlx::query_scalar::<_, i64>(HIT_SQL)
            .bind(key)
            .bind(start)
            .fetch_one(p)
            .await
    })?;
    let verdict = if count > i64::from(limit.max) {
        Verdict::Limited {
            retry_after_secs: retry,
        }
    } else {
        Verdict::Allowed
    };
    Ok(Counted {
        key: key.to_owned(),
        window_start: start,
        verdict,
    })
}

/// Take back an event counted by [`count`] (it turned out not to be one the limit
/// is about, such as a sign-in that succeeded).
pub async fn refund(db: &Db, counted: &Counted) -> Result<()> {
    on_pool!(db.writer(), |p| {
        sqlx::query(
            "UPDATE rate_limits SET count = count - 1 \
             WHERE key = $1 AND window_start = $2 AND count > 0",
        )
        .bind(&counted.key)
        .bind(counted.window_start)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Counts not yet written, per (key, window start); one per database.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    slots: Mutex<HashMap<(String, i64), Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// The window's count in the database when this process last wrote it.
    known: i64,
    /// Events counted here since then.
    pending: i64,
    /// Events sent to the database whose answer has not come back yet: they count
    /// as seen, or every event racing an in-flight write would pass unchecked.
    inflight: i64,
    since: Instant,
}

const BATCH: i64 = 64;
const BATCH_AGE: Duration = Duration::from_millis(250);
/// Past this many keys, windows that have ended are dropped.
const MAX_SLOTS: usize = 10_000;

/// What to do with one event, decided under the lock.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Refuse,
    Allow,
    /// Write this many events and decide on the count that comes back.
    Write(i64),
}

fn step(slot: &mut Slot, max: i64, now: Instant) -> Step {
    let seen = slot.known + slot.inflight + slot.pending + 1;
    if seen > max {
        // At least this many events happened in the window: over, whatever the
        // other processes did.
        return Step::Refuse;
    }
    if seen * 4 >= max || slot.pending + 1 >= BATCH || now - slot.since >= BATCH_AGE {
        let n = slot.pending + 1;
        slot.pending = 0;
        slot.inflight += n;
        slot.since = now;
        return Step::Write(n);
    }
    slot.pending += 1;
    Step::Allow
}

/// Count one event for `key`, writing to the database in batches (see the module
/// documentation). Same answers as [`hit`] within one process.
pub async fn hit_batched(db: &Db, key: &str, limit: Limit) -> Result<Verdict> {
    let (start, retry) = window(limit, unix_now());
    let limited = Verdict::Limited {
        retry_after_secs: retry,
    };
    let decision = {
        let mut slots = db
            .rate_counts
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slots.len() > MAX_SLOTS {
            slots.retain(|(_, s), _| *s >= start - 3600);
        }
        let now = Instant::now();
        let slot = slots.entry((key.to_owned(), start)).or_insert(Slot {
            known: 0,
            pending: 0,
            inflight: 0,
            since: now - BATCH_AGE,
        });
        step(slot, i64::from(limit.max), now)
    };
    let n = match decision {
        Step::Refuse => return Ok(limited),
        Step::Allow => return Ok(Verdict::Allowed),
        Step::Write(n) => n,
    };
    let written = on_pool!(db.writer(), |p| {
        sqlx::query_scalar::<_, i64>(ADD_SQL)
            .bind(key)
            .bind(start)
            .bind(n)
            .fetch_one(p)
            .await
    });
    if let Some(slot) = db
        .rate_counts
        .slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&(key.to_owned(), start))
    {
        slot.inflight -= n;
        if let Ok(count) = written {
            slot.known = slot.known.max(count);
        }
    }
    let count = written?;
    Ok(if count > i64::from(limit.max) {
        limited
    } else {
        Verdict::Allowed
    })
}

/// Count `$3` events at once.
pub(crate) const ADD_SQL: &str = "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, $3) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + $3 \
             RETURNING count";

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

    fn slot(known: i64, pending: i64, now: Instant) -> Slot {
        Slot {
            known,
            pending,
            inflight: 0,
            since: now,
        }
    }

    /// The database's answer to a write of `n` events.
    fn answered(s: &mut Slot, n: i64) {
        s.inflight -= n;
        s.known += n;
    }

    #[test]
    fn small_limits_write_every_event() {
        let now = Instant::now();
        let mut s = slot(0, 0, now);
        for _ in 0..3 {
            assert_eq!(step(&mut s, 3, now), Step::Write(1));
            answered(&mut s, 1);
        }
        assert_eq!(step(&mut s, 3, now), Step::Refuse);
        // At 8, the first event (under a quarter) is counted here, the rest written.
        let mut s = slot(0, 0, now);
        assert_eq!(step(&mut s, 8, now), Step::Allow);
        assert_eq!(step(&mut s, 8, now), Step::Write(2));
    }

    #[test]
    fn large_limits_batch_until_a_quarter() {
        let now = Instant::now();
        let mut s = slot(0, 0, now);
        for _ in 0..63 {
            assert_eq!(step(&mut s, 1_000_000, now), Step::Allow);
        }
        assert_eq!(step(&mut s, 1_000_000, now), Step::Write(64));
        assert_eq!(s.pending, 0);
        // Near the limit every event is written.
        let mut near = slot(250, 0, now);
        assert_eq!(step(&mut near, 1000, now), Step::Write(1));
        // An old batch is written even when small.
        let mut old = slot(0, 3, now - BATCH_AGE);
        assert_eq!(step(&mut old, 1_000_000, now), Step::Write(4));
    }

    #[test]
    fn events_racing_unanswered_writes_are_counted() {
        // Twenty events arrive before any write is answered: five pass.
        let now = Instant::now();
        let mut s = slot(0, 0, now - BATCH_AGE);
        let passed = (0..20)
            .filter(|_| step(&mut s, 5, now) != Step::Refuse)
            .count();
        assert_eq!(passed, 5);
        assert_eq!(s.inflight + s.pending, 5);
    }

    #[test]
    fn a_known_count_over_the_limit_refuses_without_writing() {
        let now = Instant::now();
        let mut s = slot(10, 0, now);
        assert_eq!(step(&mut s, 10, now), Step::Refuse);
        assert_eq!(s.pending, 0);
    }

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
