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
//!
//! [`scim_hit`], for the SCIM API (every request, per token), decides in memory with
//! a token bucket and reports to the database in the background; its bound across
//! processes is stated where it is defined.

use super::sql::sql;
use super::{Backend, Db, Result};
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
    let count = db
        .write_one::<i64>(sql(HIT_SQL).bind(key).bind(start))
        .await?;
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
    db.execute(
        sql("UPDATE rate_limits SET count = count - 1 \
             WHERE key = $1 AND window_start = $2 AND count > 0")
        .bind(&counted.key)
        .bind(counted.window_start),
    )
    .await?;
    Ok(())
}

/// Counts not yet written, per (key, window start); one per database.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    slots: Mutex<HashMap<(String, i64), Slot>>,
    /// The SCIM token buckets (see [`scim_hit`]).
    scim: ScimBuckets,
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
            // Ended windows first; if the current one alone is that large, start
            // over (the database still holds every count that was written).
            slots.retain(|(_, s), _| *s >= start);
            if slots.len() > MAX_SLOTS {
                slots.clear();
            }
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
    // Whatever happens to this write (an answer, an error, the request dropped
    // while waiting), its events stop being in flight.
    let mut landing = Landing {
        counts: &db.rate_counts,
        key: (key.to_owned(), start),
        n,
        outcome: None,
    };
    let written = db
        .write_one::<i64>(sql(ADD_SQL).bind(key).bind(start).bind(n))
        .await;
    landing.outcome = Some(written.as_ref().ok().copied());
    drop(landing);
    let count = written?;
    Ok(if count > i64::from(limit.max) {
        limited
    } else {
        Verdict::Allowed
    })
}

/// Settles a write of `n` events on its slot when dropped: the count the database
/// answered becomes known; a failed or abandoned write puts its events back as
/// pending (they were allowed, so they still count).
struct Landing<'a> {
    counts: &'a LocalCounts,
    key: (String, i64),
    n: i64,
    /// `Some(Some(count))`: answered; `Some(None)`: failed; `None`: dropped early.
    outcome: Option<Option<i64>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut slots = self.counts.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(&self.key) {
            slot.inflight -= self.n;
            match self.outcome {
                Some(Some(count)) => slot.known = slot.known.max(count),
                _ => slot.pending += self.n,
            }
        }
    }
}

/// Count `$3` events at once.
pub(crate) const ADD_SQL: &str = "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, $3) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + $3 \
             RETURNING count";

/// Forget windows that ended more than a day ago, and SCIM buckets that have been full
/// for a day (a full bucket is what a missing row means).
pub async fn delete_old(db: &Db) -> Result<u64> {
    let before = unix_now() - 86_400;
    db.execute(
        sql(
            "DELETE FROM rate_limits WHERE (window_start < $1 AND window_start <> $2) \
             OR (window_start = $2 AND count < $3)",
        )
        .bind(before)
        .bind(SCIM_ROW)
        .bind(before.saturating_mul(1_000_000)),
    )
    .await
}

// ---------------------------------------------------------------------------
// SCIM: a token bucket per token, decided in memory, shared through the database
// (see `scim_hit`)
// ---------------------------------------------------------------------------

/// `window_start` of SCIM bucket rows, whose `count` is the bucket's time in µs since
/// the Unix epoch (windows are never negative).
const SCIM_ROW: i64 = -1;
const SCIM_SHARDS: usize = 16;
/// Past this many buckets in a shard, full ones are forgotten (they mean nothing).
const SCIM_MAX_PER_SHARD: usize = 4096;
/// How often a token in use reports what this process allowed, in the background.
const SCIM_SYNC_EVERY_US: i64 = 1_000_000;
const MINUTE_US: i64 = 60_000_000;

const SCIM_SQLITE: &str = "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, -1, $2 + $3) \
     ON CONFLICT (key, window_start) DO UPDATE SET count = max(rate_limits.count, $2) + $3 \
     RETURNING count";
const SCIM_POSTGRES: &str = "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, -1, $2 + $3) \
     ON CONFLICT (key, window_start) DO UPDATE SET count = GREATEST(rate_limits.count, $2) + $3 \
     RETURNING count";

/// How many requests one process may allow for a token before it reports them (the
/// `c` of the bound in [`scim_hit`]): two seconds' worth of `limit` a minute, at least one.
pub fn scim_sync_share(limit: u32) -> u32 {
    limit.div_ceil(30).max(1)
}

/// The answer for one SCIM request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimVerdict {
    /// Requests a minute (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the bucket after this one (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// `Some(seconds)` when refused: when the next request will be allowed.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug)]
struct ScimBuckets {
    shards: Box<[Mutex<HashMap<String, Bucket>>]>,
    /// Wakes requests waiting for a report of their shard to finish.
    reported: Box<[tokio::sync::Notify]>,
}

impl Default for ScimBuckets {
    fn default() -> Self {
        ScimBuckets {
            shards: (0..SCIM_SHARDS).map(|_| Mutex::default()).collect(),
            reported: (0..SCIM_SHARDS)
                .map(|_| tokio::sync::Notify::new())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    /// GCRA time, µs since the Unix epoch: the bucket is full when this is not after
    /// now, and empty when it is a whole minute (the burst) after now.
    tat: i64,
    /// Requests allowed here and not yet reported.
    unsynced: i64,
    /// A report is under way.
    syncing: bool,
    last_sync: i64,
}

impl Bucket {
    fn new(now: i64) -> Self {
        Bucket {
            tat: now,
            unsynced: 0,
            syncing: false,
            last_sync: now,
        }
    }
}

/// The rate of `limit` requests a minute, with a minute's worth as burst.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// µs between two requests at the full rate.
    interval: i64,
    /// The burst, in µs of `interval`s: `limit * interval`.
    burst: i64,
    share: i64,
}

impl Rate {
    fn new(limit: u32) -> Self {
        let interval = (MINUTE_US / i64::from(limit.max(1))).max(1);
        Rate {
            interval,
            burst: interval * i64::from(limit),
            share: i64::from(scim_sync_share(limit)),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Take {
    Allowed {
        remaining: u32,
    },
    Limited {
        retry_after_secs: u64,
    },
    /// This process has allowed its share since its last report: report first.
    Report,
}

/// Decide one request on the local bucket (pure, under the shard lock).
fn take(b: &mut Bucket, now: i64, rate: Rate) -> Take {
    let next = b.tat.max(now) + rate.interval;
    let over = next - (now + rate.burst);
    if over > 0 {
        return Take::Limited {
            retry_after_secs: (over as u64).div_ceil(1_000_000).max(1),
        };
    }
    if b.unsynced >= rate.share {
        return Take::Report;
    }
    b.tat = next;
    b.unsynced += 1;
    Take::Allowed {
        remaining: ((now + rate.burst - next) / rate.interval).clamp(0, i64::from(u32::MAX)) as u32,
    }
}

/// Fold a report's answer in: `shared` is the bucket's time in the database after
/// adding `reported` requests; what was allowed here meanwhile comes on top.
fn settle(b: &mut Bucket, reported: i64, shared: Option<i64>, now: i64, rate: Rate) {
    b.unsynced = (b.unsynced - reported).max(0);
    if let Some(shared) = shared {
        b.tat = b.tat.max(shared + b.unsynced * rate.interval);
    }
    b.syncing = false;
    b.last_sync = now;
}

fn now_us() -> i64 {
    let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn shard_of(key: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    (BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize) % SCIM_SHARDS
}

/// Count one SCIM request for `key` (a token) against `limit` requests a minute
/// (`limit` > 0).
///
/// Every SCIM request passes here, so the decision is made in memory: a token bucket
/// per token (GCRA: one "theoretical arrival time" per key) that holds a minute's
/// worth (`limit`) and refills at `limit / 60` a second. Processes sharing the
/// database report what they allowed to one row per token, which is the same bucket
/// kept in the database (`count = max(count, now) + n * interval`); the reply
/// corrects the local bucket (the later of the two times wins), so each process
/// learns what the others used. A report is made in the background once a second while a token
/// is in use, and in the foreground only when this process has allowed its share `c`
/// ([`scim_sync_share`]: two seconds' worth, at least one request) since its last
/// report: no request waits on the database while a token stays under its rate. A
/// report that fails is logged and dropped: the local bucket still limits.
///
/// **Bound.** One process is exact: it never allows what its own bucket refuses. N
/// processes decide on views that miss at most what each other process allowed since
/// its last report, at most `c` each, so together they allow at most one bucket's
/// worth plus N * c: in any t seconds at most `limit * (1 + t/60) + N * c`, i.e.
/// `limit * (1 + N/30) + limit * t/60` (at least N extra requests for small limits).
/// What they over-allow is paid back: each process sees it at its next report and
/// refuses until the bucket has refilled that much. (Checked on a simulation in the
/// tests below, and end to end by `tests/it/scim_rate.rs` with two servers.)
pub async fn scim_hit(db: &Db, key: &str, limit: u32) -> ScimVerdict {
    let rate = Rate::new(limit);
    let buckets = &db.rate_counts.scim;
    let i = shard_of(key);
    loop {
        let now = now_us();
        let report = {
            let mut shard = buckets.shards[i].lock().unwrap_or_else(|e| e.into_inner());
            if shard.len() >= SCIM_MAX_PER_SHARD {
                shard.retain(|_, b| b.tat > now || b.unsynced > 0 || b.syncing);
            }
            let b = shard
                .entry(key.to_owned())
                .or_insert_with(|| Bucket::new(now));
            let taken = take(b, now, rate);
            let background =
                b.unsynced > 0 && !b.syncing && now - b.last_sync >= SCIM_SYNC_EVERY_US;
            match taken {
                Take::Report if b.syncing => Err(buckets.reported[i].notified()),
                Take::Report => {
                    b.syncing = true;
                    Ok(b.unsynced)
                }
                Take::Allowed { remaining } => {
                    if background {
                        b.syncing = true;
                        spawn_report(db, key, b.unsynced, rate);
                    }
                    return ScimVerdict {
                        limit,
                        remaining,
                        retry_after_secs: None,
                    };
                }
                Take::Limited { retry_after_secs } => {
                    if background {
                        b.syncing = true;
                        spawn_report(db, key, b.unsynced, rate);
                    }
                    return ScimVerdict {
                        limit,
                        remaining: 0,
                        retry_after_secs: Some(retry_after_secs),
                    };
                }
            }
        };
        match report {
            Ok(n) => report_scim(db, key, n, rate).await,
            // Another request is reporting: wait for it (a report that hangs should
            // not hold requests for long: the loop decides again either way).
            Err(reported) => {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reported).await;
            }
        }
    }
}

fn spawn_report(db: &Db, key: &str, n: i64, rate: Rate) {
    let (db, key) = (db.clone(), key.to_owned());
    tokio::spawn(async move { report_scim(&db, &key, n, rate).await });
}

/// Add `n` requests allowed here to the shared bucket and fold the answer in.
async fn report_scim(db: &Db, key: &str, n: i64, rate: Rate) {
    let now = now_us();
    let text = match db.backend() {
        Backend::Sqlite => SCIM_SQLITE,
        Backend::Postgres => SCIM_POSTGRES,
    };
    let shared = db
        .write_one::<i64>(sql(text).bind(key).bind(now).bind(n * rate.interval))
        .await;
    let shared = shared
        .inspect_err(|e| tracing::warn!(error = %e, "could not report SCIM rate-limit counts"))
        .ok();
    let i = shard_of(key);
    {
        let mut shard = db.rate_counts.scim.shards[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let b = shard
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::new(now));
        settle(b, n, shared, now_us(), rate);
    }
    db.rate_counts.scim.reported[i].notify_waiters();
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

    fn bucket(now: i64) -> Bucket {
        Bucket::new(now)
    }

    #[test]
    fn a_fresh_scim_bucket_allows_the_limit_at_once_then_the_rate() {
        let rate = Rate {
            share: i64::MAX,
            ..Rate::new(30)
        };
        let now = 1_000 * MINUTE_US;
        let mut b = bucket(now);
        for i in 0..30u32 {
            assert_eq!(take(&mut b, now, rate), Take::Allowed { remaining: 29 - i });
        }
        // One more in two seconds (30 a minute).
        assert_eq!(
            take(&mut b, now, rate),
            Take::Limited {
                retry_after_secs: 2
            }
        );
        assert_eq!(
            take(&mut b, now + 1_999_999, rate),
            Take::Limited {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            take(&mut b, now + 2_000_000, rate),
            Take::Allowed { remaining: 0 }
        );
        // An idle minute fills it again, and no more than that.
        let later = now + 10 * MINUTE_US;
        assert_eq!(take(&mut b, later, rate), Take::Allowed { remaining: 29 });
    }

    #[test]
    fn a_process_reports_after_its_share() {
        let rate = Rate::new(3000);
        assert_eq!(rate.share, 100);
        let now = 1_000 * MINUTE_US;
        let mut b = bucket(now);
        for _ in 0..100 {
            assert!(matches!(take(&mut b, now, rate), Take::Allowed { .. }));
        }
        assert_eq!(take(&mut b, now, rate), Take::Report);
        assert_eq!(b.unsynced, 100);
        // A refusal does not wait for a report.
        let mut empty = Bucket {
            tat: now + MINUTE_US,
            unsynced: 100,
            ..bucket(now)
        };
        assert!(matches!(take(&mut empty, now, rate), Take::Limited { .. }));
        assert_eq!(scim_sync_share(30), 1);
        assert_eq!(scim_sync_share(1), 1);
        assert_eq!(scim_sync_share(31), 2);
    }

    #[test]
    fn a_report_teaches_what_the_others_used() {
        let rate = Rate::new(30);
        let now = 1_000 * MINUTE_US;
        let mut b = bucket(now);
        assert!(matches!(
            take(&mut b, now, rate),
            Take::Allowed { remaining: 29 }
        ));
        // The database says 20 were used in all (this one included); one more was
        // allowed here while the report was under way.
        b.unsynced = 2;
        settle(&mut b, 1, Some(now + 20 * rate.interval), now, rate);
        assert_eq!(b.unsynced, 1);
        assert_eq!(b.tat, now + 21 * rate.interval);
        assert!(!b.syncing);
        // An older shared time never gives back what this process knows was used.
        settle(&mut b, 1, Some(now), now, rate);
        assert_eq!(b.tat, now + 21 * rate.interval);
        // A failed report keeps the local count.
        settle(&mut b, 0, None, now, rate);
        assert_eq!(b.tat, now + 21 * rate.interval);
    }

    /// The stated bound, on a simulation of several processes sharing one row:
    /// requests arrive at random processes at random times (bursts included); a
    /// process reports in the foreground when `take` says so, and in the background
    /// some time after it last reported. In every interval of t seconds, all of them
    /// together allow at most limit * (1 + t / 60) + processes * share.
    #[test]
    fn processes_sharing_a_row_stay_within_the_stated_bound() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for (limit, processes) in [(30u32, 2usize), (30, 5), (120, 3), (7, 4)] {
            let rate = Rate::new(limit);
            let start = 1_000 * MINUTE_US;
            let mut shared: Option<i64> = None;
            let report = |shared: &mut Option<i64>, n: i64, now: i64| {
                let v = shared.map_or(now, |c| c.max(now)) + n * rate.interval;
                *shared = Some(v);
                v
            };
            let mut local: Vec<Bucket> = (0..processes).map(|_| bucket(start)).collect();
            let mut allowed: Vec<i64> = Vec::new();
            let mut now = start;
            while now < start + 3 * MINUTE_US {
                // Bursts (many at one instant) and quiet spells.
                now += match next(10) {
                    0..=5 => 0,
                    6..=8 => next(500_000) as i64,
                    _ => next(20_000_000) as i64,
                };
                let p = next(processes as u64) as usize;
                let b = &mut local[p];
                if b.unsynced > 0 && now - b.last_sync >= SCIM_SYNC_EVERY_US && next(2) == 0 {
                    let n = b.unsynced;
                    let v = report(&mut shared, n, now);
                    settle(b, n, Some(v), now, rate);
                }
                loop {
                    match take(b, now, rate) {
                        Take::Allowed { .. } => allowed.push(now),
                        Take::Limited { .. } => {}
                        Take::Report => {
                            let n = b.unsynced;
                            let v = report(&mut shared, n, now);
                            settle(b, n, Some(v), now, rate);
                            continue;
                        }
                    }
                    break;
                }
            }
            let slack = processes as i64 * i64::from(scim_sync_share(limit));
            for (i, &from) in allowed.iter().enumerate() {
                for (j, &to) in allowed.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as i64;
                    let bound =
                        i64::from(limit) + i64::from(limit) * (to - from) / MINUTE_US + slack;
                    assert!(
                        count <= bound,
                        "{processes} processes at {limit}/min allowed {count} in {}s (bound {bound})",
                        (to - from) / 1_000_000
                    );
                }
            }
            assert!(allowed.len() > limit as usize, "the simulation did little");
        }
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
