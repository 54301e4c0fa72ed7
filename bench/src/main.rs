//! `rollcall-bench`: starts the release `rollcall serve` as a child process on a
//! fresh database, seeds members through the SCIM API and drives keep-alive load
//! from its own async client, printing requests per second and p50/p99 latency for
//! the requests identity providers make. Memory is read from /proc for the server
//! process alone.
//!
//! ```text
//! cargo build --release --bins
//! target/release/rollcall-bench [--members 100000] [--concurrency 32] [--seconds 5]
//!                               [--database-url postgres://USER@HOST/DB]
//!                               [--no-scaling] [--no-groups] [--teams 10000]
//! target/release/rollcall-bench --members 10000 --soak 600 [--soak-interval 10]
//! target/release/rollcall-bench --only client-credentials [--seconds 5]
//! target/release/rollcall-bench --database-url postgres://... --processes 2 [--no-reference]
//! ```
//!
//! `--soak` replaces the cases with one mixed load for that many seconds, samples the
//! server's resident memory as it goes and fails on any unexpected answer or on
//! memory growth.
//!
//! Every time-bounded case runs twice: against Rollcall, then with the same requests
//! against the reference server (`reference.rs`: the same HTTP stack answering
//! Rollcall's bytes from memory), and prints Rollcall's share of the reference's
//! requests per second. `--no-reference` skips the second run.
//!
//! Only 127.0.0.1 is contacted; every loop is bounded in time.

mod reference;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rollcall_testkit::form_value;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
#[command(name = "rollcall-bench", about = "Load-test a release rollcall server")]
struct Args {
    /// Members seeded through the SCIM API before the full run.
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per time-bounded case.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// A PostgreSQL server URL; a fresh database is created on it (and dropped).
    /// Without it, a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// The `rollcall` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Skip the scaling runs of cases 1 and 3 at 1,000 and 10,000 members.
    #[arg(long)]
    no_scaling: bool,
    /// Skip the SCIM Groups (teams) cases 9 to 14.
    #[arg(long)]
    no_groups: bool,
    /// Teams created (and then listed) by cases 13 and 14.
    #[arg(long, default_value_t = 10_000)]
    teams: usize,
    /// Upper bound on the time spent seeding, in seconds.
    #[arg(long, default_value_t = 1800)]
    seed_timeout: u64,
    /// Soak: after seeding, run a mixed load (every kind of request the cases make,
    /// plus list pages) for this many seconds instead of the cases, sampling the
    /// server's memory. Fails on any unexpected answer or on memory growth.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// Seconds between memory samples during --soak.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    soak_interval: u64,
    /// --soak fails when the median resident memory of the last third of the samples
    /// exceeds that of the first third by more than this percentage AND by more than
    /// --soak-max-growth-mb.
    #[arg(long, default_value_t = 20.0, value_name = "PERCENT")]
    soak_max_growth_pct: f64,
    /// See --soak-max-growth-pct.
    #[arg(long, default_value_t = 10.0, value_name = "MB")]
    soak_max_growth_mb: f64,
    /// Run only this case, on an empty workspace (no seeding):
    /// `client-credentials` (case 15).
    #[arg(long, value_name = "CASE", value_parser = ["client-credentials"])]
    only: Option<String>,
    /// Do not measure the cases against the reference server.
    #[arg(long)]
    no_reference: bool,
    /// Rollcall processes on the one PostgreSQL database (with --database-url); the
    /// SCIM cases split their connections between them (the reference server and the
    /// OAuth cases use the first only). More than one implies --no-reference.
    #[arg(long, default_value_t = 1)]
    processes: usize,
}

const REDIRECT: &str = "http://localhost:9999/callback";
const WS: &str = "bench";

/// Every name resolves to loopback: the workspace host is `bench.localhost`.
struct Loopback;

impl Resolve for Loopback {
    fn resolve(&self, _name: Name) -> Resolving {
        let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
        Box::pin(async move { Ok(addrs) })
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn base(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// The server's `/proc/PID/status` fields `names`, in kB (0 when missing).
    fn status_kb<const N: usize>(&self, names: [&str; N]) -> [u64; N] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        names.map(|name| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
    }

    /// CPU time the process has used, in seconds.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }

    /// (VmRSS, VmHWM) in kB.
    fn memory(&self) -> (u64, u64) {
        let [rss, hwm] = self.status_kb(["VmRSS:", "VmHWM:"]);
        (rss, hwm)
    }

    /// Where the resident memory is, in kB: (anonymous, file-backed, shared).
    fn rss_parts(&self) -> (u64, u64, u64) {
        let [anon, file, shmem] = self.status_kb(["RssAnon:", "RssFile:", "RssShmem:"]);
        (anon, file, shmem)
    }

    /// What SQLite has allocated in the server (its page caches), in kB, from
    /// `/metrics`; None on PostgreSQL.
    async fn sqlite_heap(&self, http: &reqwest::Client) -> Option<u64> {
        let text = http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("rollcall_sqlite_heap_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|b| b / 1024)
    }

    fn stop(mut self) {
        // SAFETY: sends SIGTERM to our own child, by its (positive) pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference server (see `reference.rs`) and Rollcall's port, which it learns
/// each case's answer from.
struct Limit {
    server: Server,
    upstream: u16,
    /// Rollcall's process id, to read the CPU time it spends.
    rollcall: u32,
    control: reqwest::Client,
}

impl Limit {
    fn start(rollcall: &Server) -> Result<Limit> {
        let (child, port) = reference::spawn()?;
        Ok(Limit {
            server: Server { child, port },
            upstream: rollcall.port,
            rollcall: rollcall.child.id(),
            control: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    fn base(&self) -> String {
        self.server.base()
    }

    fn rollcall_cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.rollcall)
    }

    /// Forget the last case's answer; learn the next request's from Rollcall.
    async fn learn(&self) -> Result<(), String> {
        let r = self
            .control
            .put(format!(
                "http://127.0.0.1:{}/__reference/learn",
                self.server.port
            ))
            .body(format!("127.0.0.1:{}", self.upstream))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() == 204 {
            Ok(())
        } else {
            Err(format!("the reference server answered {}", r.status()))
        }
    }
}

/// CPU time process `pid` has used (all its threads, user and system), in seconds.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th
    // and stime the 13th of them, in clock ticks.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf only reads a system setting.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / hz
}

struct Env {
    server_bin: PathBuf,
    dir: PathBuf,
    database_url: String,
    config: PathBuf,
}

impl Env {
    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.server_bin)
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &self.database_url)
            .env("ROLLCALL_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", self.server_bin.display()))?;
        if !out.status.success() {
            bail!(
                "rollcall {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Start `rollcall serve`; returns it and the time until `/healthz` answered 200.
    async fn serve(&self) -> Result<(Server, Duration)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let started = Instant::now();
        let child = Command::new(&self.server_bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("ROLLCALL_DATABASE_URL", &self.database_url)
            .env("ROLLCALL_BASE_URL", format!("http://localhost:{port}"))
            .env("ROLLCALL_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start rollcall serve")?;
        let server = Server { child, port };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok((server, started.elapsed()));
            }
            if Instant::now() > deadline {
                server.stop();
                bail!("the server was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Latencies in microseconds and a count of unexpected answers.
#[derive(Default)]
struct Sample {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

struct Report {
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Run a case against Rollcall, then, with a reference server, the same requests
/// against it; prints both and Rollcall's share of the reference's requests/s.
async fn case<F, Fut>(
    name: &str,
    a: &Args,
    limit: Option<&Limit>,
    rollcall: F,
    reference: Option<F>,
) -> Report
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let cpu = limit.map(Limit::rollcall_cpu_seconds);
    let (s, e) = run_case(a.concurrency, a.seconds, rollcall).await;
    let cpu = cpu.zip(limit).map(|(c, l)| l.rollcall_cpu_seconds() - c);
    let r = report(name, s, e);
    if let (Some(limit), Some(op), Some(cpu)) = (limit, reference, cpu) {
        if let Err(e) = limit.learn().await {
            println!("    reference: {e}");
            return r;
        }
        let ref_cpu = limit.server.cpu_seconds();
        let (mut s, e) = run_case(a.concurrency, a.seconds, op).await;
        let ref_cpu = limit.server.cpu_seconds() - ref_cpu;
        s.latencies.sort_unstable();
        let n = s.latencies.len();
        let rps = n as f64 / e.as_secs_f64();
        println!(
            "    reference (same stack, from memory) {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   -> Rollcall at {:.1} % of it",
            rps,
            percentile(&s.latencies, 0.50),
            percentile(&s.latencies, 0.99),
            100.0 * r.rps / rps,
        );
        println!(
            "    server CPU per request: Rollcall {:.0} us, reference {:.0} us{}",
            cpu * 1e6 / r.requests.max(1) as f64,
            ref_cpu * 1e6 / n.max(1) as f64,
            if s.errors > 0 {
                format!(
                    " ({} errors: {})",
                    s.errors,
                    s.first_error.unwrap_or_default()
                )
            } else {
                String::new()
            }
        );
    }
    r
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn report(name: &str, mut s: Sample, elapsed: Duration) -> Report {
    s.latencies.sort_unstable();
    let r = Report {
        requests: s.latencies.len(),
        rps: s.latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&s.latencies, 0.50),
        p99_ms: percentile(&s.latencies, 0.99),
        errors: s.errors,
    };
    println!(
        "{name:<44} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests, {} errors)",
        r.rps, r.p50_ms, r.p99_ms, r.requests, r.errors
    );
    if let Some(e) = s.first_error {
        println!(
            "    first error: {}",
            e.chars().take(300).collect::<String>()
        );
    }
    r
}

/// Run `op(worker, i)` from `concurrency` tasks for `seconds`; one request per call.
async fn run_case<F, Fut>(concurrency: usize, seconds: f64, op: F) -> (Sample, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Sample::default();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = tokio::time::timeout(Duration::from_secs(30), op(w, i)).await;
                let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                match res {
                    Ok(Ok(())) => s.latencies.push(us),
                    Ok(Err(e)) => {
                        s.errors += 1;
                        s.first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        s.errors += 1;
                        s.first_error.get_or_insert("timed out after 30 s".into());
                    }
                }
                i += 1;
            }
            s
        }));
    }
    let mut all = Sample::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    (all, started.elapsed())
}

fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "Tr0ub4dor&3",
        "active": true
    })
}

fn user_name(i: usize) -> String {
    format!("member{i:07}@bench.example")
}

/// Check the status; drain the body.
async fn expect(resp: reqwest::Result<reqwest::Response>, want: u16) -> Result<(), String> {
    let r = resp.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if status == want {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Talking to the reference server: answers are Rollcall's first answer of the
    /// case replayed, so only their status is checked, and new names are kept apart
    /// from the Rollcall run's.
    reference: bool,
    /// With `--processes`, every server's base URL: worker `w` talks to `w % n`.
    bases: Arc<Vec<String>>,
}

impl Ctx {
    /// The same client, pointed at the reference server.
    fn at(&self, limit: Option<&Limit>) -> Option<Ctx> {
        limit.map(|l| Ctx {
            base: l.base(),
            reference: true,
            bases: Arc::new(vec![l.base()]),
            ..self.clone()
        })
    }

    /// Worker `w`'s client: with several server processes, the load is split
    /// between them by worker.
    fn worker(&self, w: usize) -> Ctx {
        let mut c = self.clone();
        if self.bases.len() > 1 {
            c.base = self.bases[w % self.bases.len()].clone();
        }
        c
    }

    fn scim(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", "application/scim+json")
    }

    fn with_body(rb: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
        rb.header("content-type", "application/scim+json; charset=utf-8")
            .body(body.to_string())
    }
}

/// Create members `from..to` through the SCIM API; returns their ids in order.
async fn seed(
    ctx: &Ctx,
    from: usize,
    to: usize,
    concurrency: usize,
    deadline: Instant,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(from as u64));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ctx, next) = (ctx.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= to {
                    return Ok(got);
                }
                if Instant::now() > deadline {
                    return Err(anyhow!("seeding did not finish within --seed-timeout"));
                }
                let name = user_name(i);
                let body = okta_user(&name, &format!("ext-{i}"));
                let r = Ctx::with_body(ctx.scim(reqwest::Method::POST, "/Users"), &body)
                    .send()
                    .await?;
                let status = r.status();
                let v: Value = r.json().await?;
                if status != 201 {
                    bail!("seeding {name}: {status} {v}");
                }
                let id = v["id"].as_str().ok_or_else(|| anyhow!("no id"))?.to_owned();
                got.push((i, id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok(all.into_iter().map(|(_, id)| id).collect())
}

// ---------------------------------------------------------------------------
// One request of each kind; the cases and the soak both call these. `w` is the
// worker, `i` that worker's count of requests of this kind so far.

/// Okta's existence check: even `i` an existing member of the first `n`, odd a
/// missing one.
async fn op_existence(c: &Ctx, n: usize, w: usize, i: u64) -> Result<(), String> {
    let k = (i as usize * 7919 + w * 104_729) % n;
    // Half existing, half missing.
    let (name, want) = if i.is_multiple_of(2) {
        (user_name(k), 1)
    } else {
        (format!("missing{k}@bench.example"), 0)
    };
    let filter = format!("userName eq \"{name}\"");
    let r = c
        .scim(reqwest::Method::GET, "/Users")
        .query(&[
            ("filter", filter.as_str()),
            ("startIndex", "1"),
            ("count", "100"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("{}", r.status()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if v["totalResults"] != json!(want) && !c.reference {
        return Err(format!("{name}: totalResults {}", v["totalResults"]));
    }
    Ok(())
}

/// `GET /Users/{id}` of one of the first `n` members.
async fn op_get(c: &Ctx, ids: &[String], n: usize, w: usize, i: u64) -> Result<(), String> {
    let id = &ids[(i as usize * 7919 + w * 104_729) % n];
    expect(
        c.scim(reqwest::Method::GET, &format!("/Users/{id}"))
            .send()
            .await,
        200,
    )
    .await
}

/// `POST /Users` of a new member, unique per worker and request.
async fn op_create(c: &Ctx, w: usize, i: u64) -> Result<(), String> {
    let side = if c.reference { "ref" } else { "new" };
    let name = format!("{side}-{w}-{i}@bench.example");
    let body = okta_user(&name, &format!("ext-{side}-{w}-{i}"));
    expect(
        Ctx::with_body(c.scim(reqwest::Method::POST, "/Users"), &body)
            .send()
            .await,
        201,
    )
    .await
}

/// `PATCH` active false (even `i`), then true (odd) on the same member; each worker
/// its own share of the members.
async fn op_patch(c: &Ctx, ids: &[String], conc: usize, w: usize, i: u64) -> Result<(), String> {
    let per = ids.len() / conc;
    let id = &ids[w * per + (i as usize / 2) % per.max(1)];
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": i % 2 == 1}}]
    });
    expect(
        Ctx::with_body(
            c.scim(reqwest::Method::PATCH, &format!("/Users/{id}")),
            &body,
        )
        .send()
        .await,
        200,
    )
    .await
}

/// `PUT`: the whole object back, as Okta does; each worker its own members.
async fn op_put(c: &Ctx, ids: &[String], conc: usize, w: usize, i: u64) -> Result<(), String> {
    let per = ids.len() / conc;
    let k = w * per + (i as usize) % per.max(1);
    let id = &ids[k];
    let mut body = okta_user(&user_name(k), &format!("ext-{k}"));
    body["id"] = json!(id);
    body["displayName"] = json!(format!("Ada Lovelace {i}"));
    expect(
        Ctx::with_body(c.scim(reqwest::Method::PUT, &format!("/Users/{id}")), &body)
            .send()
            .await,
        200,
    )
    .await
}

/// One page of 100 of the listing, in default order, among the first `n` members:
/// each worker walks the pages in order from its own starting page.
async fn op_list(c: &Ctx, n: usize, w: usize, i: u64) -> Result<(), String> {
    let pages = n.div_ceil(100).max(1);
    let start = ((w * 31 + i as usize) % pages) * 100 + 1;
    let r = c
        .scim(reqwest::Method::GET, "/Users")
        .query(&[("startIndex", start.to_string()), ("count", "100".into())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("{}", r.status()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    let got = v["Resources"].as_array().map_or(0, Vec::len);
    let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
    // Members are only ever added, so a page within the first n is full.
    let want = 100.min(n + 1 - start);
    if total < n || got < want {
        return Err(format!(
            "page at {start}: {got} members, totalResults {total}"
        ));
    }
    Ok(())
}

/// What the OAuth requests need: one refresh-token chain per worker.
struct OAuthLoad {
    http: reqwest::Client,
    base: String,
    client: OAuthClient,
    /// (access token, refresh token), one per worker.
    chains: Vec<tokio::sync::Mutex<(String, String)>>,
}

impl OAuthLoad {
    /// For the reference server: every worker holds chain `k`'s tokens.
    async fn at(&self, limit: &Limit, k: usize) -> Arc<OAuthLoad> {
        let pair = self.chains[k].lock().await.clone();
        Arc::new(OAuthLoad {
            http: self.http.clone(),
            base: limit.base(),
            client: self.client.clone(),
            chains: (0..self.chains.len())
                .map(|_| tokio::sync::Mutex::new(pair.clone()))
                .collect(),
        })
    }
}

/// `grant_type=refresh_token` on worker `w`'s chain, which rotates.
async fn op_refresh(o: &OAuthLoad, w: usize) -> Result<(), String> {
    let mut chain = o.chains[w].lock().await;
    let refresh = chain.1.clone();
    *chain = token_request(
        &o.http,
        &o.base,
        &o.client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await?;
    Ok(())
}

/// Introspection of worker `w`'s current access token, which must be active.
async fn op_introspect(o: &OAuthLoad, w: usize) -> Result<(), String> {
    let access = o.chains[w].lock().await.0.clone();
    let r = o
        .http
        .post(format!("{}/oauth2/introspect", o.base))
        .basic_auth(&o.client.id, Some(&o.client.secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status == 200 && v["active"] == json!(true) {
        Ok(())
    } else {
        Err(format!("{status}: not active: {v}"))
    }
}

/// `grant_type=client_credentials` with HTTP Basic: an access token, no refresh token.
async fn op_client_credentials(
    http: &reqwest::Client,
    base: &str,
    client: &OAuthClient,
) -> Result<(), String> {
    let r = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status == 200 && v["access_token"].is_string() && v.get("refresh_token").is_none() {
        Ok(())
    } else {
        Err(format!("{status}: {v}"))
    }
}

/// Case 9, the client credentials grant of a workspace client: each token is a new
/// row, and an activity-log entry.
async fn case_client_credentials(
    a: &Args,
    limit: Option<&Limit>,
    http: &reqwest::Client,
    base: &str,
    client: &OAuthClient,
) -> Report {
    let client = Arc::new(client.clone());
    let op = |base: String| {
        let (http, client) = (http.clone(), client.clone());
        move |_: usize, _: u64| {
            let (http, base, client) = (http.clone(), base.clone(), client.clone());
            async move { op_client_credentials(&http, &base, &client).await }
        }
    };
    let name = "15. POST /oauth2/token (client credentials)";
    case(
        name,
        a,
        limit,
        op(base.to_owned()),
        limit.map(|l| op(l.base())),
    )
    .await
}

async fn case_existence(ctx: &Ctx, n: usize, a: &Args, limit: Option<&Limit>) -> Report {
    let op = |c: Ctx| {
        move |w: usize, i: u64| {
            let c = c.worker(w);
            async move { op_existence(&c, n, w, i).await }
        }
    };
    let name = format!("1. existence check filter (N={n})");
    case(&name, a, limit, op(ctx.clone()), ctx.at(limit).map(op)).await
}

async fn case_get(
    ctx: &Ctx,
    ids: &Arc<Vec<String>>,
    n: usize,
    a: &Args,
    limit: Option<&Limit>,
) -> Report {
    let op = |c: Ctx| {
        let ids = ids.clone();
        move |w: usize, i: u64| {
            let (c, ids) = (c.worker(w), ids.clone());
            async move { op_get(&c, &ids, n, w, i).await }
        }
    };
    let name = format!("3. GET /Users/{{id}} (N={n})");
    case(&name, a, limit, op(ctx.clone()), ctx.at(limit).map(op)).await
}

/// Okta's import: every page of 100, in order, by one client. Returns total time.
async fn case_import(ctx: &Ctx, expected: usize) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut lat = Sample::default();
    let mut start = 1usize;
    let mut seen = 0usize;
    loop {
        if Instant::now() > deadline {
            bail!("the import did not finish within 600 s");
        }
        let t = Instant::now();
        let v: Value = ctx
            .scim(reqwest::Method::GET, "/Users")
            .query(&[("startIndex", start.to_string()), ("count", "100".into())])
            .send()
            .await?
            .json()
            .await?;
        lat.latencies.push(t.elapsed().as_micros() as u32);
        let page = v["Resources"].as_array().map_or(0, Vec::len);
        seen += page;
        let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
        start += 100;
        if page == 0 || start > total {
            break;
        }
    }
    let total = started.elapsed();
    if seen < expected {
        bail!("the import saw {seen} members, expected at least {expected}");
    }
    let pages = lat.latencies.len();
    let r = report(
        &format!("2. import, {pages} pages of 100 (per page)"),
        lat,
        total,
    );
    let _ = r;
    println!(
        "{:<44} {:>9.2} s total for {seen} members",
        "2. import, whole listing",
        total.as_secs_f64()
    );
    Ok(total)
}

// ---------------------------------------------------------------------------
// OAuth: one authorization-code flow per connection, through the pages.

fn location(r: &reqwest::Response) -> Result<String> {
    Ok(r.headers()
        .get("location")
        .ok_or_else(|| anyhow!("no Location on {}", r.status()))?
        .to_str()?
        .to_owned())
}

#[derive(Clone)]
struct OAuthClient {
    id: String,
    secret: String,
}

/// The browser part for one grant: authorize on the app host, pick the workspace,
/// sign in (once per browser), allow. Returns the code.
async fn authorize(
    browser: &reqwest::Client,
    port: u16,
    client: &OAuthClient,
    email: &str,
    password: &str,
) -> Result<String> {
    let app = format!("http://localhost:{port}");
    let ws = format!("http://{WS}.localhost:{port}");
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=bench&scope={}",
        enc(&client.id),
        enc(REDIRECT),
        enc("scim:read scim:write")
    );
    let html = browser
        .get(format!("{app}/oauth2/authorize?{query}"))
        .send()
        .await?
        .text()
        .await?;
    let request = form_value(&html, "request").ok_or_else(|| anyhow!("no request field"))?;
    let r = browser
        .post(format!("{app}/oauth2/authorize"))
        .form(&[("subdomain", WS), ("request", &request)])
        .send()
        .await?;
    let on_ws = location(&r)?;
    let mut r = browser.get(&on_ws).send().await?;
    if r.status() == 303 {
        let signin = location(&r)?;
        let html = browser
            .get(format!("{ws}{signin}"))
            .send()
            .await?
            .text()
            .await?;
        let csrf = form_value(&html, "csrf").ok_or_else(|| anyhow!("no csrf"))?;
        let next = form_value(&html, "next").ok_or_else(|| anyhow!("no next"))?;
        let back = browser
            .post(format!("{ws}/signin"))
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("next", &next),
            ])
            .send()
            .await?;
        let back = location(&back)?;
        r = browser.get(format!("{ws}{back}")).send().await?;
    }
    if r.status() != 200 {
        bail!("consent page: {}", r.status());
    }
    let consent = r.text().await?;
    let r = browser
        .post(format!("{ws}/oauth2/authorize"))
        .form(&[
            (
                "csrf",
                form_value(&consent, "csrf")
                    .ok_or_else(|| anyhow!("no csrf on consent"))?
                    .as_str(),
            ),
            (
                "request",
                form_value(&consent, "request")
                    .ok_or_else(|| anyhow!("no request on consent"))?
                    .as_str(),
            ),
            ("decision", "allow"),
        ])
        .send()
        .await?;
    let back = url::Url::parse(&location(&r)?)?;
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow!("no code in {back}"))
}

/// (access token, refresh token) from the token endpoint.
async fn token_request(
    http: &reqwest::Client,
    base: &str,
    client: &OAuthClient,
    form: &[(&str, &str)],
) -> Result<(String, String), String> {
    let mut all: Vec<(&str, &str)> = form.to_vec();
    all.push(("client_id", &client.id));
    all.push(("client_secret", &client.secret));
    let r = http
        .post(format!("{base}/oauth2/token"))
        .form(&all)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    match (v["access_token"].as_str(), v["refresh_token"].as_str()) {
        (Some(a), Some(rt)) if status == 200 => Ok((a.to_owned(), rt.to_owned())),
        _ => Err(format!("{status}: {v}")),
    }
}

fn dir_size(path: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn database_size(env: &Env) -> Result<u64> {
    if env.database_url.starts_with("sqlite:") {
        return Ok(dir_size(&env.dir, "bench.db"));
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&env.database_url).await?;
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
            .fetch_one(&mut conn)
            .await? as u64,
    )
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--reference-server") {
        return reference::main();
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> Result<()> {
    let args = Args::parse();
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no directory"))?
            .join("rollcall"),
    };
    if !server_bin.exists() {
        bail!(
            "{} not found; build it with `cargo build --release --bins`",
            server_bin.display()
        );
    }
    let dir =
        std::env::temp_dir().join(format!("rollcall-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let (database_url, pg_admin) = match &args.database_url {
        Some(admin) => {
            use sqlx::Connection;
            let name = format!("rollcall_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            let mut url = url::Url::parse(admin)?;
            url.set_path(&name);
            (url.to_string(), Some((admin.clone(), name)))
        }
        None => (format!("sqlite://{}/bench.db", dir.display()), None),
    };
    // The bench measures throughput, not the limiter: the token-endpoint and SCIM
    // limits are raised (every request still counts against them: the token endpoint
    // in the database, SCIM in memory with a report a second).
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        "token_rate_per_client = 100000000\ntoken_rate_per_address = 100000000\n\
         scim_rate_per_token = 100000000\n",
    )?;
    let env = Env {
        server_bin,
        dir: dir.clone(),
        database_url,
        config,
    };
    let result = run(&args, &env).await;
    if let Some((admin, name)) = pg_admin {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(args: &Args, env: &Env) -> Result<()> {
    let backend = if env.database_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!(
        "rollcall-bench: {backend}, {} members, {} connections, {} s per case, {} cores",
        if args.only.is_some() { 0 } else { args.members },
        args.concurrency,
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let password = env.cli(&[
        "workspace",
        "create",
        WS,
        "--name",
        "Bench",
        "--admin-email",
        "admin@bench.example",
    ])?;
    env.cli(&["workspace", "scim", WS, "on"])?;
    if !args.no_groups && args.soak.is_none() {
        env.cli(&["workspace", "scim-teams", WS, "on"])?;
    }
    let token = env.cli(&["token", "create", "--workspace", WS])?;
    let created: Value = serde_json::from_str(&env.cli(&[
        "client",
        "create",
        "--name",
        "Bench",
        "--redirect-uri",
        REDIRECT,
    ])?)?;
    let client = OAuthClient {
        id: created["client_id"].as_str().unwrap_or_default().to_owned(),
        secret: created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let created: Value = serde_json::from_str(&env.cli(&[
        "client",
        "create",
        "--workspace",
        WS,
        "--name",
        "Bench script",
        "--grant",
        "client_credentials",
    ])?)?;
    let script = OAuthClient {
        id: created["client_id"].as_str().unwrap_or_default().to_owned(),
        secret: created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };

    let (server, ready) = env.serve().await?;
    if args.processes > 1 && args.database_url.is_none() {
        server.stop();
        bail!("--processes needs --database-url: SQLite is for one process");
    }
    let mut others = Vec::new();
    for _ in 1..args.processes {
        others.push(env.serve().await?.0);
    }
    let reference_server = if args.no_reference || args.soak.is_some() || args.processes > 1 {
        None
    } else {
        Some(Limit::start(&server)?)
    };
    let limit = reference_server.as_ref();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .http1_only()
        .tcp_nodelay(true)
        .build()?;
    let result = async {
        if args.only.is_none() {
            drive(
                args, env, &server, &others, ready, token, client, password, limit,
            )
            .await?;
        }
        case_client_credentials(args, limit, &http, &server.base(), &script).await;
        Ok(())
    }
    .await;
    let (_, peak) = server.memory();
    println!(
        "peak resident memory (VmHWM)                 {:>9.1} MB",
        mb(peak)
    );
    server.stop();
    for s in others {
        s.stop();
    }
    if let Some(l) = reference_server {
        // Not `stop`: the reference server has no graceful shutdown to wait for.
        let mut child = l.server.child;
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    args: &Args,
    env: &Env,
    server: &Server,
    others: &[Server],
    ready: Duration,
    token: String,
    client: OAuthClient,
    password: String,
    limit: Option<&Limit>,
) -> Result<()> {
    println!(
        "ready: /healthz answered after              {:>9.1} ms",
        ready.as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, _) = server.memory();
    println!(
        "idle resident memory (VmRSS)                 {:>9.1} MB",
        mb(idle)
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .http1_only()
        .tcp_nodelay(true)
        .build()?;
    let ctx = Ctx {
        http: http.clone(),
        base: server.base(),
        token,
        reference: false,
        bases: Arc::new(
            std::iter::once(server)
                .chain(others)
                .map(Server::base)
                .collect(),
        ),
    };
    let seed_deadline = Instant::now() + Duration::from_secs(args.seed_timeout);
    let mut ids: Vec<String> = Vec::new();
    let mut steps: Vec<usize> = if args.no_scaling || args.soak.is_some() {
        vec![]
    } else {
        [1_000, 10_000]
            .into_iter()
            .filter(|s| *s < args.members)
            .collect()
    };
    steps.push(args.members);
    for n in steps {
        let t = Instant::now();
        let more = seed(&ctx, ids.len(), n, args.concurrency, seed_deadline).await?;
        let added = more.len();
        ids.extend(more);
        let took = t.elapsed();
        println!(
            "-- seeded {added} members through POST /Users in {:.1} s ({:.0}/s); now {n}",
            took.as_secs_f64(),
            added as f64 / took.as_secs_f64()
        );
        if args.soak.is_none() {
            let ids_arc = Arc::new(ids.clone());
            case_existence(&ctx, n, args, limit).await;
            case_get(&ctx, &ids_arc, n, args, limit).await;
        }
    }
    let n = ids.len();
    let size = database_size(env).await?;
    println!(
        "database size: {:.1} MB for {n} members = {:.1} MB per 100,000",
        size as f64 / 1e6,
        size as f64 / 1e6 * 100_000.0 / n as f64
    );
    let (rss, _) = server.memory();
    println!(
        "resident memory after seeding (VmRSS)        {:>9.1} MB",
        mb(rss)
    );

    if let Some(seconds) = args.soak {
        let oauth = grants(args, server, &http, &ctx.base, client, &password).await?;
        return soak(args, server, &ctx, Arc::new(ids), oauth, seconds).await;
    }

    case_import(&ctx, n).await?;

    let ids = Arc::new(ids);
    let conc = args.concurrency;
    // 4. POST /Users: new members, unique per worker and request.
    {
        let op = |c: Ctx| {
            move |w: usize, i: u64| {
                let c = c.worker(w);
                async move { op_create(&c, w, i).await }
            }
        };
        let name = "4. POST /Users";
        case(name, args, limit, op(ctx.clone()), ctx.at(limit).map(op)).await;
    }
    // 5. PATCH active false, then true: each worker its own members.
    {
        let op = |c: Ctx| {
            let ids = ids.clone();
            move |w: usize, i: u64| {
                let (c, ids) = (c.worker(w), ids.clone());
                async move { op_patch(&c, &ids, conc, w, i).await }
            }
        };
        let name = "5. PATCH active false/true";
        case(name, args, limit, op(ctx.clone()), ctx.at(limit).map(op)).await;
    }
    // 6. PUT: the whole object back, as Okta does.
    {
        let op = |c: Ctx| {
            let ids = ids.clone();
            move |w: usize, i: u64| {
                let (c, ids) = (c.worker(w), ids.clone());
                async move { op_put(&c, &ids, conc, w, i).await }
            }
        };
        let name = "6. PUT /Users/{id}";
        case(name, args, limit, op(ctx.clone()), ctx.at(limit).map(op)).await;
    }

    // 7 and 8: one grant per connection, through the pages (and a spare for the
    // reference run, whose one learnt refresh rotates a chain no worker uses).
    let oauth = grants(args, server, &http, &ctx.base, client, &password).await?;
    let refresh = |o: Arc<OAuthLoad>| {
        move |w: usize, _: u64| {
            let o = o.clone();
            async move { op_refresh(&o, w).await }
        }
    };
    let spare = match limit {
        Some(l) => Some(oauth.at(l, conc).await),
        None => None,
    };
    let name = "7. POST /oauth2/token (refresh, rotating)";
    case(
        name,
        args,
        limit,
        refresh(oauth.clone()),
        spare.map(refresh),
    )
    .await;
    let introspect = |o: Arc<OAuthLoad>| {
        move |w: usize, _: u64| {
            let o = o.clone();
            async move { op_introspect(&o, w).await }
        }
    };
    let first = match limit {
        Some(l) => Some(oauth.at(l, 0).await),
        None => None,
    };
    let name = "8. POST /oauth2/introspect";
    case(
        name,
        args,
        limit,
        introspect(oauth.clone()),
        first.map(introspect),
    )
    .await;

    if !args.no_groups {
        groups(args, server, &ctx, &ids, limit).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// SCIM Groups (teams, issue 14): an "Everyone" team of every seeded member.

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Floors from issue 14 (SQLite, 2 shared cores).
const FLOOR_PATCH_1000_MS: f64 = 250.0;
const FLOOR_ONE_MEMBER_P99_MS: f64 = 10.0;
const FLOOR_FULL_GET_PEAK_MB: f64 = 150.0;

fn floor_note(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn member_patch(op: &str, path: Option<&str>, ids: &[String]) -> Value {
    let mut one = json!({"op": op});
    if let Some(p) = path {
        one["path"] = json!(p);
    }
    if !ids.is_empty() {
        one["value"] = Value::Array(ids.iter().map(|id| json!({"value": id})).collect());
    }
    json!({"schemas": [PATCH_OP], "Operations": [one]})
}

/// `POST /Groups` with no members; the new team's id.
async fn create_team(c: &Ctx, name: &str) -> Result<String, String> {
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []});
    let r = Ctx::with_body(c.scim(reqwest::Method::POST, "/Groups"), &body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    match v["id"].as_str() {
        Some(id) if status == 201 => Ok(id.to_owned()),
        _ => Err(format!("create team {name}: {status} {v}")),
    }
}

/// Worker `w`'s member of the big team: removed on even `i`, added back on odd.
async fn op_team_toggle(c: &Ctx, team: &str, member: &str, i: u64) -> Result<(), String> {
    let body = if i.is_multiple_of(2) {
        member_patch(
            "remove",
            Some(&format!("members[value eq \"{member}\"]")),
            &[],
        )
    } else {
        member_patch("add", Some("members"), &[member.to_owned()])
    };
    expect(
        Ctx::with_body(
            c.scim(reqwest::Method::PATCH, &format!("/Groups/{team}")),
            &body,
        )
        .send()
        .await,
        204,
    )
    .await
}

/// `GET /Groups/{id}?excludedAttributes=members`.
async fn op_team_get(c: &Ctx, team: &str) -> Result<(), String> {
    expect(
        c.scim(reqwest::Method::GET, &format!("/Groups/{team}"))
            .query(&[("excludedAttributes", "members")])
            .send()
            .await,
        200,
    )
    .await
}

async fn groups(
    args: &Args,
    server: &Server,
    ctx: &Ctx,
    ids: &Arc<Vec<String>>,
    limit: Option<&Limit>,
) -> Result<()> {
    let n = ids.len();
    let conc = args.concurrency;
    if n < conc {
        bail!("the group cases need at least as many --members as --concurrency");
    }
    println!("-- SCIM Groups (teams): an \"Everyone\" team of all {n} members");

    // 9. The big team, filled by PATCH adds of 1,000 members each, one at a time.
    let team = create_team(ctx, "Everyone").await.map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    let mut lat = Sample::default();
    for chunk in ids.chunks(1000) {
        let body = member_patch("add", Some("members"), chunk);
        let t = Instant::now();
        let res = expect(
            Ctx::with_body(
                ctx.scim(reqwest::Method::PATCH, &format!("/Groups/{team}")),
                &body,
            )
            .send()
            .await,
            204,
        )
        .await;
        let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if let Err(e) = res {
            bail!("adding {} members to Everyone: {e}", chunk.len());
        }
        lat.latencies.push(us);
    }
    let fill = started.elapsed();
    let mut sorted = lat.latencies.clone();
    sorted.sort_unstable();
    let patches = sorted.len();
    let median_ms = f64::from(sorted[patches / 2]) / 1000.0;
    let max_ms = f64::from(*sorted.last().unwrap_or(&0)) / 1000.0;
    report(
        &format!("9. PATCH add 1,000 members ({patches} PATCHes)"),
        lat,
        fill,
    );
    println!(
        "{:<44} median {:>7.1} ms   max {:>7.1} ms   ({:.1} s for {n} members; floor {FLOOR_PATCH_1000_MS} ms: {})",
        "9. PATCH add 1,000 members, per PATCH",
        median_ms,
        max_ms,
        fill.as_secs_f64(),
        floor_note(max_ms <= FLOOR_PATCH_1000_MS)
    );

    // 10. Add or remove one member of the big team, each worker its own member.
    {
        let op = |c: Ctx| {
            let (members, big) = (ids.clone(), team.clone());
            move |w: usize, i: u64| {
                let (c, members, big) = (c.clone(), members.clone(), big.clone());
                async move { op_team_toggle(&c, &big, &members[w], i).await }
            }
        };
        let name = format!("10. PATCH add/remove 1 member (team of {n})");
        let r = case(&name, args, limit, op(ctx.clone()), ctx.at(limit).map(op)).await;
        println!(
            "{:<44} p99 {:.2} ms (floor {FLOOR_ONE_MEMBER_P99_MS} ms: {})",
            "10. one member of the big team",
            r.p99_ms,
            floor_note(r.errors == 0 && r.p99_ms <= FLOOR_ONE_MEMBER_P99_MS)
        );
        // Every worker's member back in (adding one already there changes nothing).
        let body = member_patch("add", Some("members"), &ids[..conc]);
        expect(
            Ctx::with_body(
                ctx.scim(reqwest::Method::PATCH, &format!("/Groups/{team}")),
                &body,
            )
            .send()
            .await,
            204,
        )
        .await
        .map_err(|e| anyhow!("re-adding the workers' members: {e}"))?;
    }

    // 11. The big team without its members, next to GET /Users/{id}.
    {
        let op = |c: Ctx| {
            let team = team.clone();
            move |_: usize, _: u64| {
                let (c, team) = (c.clone(), team.clone());
                async move { op_team_get(&c, &team).await }
            }
        };
        let name = format!("11. GET /Groups/{{id}}?excl..=members ({n})");
        let g = case(&name, args, limit, op(ctx.clone()), ctx.at(limit).map(op)).await;
        let u = case_get(ctx, ids, n, args, limit).await;
        println!(
            "{:<44} {:.2}x the req/s of GET /Users/{{id}}",
            "11. team without members vs a member",
            g.rps / u.rps
        );
    }

    // 12. One GET of the big team with every member: time, bytes, server memory.
    {
        let (rss_before, hwm_before) = server.memory();
        let sampling = Arc::new(AtomicU64::new(1));
        let max_rss = Arc::new(AtomicU64::new(rss_before));
        let pid = server.child.id();
        let sampler = {
            let (sampling, max_rss) = (sampling.clone(), max_rss.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) == 1 {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    if let Some(kb) = status
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        max_rss.fetch_max(kb, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let t = Instant::now();
        let mut resp = ctx
            .scim(reqwest::Method::GET, &format!("/Groups/{team}"))
            .send()
            .await?;
        let status = resp.status();
        let first_byte = t.elapsed();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        let took = t.elapsed();
        sampling.store(0, Ordering::Relaxed);
        let _ = sampler.await;
        let (rss_after, hwm_after) = server.memory();
        if status != 200 {
            bail!(
                "GET of the big team: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        let v: Value = serde_json::from_slice(&body)?;
        let listed = v["members"].as_array().map_or(0, Vec::len);
        if listed != n {
            bail!("GET of the big team listed {listed} members, expected {n}");
        }
        let sampled = max_rss.load(Ordering::Relaxed);
        // VmHWM is the peak of the server's whole life: if it rose, this request made
        // the new peak; otherwise the sampled maximum is this request's peak.
        let peak = if hwm_after > hwm_before {
            hwm_after
        } else {
            sampled.max(rss_after)
        };
        println!(
            "{:<44} {:>9.1} ms   first byte {:.1} ms   {:.1} MB, {listed} members",
            "12. GET /Groups/{id}, all members (once)",
            took.as_secs_f64() * 1000.0,
            first_byte.as_secs_f64() * 1000.0,
            body.len() as f64 / 1e6
        );
        println!(
            "{:<44} RSS before {:.1} MB, max sampled {:.1} MB, after {:.1} MB; VmHWM {:.1} -> {:.1} MB: \
             peak {:.1} MB (floor < {FLOOR_FULL_GET_PEAK_MB} MB: {})",
            "12. server memory around it",
            mb(rss_before),
            mb(sampled),
            mb(rss_after),
            mb(hwm_before),
            mb(hwm_after),
            mb(peak),
            floor_note(mb(peak) < FLOOR_FULL_GET_PEAK_MB)
        );
    }

    // 13. Many teams, created concurrently.
    let teams = args.teams;
    {
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (c, next) = (ctx.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = Sample::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if k >= teams {
                        return s;
                    }
                    let t = Instant::now();
                    match create_team(&c, &format!("team-{k:06}")).await {
                        Ok(_) => s
                            .latencies
                            .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                        Err(e) => {
                            s.errors += 1;
                            s.first_error.get_or_insert(e);
                        }
                    }
                }
            }));
        }
        let mut all = Sample::default();
        for t in tasks {
            all.merge(t.await?);
        }
        let took = started.elapsed();
        let r = report(&format!("13. POST /Groups ({teams} teams)"), all, took);
        println!(
            "{:<44} {:>9.2} s total",
            "13. create teams, whole run",
            took.as_secs_f64()
        );
        if r.errors > 0 {
            bail!("{} team creates failed", r.errors);
        }
    }

    // 14. Every team listed through pages of 100, in order, by one client.
    {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(600);
        let mut lat = Sample::default();
        let mut seen = std::collections::HashSet::new();
        let mut start = 1usize;
        loop {
            if Instant::now() > deadline {
                bail!("listing the teams did not finish within 600 s");
            }
            let t = Instant::now();
            let r = ctx
                .scim(reqwest::Method::GET, "/Groups")
                .query(&[
                    ("startIndex", start.to_string()),
                    ("count", "100".into()),
                    ("excludedAttributes", "members".into()),
                ])
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await?;
            lat.latencies
                .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if status != 200 {
                bail!("team page at {start}: {status} {v}");
            }
            let page = v["Resources"].as_array().cloned().unwrap_or_default();
            for r in &page {
                if let Some(id) = r["id"].as_str() {
                    seen.insert(id.to_owned());
                }
            }
            let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
            start += 100;
            if page.is_empty() || start > total {
                break;
            }
        }
        let total = started.elapsed();
        let pages = lat.latencies.len();
        report(
            &format!("14. list teams, {pages} pages of 100 (per page)"),
            lat,
            total,
        );
        println!(
            "{:<44} {:>9.2} s total for {} teams",
            "14. list teams, whole listing",
            total.as_secs_f64(),
            seen.len()
        );
        // Everyone and every created team, each once.
        if seen.len() < teams + 1 {
            bail!(
                "the listing saw {} distinct teams, expected at least {}",
                seen.len(),
                teams + 1
            );
        }
    }
    Ok(())
}

/// One grant per worker through the authorization-code flow (pages, sign-in,
/// consent, code exchange): the refresh-token chains.
async fn grants(
    args: &Args,
    server: &Server,
    http: &reqwest::Client,
    base: &str,
    client: OAuthClient,
    password: &str,
) -> Result<Arc<OAuthLoad>> {
    let t = Instant::now();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(Loopback))
        .build()?;
    let mut chains = Vec::new();
    for _ in 0..=args.concurrency {
        let code = authorize(
            &browser,
            server.port,
            &client,
            "admin@bench.example",
            password,
        )
        .await?;
        let pair = token_request(
            http,
            base,
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await
        .map_err(|e| anyhow!("code exchange: {e}"))?;
        chains.push(tokio::sync::Mutex::new(pair));
    }
    println!(
        "-- {} grants through the authorization-code flow (pages, sign-in, consent, exchange) in {:.1} s",
        args.concurrency,
        t.elapsed().as_secs_f64()
    );
    Ok(Arc::new(OAuthLoad {
        http: http.clone(),
        base: base.to_owned(),
        client,
        chains,
    }))
}

// ---------------------------------------------------------------------------
// Soak: one mixed load for a long time, every answer checked, memory sampled.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Existence,
    Get,
    Create,
    Patch,
    Put,
    List,
    Refresh,
    Introspect,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Existence,
        Kind::Get,
        Kind::Create,
        Kind::Patch,
        Kind::Put,
        Kind::List,
        Kind::Refresh,
        Kind::Introspect,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Existence => "existence check (userName eq, half missing)",
            Kind::Get => "GET /Users/{id}",
            Kind::Create => "POST /Users",
            Kind::Patch => "PATCH active false/true",
            Kind::Put => "PUT /Users/{id}",
            Kind::List => "list page of 100",
            Kind::Refresh => "refresh-token grant (rotating)",
            Kind::Introspect => "introspection",
        }
    }
}

/// The soak's mix, taken in turn by every worker from its own offset: existence
/// checks a third, GETs a sixth, every other kind a twelfth (reads as Okta does).
const MIX: [Kind; 12] = [
    Kind::Existence,
    Kind::Get,
    Kind::Create,
    Kind::Existence,
    Kind::Patch,
    Kind::List,
    Kind::Existence,
    Kind::Get,
    Kind::Put,
    Kind::Refresh,
    Kind::Existence,
    Kind::Introspect,
];

/// Errors printed as they happen (all of them are counted).
const SOAK_ERRORS_SHOWN: u64 = 10;

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

async fn soak(
    args: &Args,
    server: &Server,
    ctx: &Ctx,
    ids: Arc<Vec<String>>,
    oauth: Arc<OAuthLoad>,
    seconds: u64,
) -> Result<()> {
    let n = ids.len();
    let conc = args.concurrency;
    if n < conc {
        bail!("--soak needs at least as many --members as --concurrency");
    }
    let interval = Duration::from_secs(args.soak_interval.max(1));
    println!(
        "-- soak: {seconds} s of mixed load on {conc} connections, memory every {} s",
        interval.as_secs()
    );
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (c, ids, oauth, done, failed) = (
            ctx.clone(),
            ids.clone(),
            oauth.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<Sample> = Kind::ALL.iter().map(|_| Sample::default()).collect();
            let mut counts = [0u64; Kind::ALL.len()];
            let mut step = w;
            while Instant::now() < deadline {
                let kind = MIX[step % MIX.len()];
                step += 1;
                let i = counts[kind as usize];
                counts[kind as usize] += 1;
                let t = Instant::now();
                let op = async {
                    match kind {
                        Kind::Existence => op_existence(&c, n, w, i).await,
                        Kind::Get => op_get(&c, &ids, n, w, i).await,
                        Kind::Create => op_create(&c, w, i).await,
                        Kind::Patch => op_patch(&c, &ids, conc, w, i).await,
                        Kind::Put => op_put(&c, &ids, conc, w, i).await,
                        Kind::List => op_list(&c, n, w, i).await,
                        Kind::Refresh => op_refresh(&oauth, w).await,
                        Kind::Introspect => op_introspect(&oauth, w).await,
                    }
                };
                let res = tokio::time::timeout(Duration::from_secs(30), op).await;
                let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                done.fetch_add(1, Ordering::Relaxed);
                let s = &mut samples[kind as usize];
                let error = match res {
                    Ok(Ok(())) => {
                        s.latencies.push(us);
                        continue;
                    }
                    Ok(Err(e)) => e,
                    Err(_) => "timed out after 30 s".to_owned(),
                };
                s.errors += 1;
                let before = failed.fetch_add(1, Ordering::Relaxed);
                if before < SOAK_ERRORS_SHOWN {
                    println!(
                        "    error {} at {:.1} s, {} (worker {w}): {}",
                        before + 1,
                        started.elapsed().as_secs_f64(),
                        kind.name(),
                        error.chars().take(300).collect::<String>()
                    );
                }
                s.first_error.get_or_insert(error);
            }
            samples
        }));
    }

    // The memory curve, while the workers run.
    // RSS split into anonymous (heap) and file/shared pages, and the part of the
    // heap that is SQLite's (page caches): what is left is the server's own.
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "elapsed s",
        "RSS MB",
        "anon MB",
        "file MB",
        "sqlite MB",
        "rest MB",
        "requests",
        "req/s",
        "errors"
    );
    let parts = |rss: u64, sqlite: Option<u64>| {
        let (anon, file, shmem) = server.rss_parts();
        let sqlite_kb = sqlite.unwrap_or(0);
        format!(
            "{:>9.1} {:>9.1} {:>9.1} {:>9} {:>9.1}",
            mb(rss),
            mb(anon),
            mb(file + shmem),
            sqlite.map_or("-".to_owned(), |s| format!("{:.1}", mb(s))),
            mb(anon.saturating_sub(sqlite_kb))
        )
    };
    let (rss0, _) = server.memory();
    let sqlite0 = server.sqlite_heap(&ctx.http).await;
    println!(
        "{:>9.0} {} {:>10} {:>9} {:>8}   (before the load)",
        0.0,
        parts(rss0, sqlite0),
        0,
        "-",
        0
    );
    let mut curve: Vec<u64> = Vec::new();
    let (mut last_done, mut last_at) = (0u64, started);
    for k in 1u32.. {
        let at = (started + interval * k).min(deadline);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let now = Instant::now();
        let (rss, _) = server.memory();
        let sqlite = server.sqlite_heap(&ctx.http).await;
        let total = done.load(Ordering::Relaxed);
        let in_interval = total - last_done;
        println!(
            "{:>9.0} {} {:>10} {:>9.0} {:>8}",
            now.duration_since(started).as_secs_f64(),
            parts(rss, sqlite),
            in_interval,
            in_interval as f64 / now.duration_since(last_at).as_secs_f64(),
            failed.load(Ordering::Relaxed)
        );
        curve.push(rss);
        (last_done, last_at) = (total, now);
        if at >= deadline {
            break;
        }
    }

    let mut per_kind: Vec<Sample> = Kind::ALL.iter().map(|_| Sample::default()).collect();
    for t in tasks {
        for (all, s) in per_kind.iter_mut().zip(t.await?) {
            all.merge(s);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "-- soak totals per kind over {:.0} s",
        elapsed.as_secs_f64()
    );
    let (mut requests, mut errors) = (0u64, 0u64);
    for (kind, s) in Kind::ALL.iter().zip(per_kind) {
        let r = report(kind.name(), s, elapsed);
        requests += r.requests as u64 + r.errors;
        errors += r.errors;
    }
    println!(
        "soak: {requests} requests in {:.0} s ({:.0} req/s), {errors} errors",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );

    // Growth: the median of the last third of the samples against the first third.
    let third = (curve.len() / 3).max(1);
    let first_third = median(&curve[..third]);
    let last_third = median(&curve[curve.len() - third..]);
    let growth_mb = (last_third as f64 - first_third as f64) / 1024.0;
    let growth_pct = if first_third > 0 {
        (last_third as f64 / first_third as f64 - 1.0) * 100.0
    } else {
        0.0
    };
    println!(
        "soak memory (VmRSS, {} samples): first {:.1} MB, min {:.1}, max {:.1}, last {:.1}; \
         median of first third {:.1} MB, of last third {:.1} MB: growth {:+.1} MB ({:+.1}%)",
        curve.len(),
        mb(curve.first().copied().unwrap_or(0)),
        mb(curve.iter().copied().min().unwrap_or(0)),
        mb(curve.iter().copied().max().unwrap_or(0)),
        mb(curve.last().copied().unwrap_or(0)),
        mb(first_third),
        mb(last_third),
        growth_mb,
        growth_pct
    );
    let grew = curve.len() >= 3
        && growth_mb > args.soak_max_growth_mb
        && growth_pct > args.soak_max_growth_pct;
    if curve.len() < 3 {
        println!("soak memory: fewer than 3 samples, growth not judged");
    }
    match (errors, grew) {
        (0, false) => {
            println!(
                "soak: PASS (0 errors; memory growth within {} MB or {}%)",
                args.soak_max_growth_mb, args.soak_max_growth_pct
            );
            Ok(())
        }
        (e, g) => bail!(
            "soak FAILED: {e} errors{}",
            if g {
                format!(
                    ", memory grew {growth_mb:.1} MB ({growth_pct:.1}%), more than {} MB and {}%",
                    args.soak_max_growth_mb, args.soak_max_growth_pct
                )
            } else {
                String::new()
            }
        ),
    }
}
