//! Settings: command-line flags and `ROLLCALL_*` environment variables (clap reads
//! both) override an optional TOML file, which overrides the defaults. Defaults run
//! locally with nothing set. A bad setting is one line that names it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Every setting, each optional: one layer of configuration (flags+env, or file).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: Option<String>,
    pub base_url: Option<String>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Take the workspace from `X-Forwarded-Host` (only behind a proxy that sets it).
    pub trust_forwarded_host: Option<bool>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub refresh_grace_secs: Option<u64>,
    /// Token-endpoint requests per minute per authenticated client.
    pub token_rate_per_client: Option<u32>,
    /// OAuth endpoint requests per minute per remote address.
    pub token_rate_per_address: Option<u32>,
    /// Failed password sign-ins per 15 minutes per account (workspace + email).
    pub signin_failures_per_account: Option<u32>,
    /// Failed password sign-ins per 15 minutes per remote address.
    pub signin_failures_per_address: Option<u32>,
    /// A request (headers read, body and answer) must finish within this; slow
    /// clients get 408.
    pub request_timeout_secs: Option<u64>,
    /// The server key sealing stored IdP secrets: base64 of 32 bytes. When unset,
    /// one is generated once into `<data_dir>/secret.key`.
    pub secret_key: Option<String>,
    /// Hosts (`name` or `name:port`, IP addresses too) that outgoing IdP fetches may
    /// reach although they resolve to loopback, private or other internal addresses:
    /// an on-premises IdP. Empty by default: such fetches are refused.
    pub sso_fetch_allow: Option<Vec<String>>,
    /// A browser session ends this long after sign-in, however active (idle
    /// sessions end sooner).
    pub session_absolute_secs: Option<u64>,
    /// SCIM requests per minute per token (with a burst); 0 turns the limit off.
    pub scim_rate_per_token: Option<u32>,
    /// After an OAuth client's secret is rotated, the old secret keeps working this
    /// long (default 24 hours; 0: it stops at once).
    pub client_secret_overlap_secs: Option<u64>,
}

impl Settings {
    /// `self` wins where set.
    fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            base_url: self.base_url.or(lower.base_url),
            database_url: self.database_url.or(lower.database_url),
            log_format: self.log_format.or(lower.log_format),
            data_dir: self.data_dir.or(lower.data_dir),
            trust_forwarded_host: self.trust_forwarded_host.or(lower.trust_forwarded_host),
            access_token_ttl_secs: self.access_token_ttl_secs.or(lower.access_token_ttl_secs),
            refresh_token_ttl_secs: self.refresh_token_ttl_secs.or(lower.refresh_token_ttl_secs),
            refresh_grace_secs: self.refresh_grace_secs.or(lower.refresh_grace_secs),
            token_rate_per_client: self.token_rate_per_client.or(lower.token_rate_per_client),
            token_rate_per_address: self.token_rate_per_address.or(lower.token_rate_per_address),
            signin_failures_per_account: self
                .signin_failures_per_account
                .or(lower.signin_failures_per_account),
            signin_failures_per_address: self
                .signin_failures_per_address
                .or(lower.signin_failures_per_address),
            request_timeout_secs: self.request_timeout_secs.or(lower.request_timeout_secs),
            secret_key: self.secret_key.or(lower.secret_key),
            sso_fetch_allow: self.sso_fetch_allow.or(lower.sso_fetch_allow),
            session_absolute_secs: self.session_absolute_secs.or(lower.session_absolute_secs),
            scim_rate_per_token: self.scim_rate_per_token.or(lower.scim_rate_per_token),
            client_secret_overlap_secs: self
                .client_secret_overlap_secs
                .or(lower.client_secret_overlap_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Longest overlap of a rotated client secret with its successor.
pub const MAX_SECRET_OVERLAP_SECS: u64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub base_url: Url,
    pub database_url: String,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    pub trust_forwarded_host: bool,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_grace: Duration,
    pub limits: Limits,
    pub request_timeout: Duration,
    pub secret_key: Option<String>,
    /// Outgoing IdP fetches may reach these internal hosts (see `Settings`).
    pub sso_fetch_allow: Vec<String>,
    pub session_absolute: Duration,
    /// How long a rotated client secret keeps working beside its successor.
    pub client_secret_overlap: Duration,
}

/// Rate limits (counted in the database, so across every process sharing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Token-endpoint requests per minute per authenticated client.
    pub token_per_client: u32,
    /// Requests per minute per remote address to the token, revocation and
    /// introspection endpoints.
    pub token_per_address: u32,
    /// Failed password sign-ins per 15 minutes per account.
    pub signin_failures_per_account: u32,
    /// Failed password sign-ins per 15 minutes per remote address.
    pub signin_failures_per_address: u32,
    /// SCIM requests per minute per token; 0 = no limit.
    pub scim_per_token: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            token_per_client: 120,
            token_per_address: 600,
            signin_failures_per_account: 10,
            signin_failures_per_address: 100,
            // 50 a second, as the product Rollcall models allows.
            scim_per_token: 3000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

fn bad(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_BASE_URL: &str = "http://localhost:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rollcall.db";

impl Config {
    /// Resolve `flags` (already merged with the environment by clap) over the TOML
    /// file at `config_file`, if any, over the defaults.
    pub fn load(flags: Settings, config_file: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match config_file {
            None => Settings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| {
                    let msg = e.message().to_owned();
                    bad("config", format!("{}: {msg}", path.display()))
                })?
            }
        };
        Self::from_settings(flags.or(file))
    }

    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let listen = s.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            bad(
                "listen",
                format!("'{listen}' is not an address like 127.0.0.1:8080"),
            )
        })?;

        let base_url = parse_base_url(s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;

        let database_url = s
            .database_url
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database_url",
                "expected sqlite://FILE, sqlite::memory: or postgres://USER@HOST/DB",
            ));
        }

        let log_format = match s.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(bad("log_format", format!("'{other}' is not text or json"))),
        };

        let secs = |v: Option<u64>, default: u64, name: &'static str| match v.unwrap_or(default) {
            0 => Err(bad(name, "must be at least 1 second")),
            n => Ok(Duration::from_secs(n)),
        };
        let refresh_grace = Duration::from_secs(s.refresh_grace_secs.unwrap_or(60));
        // Bounded so `now + overlap` is always a time (and an old secret never works
        // for years by a typo).
        let client_secret_overlap = match s.client_secret_overlap_secs.unwrap_or(24 * 3600) {
            n if n > MAX_SECRET_OVERLAP_SECS => {
                return Err(bad(
                    "client_secret_overlap_secs",
                    format!("must be at most {MAX_SECRET_OVERLAP_SECS} seconds (30 days)"),
                ));
            }
            n => Duration::from_secs(n),
        };
        let count = |v: Option<u32>, default: u32, name: &'static str| match v.unwrap_or(default) {
            0 => Err(bad(name, "must be at least 1")),
            n => Ok(n),
        };
        let d = Limits::default();
        let limits = Limits {
            token_per_client: count(
                s.token_rate_per_client,
                d.token_per_client,
                "token_rate_per_client",
            )?,
            token_per_address: count(
                s.token_rate_per_address,
                d.token_per_address,
                "token_rate_per_address",
            )?,
            signin_failures_per_account: count(
                s.signin_failures_per_account,
                d.signin_failures_per_account,
                "signin_failures_per_account",
            )?,
            signin_failures_per_address: count(
                s.signin_failures_per_address,
                d.signin_failures_per_address,
                "signin_failures_per_address",
            )?,
            scim_per_token: s.scim_rate_per_token.unwrap_or(d.scim_per_token),
        };
        let sso_fetch_allow = s.sso_fetch_allow.unwrap_or_default();
        for entry in &sso_fetch_allow {
            crate::sso::fetch::AllowEntry::parse(entry)
                .map_err(|e| bad("sso_fetch_allow", format!("'{entry}': {e}")))?;
        }
        Ok(Config {
            listen,
            base_url,
            database_url,
            log_format,
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from(".")),
            trust_forwarded_host: s.trust_forwarded_host.unwrap_or(false),
            request_timeout: secs(s.request_timeout_secs, 30, "request_timeout_secs")?,
            access_token_ttl: secs(s.access_token_ttl_secs, 3600, "access_token_ttl_secs")?,
            refresh_token_ttl: secs(
                s.refresh_token_ttl_secs,
                180 * 24 * 3600,
                "refresh_token_ttl_secs",
            )?,
            refresh_grace,
            limits,
            secret_key: s.secret_key,
            sso_fetch_allow,
            session_absolute: secs(s.session_absolute_secs, 12 * 3600, "session_absolute_secs")?,
            client_secret_overlap,
        })
    }

    /// The base URL without a trailing slash, for building absolute URLs.
    pub fn base(&self) -> &str {
        self.base_url.as_str().trim_end_matches('/')
    }

    /// `http://acme.localhost:8080` for workspace `acme`.
    pub fn workspace_origin(&self, subdomain: &str) -> String {
        let mut url = self.base_url.clone();
        let host = url.host_str().unwrap_or("localhost").to_owned();
        // The base URL was checked to have a domain host, so this cannot fail.
        let _ = url.set_host(Some(&format!("{subdomain}.{host}")));
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The host name (no port) that workspace subdomains sit under.
    pub fn base_host(&self) -> &str {
        self.base_url.host_str().unwrap_or("localhost")
    }

    pub fn secure_cookies(&self) -> bool {
        self.base_url.scheme() == "https"
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| bad("base_url", format!("'{raw}': {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("base_url", format!("'{raw}' must be http or https")));
    }
    match url.host() {
        Some(url::Host::Domain(_)) => {}
        _ => {
            return Err(bad(
                "base_url",
                format!("'{raw}' needs a domain name (workspaces live on its subdomains)"),
            ));
        }
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "base_url",
            format!("'{raw}' must not have a path, query or fragment"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_locally() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.base(), "http://localhost:8080");
        assert_eq!(c.database_url, "sqlite://rollcall.db");
        assert_eq!(c.workspace_origin("acme"), "http://acme.localhost:8080");
        assert_eq!(c.refresh_grace, Duration::from_secs(60));
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn bad_settings_name_themselves() {
        let cases = [
            (
                Settings {
                    client_secret_overlap_secs: Some(1_000_000_000_000),
                    ..Default::default()
                },
                "client_secret_overlap_secs",
            ),
            (
                Settings {
                    listen: Some("nope".into()),
                    ..Default::default()
                },
                "listen",
            ),
            (
                Settings {
                    base_url: Some("ftp://x".into()),
                    ..Default::default()
                },
                "base_url",
            ),
            (
                Settings {
                    base_url: Some("http://127.0.0.1:8080".into()),
                    ..Default::default()
                },
                "base_url",
            ),
            (
                Settings {
                    base_url: Some("http://x.test/app".into()),
                    ..Default::default()
                },
                "base_url",
            ),
            (
                Settings {
                    database_url: Some("mysql://x".into()),
                    ..Default::default()
                },
                "database_url",
            ),
            (
                Settings {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                "log_format",
            ),
            (
                Settings {
                    access_token_ttl_secs: Some(0),
                    ..Default::default()
                },
                "access_token_ttl_secs",
            ),
            (
                Settings {
                    token_rate_per_client: Some(0),
                    ..Default::default()
                },
                "token_rate_per_client",
            ),
        ];
        for (settings, name) in cases {
            let err = Config::from_settings(settings).unwrap_err();
            assert_eq!(err.setting, name);
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid setting {name}: "))
            );
        }
    }

    #[test]
    fn flags_override_file_and_file_unknown_keys_fail() {
        let dir = std::env::temp_dir().join(format!("rollcall-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rollcall.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nbase_url = \"https://id.example.com\"\n",
        )
        .unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:9999".into()),
            ..Default::default()
        };
        let c = Config::load(flags, Some(&path)).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.base(), "https://id.example.com");
        assert!(c.secure_cookies());

        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::load(Settings::default(), Some(&path)).unwrap_err();
        assert_eq!(err.setting, "config");
        assert!(err.message.contains("lisen"), "{}", err.message);
    }
}
