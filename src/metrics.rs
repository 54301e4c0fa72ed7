//! Process metrics for `GET /metrics` (Prometheus text format 0.0.4).
//!
//! Kept cheap on the hot path: a request takes a read lock on the route table (an
//! uncontended atomic once the route is known) and bumps a few atomics. Routes are
//! matched path templates (`/scim/v2/Users/{id}`), never raw paths, so the label
//! set stays small and carries no ids or secrets.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OTHER"];

fn method_index(method: &str) -> usize {
    METHODS[..6].iter().position(|m| *m == method).unwrap_or(6)
}

/// A route's figures, per method (allocated when a method is first seen).
#[derive(Default)]
struct RouteStats {
    methods: [OnceLock<MethodStats>; METHODS.len()],
}

struct MethodStats {
    /// Requests by status code (100..=599 at index code - 100).
    statuses: Box<[AtomicU64]>,
    /// Cumulative counts are computed at render time; these are per bucket, plus one
    /// for above the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl MethodStats {
    fn new() -> Self {
        MethodStats {
            statuses: (100..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

#[derive(Default)]
struct Registry {
    /// Route template -> stats.
    routes: RwLock<HashMap<String, Arc<RouteStats>>>,
    scim_writes: RwLock<HashMap<(&'static str, &'static str), AtomicU64>>,
    tokens_issued: RwLock<HashMap<&'static str, AtomicU64>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// Count one HTTP request and its latency.
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let stats = {
        let routes = REGISTRY.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.get(route).cloned()
    };
    let stats = match stats {
        Some(s) => s,
        None => {
            let mut routes = REGISTRY.routes.write().unwrap_or_else(|e| e.into_inner());
            routes.entry(route.to_owned()).or_default().clone()
        }
    };
    let stats = stats.methods[method_index(method)].get_or_init(MethodStats::new);
    if (100..600).contains(&status) {
        stats.statuses[usize::from(status - 100)].fetch_add(1, Relaxed);
    }
    let secs = elapsed.as_secs_f64();
    let i = BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(BUCKETS.len());
    stats.buckets[i].fetch_add(1, Relaxed);
    stats.sum_micros.fetch_add(
        elapsed.as_micros().min(u128::from(u64::MAX)) as u64,
        Relaxed,
    );
}

fn bump<K: std::hash::Hash + Eq + Copy>(map: &RwLock<HashMap<K, AtomicU64>>, key: K) {
    {
        let m = map.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(&key) {
            c.fetch_add(1, Relaxed);
            return;
        }
    }
    let mut m = map.write().unwrap_or_else(|e| e.into_inner());
    m.entry(key).or_default().fetch_add(1, Relaxed);
}

/// Count a SCIM write (`create`, `replace`, `patch`) by outcome.
pub fn scim_write(operation: &'static str, status: u16) {
    let outcome = match status {
        200..=299 => "success",
        409 => "conflict",
        400..=499 => "client_error",
        _ => "server_error",
    };
    bump(&REGISTRY.scim_writes, (operation, outcome));
}

/// Count tokens issued by the token endpoint, by grant type.
pub fn token_issued(grant_type: &'static str) {
    bump(&REGISTRY.tokens_issued, grant_type);
}

/// Pool figures filled in by the caller at scrape time.
pub struct PoolUse {
    pub pool: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Everything, as Prometheus text. `sqlite_heap`: what SQLite has allocated (its
/// page caches and statements), when the database is SQLite.
pub fn render(pools: &[PoolUse], sqlite_heap: Option<i64>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let routes: Vec<((String, &str), Arc<RouteStats>, usize)> = {
        let r = REGISTRY.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut v = Vec::new();
        for (route, s) in r.iter() {
            for (i, m) in METHODS.iter().enumerate() {
                if s.methods[i].get().is_some() {
                    v.push(((route.clone(), *m), s.clone(), i));
                }
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    out.push_str(
        "# HELP rollcall_http_requests_total HTTP requests by matched route, method and status.\n",
    );
    out.push_str("# TYPE rollcall_http_requests_total counter\n");
    for ((route, method), s, m) in &routes {
        let Some(s) = s.methods[*m].get() else {
            continue;
        };
        for (i, c) in s.statuses.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "rollcall_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {n}",
                    escape(route),
                    escape(method),
                    i + 100
                );
            }
        }
    }
    out.push_str("# HELP rollcall_http_request_duration_seconds Time to answer, by matched route and method.\n");
    out.push_str("# TYPE rollcall_http_request_duration_seconds histogram\n");
    for ((route, method), s, m) in &routes {
        let Some(s) = s.methods[*m].get() else {
            continue;
        };
        let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += s.buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "rollcall_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += s.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "rollcall_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "rollcall_http_request_duration_seconds_sum{{{labels}}} {}",
            s.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "rollcall_http_request_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
    out.push_str("# HELP rollcall_db_pool_connections Database pool connections by state.\n");
    out.push_str("# TYPE rollcall_db_pool_connections gauge\n");
    for p in pools {
        let _ = writeln!(
            out,
            "rollcall_db_pool_connections{{pool=\"{}\",state=\"idle\"}} {}",
            p.pool, p.idle
        );
        let _ = writeln!(
            out,
            "rollcall_db_pool_connections{{pool=\"{}\",state=\"in_use\"}} {}",
            p.pool,
            p.size.saturating_sub(p.idle)
        );
    }
    out.push_str("# HELP rollcall_db_pool_max_connections Largest size each pool may grow to.\n");
    out.push_str("# TYPE rollcall_db_pool_max_connections gauge\n");
    for p in pools {
        let _ = writeln!(
            out,
            "rollcall_db_pool_max_connections{{pool=\"{}\"}} {}",
            p.pool, p.max
        );
    }
    if let Some(bytes) = sqlite_heap {
        out.push_str(
            "# HELP rollcall_sqlite_heap_bytes Memory SQLite has allocated (page caches, statements).\n",
        );
        out.push_str("# TYPE rollcall_sqlite_heap_bytes gauge\n");
        let _ = writeln!(out, "rollcall_sqlite_heap_bytes {bytes}");
    }
    out.push_str("# HELP rollcall_scim_writes_total SCIM writes by operation and outcome.\n");
    out.push_str("# TYPE rollcall_scim_writes_total counter\n");
    {
        let m = REGISTRY
            .scim_writes
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, c)| (*k, c.load(Relaxed))).collect();
        v.sort();
        for ((op, outcome), n) in v {
            let _ = writeln!(
                out,
                "rollcall_scim_writes_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP rollcall_oauth_tokens_issued_total Access/refresh token pairs issued, by grant type.\n");
    out.push_str("# TYPE rollcall_oauth_tokens_issued_total counter\n");
    {
        let m = REGISTRY
            .tokens_issued
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, c)| (*k, c.load(Relaxed))).collect();
        v.sort();
        for (grant, n) in v {
            let _ = writeln!(
                out,
                "rollcall_oauth_tokens_issued_total{{grant_type=\"{grant}\"}} {n}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        record_request("/unit/{id}", "GET", 200, Duration::from_micros(300));
        record_request("/unit/{id}", "GET", 404, Duration::from_millis(3));
        scim_write("create", 409);
        token_issued("refresh_token");
        let text = render(
            &[PoolUse {
                pool: "read",
                size: 3,
                idle: 2,
                max: 8,
            }],
            Some(4096),
        );
        assert!(text.contains(
            "rollcall_http_requests_total{route=\"/unit/{id}\",method=\"GET\",status=\"404\"} 1"
        ));
        assert!(text.contains(
            "rollcall_http_request_duration_seconds_bucket{route=\"/unit/{id}\",method=\"GET\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "rollcall_http_request_duration_seconds_bucket{route=\"/unit/{id}\",method=\"GET\",le=\"0.005\"} 2"
        ));
        assert!(text.contains("rollcall_db_pool_connections{pool=\"read\",state=\"in_use\"} 1"));
        assert!(
            text.contains("rollcall_scim_writes_total{operation=\"create\",outcome=\"conflict\"}")
        );
        assert!(text.contains("rollcall_oauth_tokens_issued_total{grant_type=\"refresh_token\"}"));
        assert!(text.contains("\nrollcall_sqlite_heap_bytes 4096\n"));
        let postgres = render(&[], None);
        assert!(!postgres.contains("rollcall_sqlite_heap_bytes"));
    }
}
