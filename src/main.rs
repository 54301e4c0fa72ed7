//! The `rollcall` command: serve, workspace, token, client. Output that scripts
//! read (passwords, tokens, JSON) goes alone on stdout; messages go to stderr.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rollcall::app::admin::{self, AdminError};
use rollcall::config::{Config, LogFormat, Settings};
use rollcall::domain::{Email, Subdomain};
use rollcall::store::Db;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "SCIM 2.0 + OAuth2 server for multi-workspace products"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Settings; each also reads ROLLCALL_<NAME>.
#[derive(Args)]
struct GlobalArgs {
    /// TOML file with any of the settings below (flags and environment win).
    #[arg(long, global = true, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// sqlite://FILE (default sqlite://rollcall.db) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "ROLLCALL_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// The app host and OAuth issuer; workspaces live on its subdomains.
    #[arg(long, global = true, env = "ROLLCALL_BASE_URL", value_name = "URL")]
    base_url: Option<String>,
    /// text (default) or json.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<String>,
    /// Where Rollcall keeps files it generates (default: the working directory).
    #[arg(long, global = true, env = "ROLLCALL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server key sealing stored IdP secrets (base64 of 32 bytes). Default: the
    /// key in <data-dir>/secret.key, generated on first use.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Hosts (NAME or NAME:PORT) that IdP fetches may reach although they are
    /// internal addresses (an on-premises IdP). Comma-separated; default none.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_SSO_FETCH_ALLOW",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    sso_fetch_allow: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "ROLLCALL_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// Take the workspace from X-Forwarded-Host (only behind a proxy that sets it).
        #[arg(long, env = "ROLLCALL_TRUST_FORWARDED_HOST")]
        trust_forwarded_host: bool,
        /// On an empty database, create workspace `acme` with an admin and an API token.
        #[arg(long, env = "ROLLCALL_DEMO")]
        demo: bool,
    },
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Manage workspace API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an OAuth client; prints JSON {"client_id", "client_secret"} (the
    /// secret is shown once; null for a public client).
    Create {
        #[arg(long)]
        name: String,
        /// The workspace the client belongs to: it authorizes into that workspace
        /// only. Without it, a global client serving every workspace.
        #[arg(long, value_name = "SUBDOMAIN")]
        workspace: Option<String>,
        /// An exact redirect URI: https, or http for localhost/127.0.0.1/[::1]. Repeat
        /// for more. Needed for the authorization code grant.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; must use PKCE).
        #[arg(long)]
        public: bool,
        /// A grant the client may use; repeat for both. Default: authorization_code.
        /// client_credentials needs --workspace and a confidential client.
        #[arg(long = "grant", value_name = "GRANT", value_parser = ["authorization_code", "client_credentials"])]
        grants: Vec<String>,
        /// A scope the client may have; repeat for both. Default: both.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = ["scim:read", "scim:write"])]
        scopes: Vec<String>,
    },
    /// List OAuth clients (never their secrets) as JSON: one workspace's, or all.
    List {
        #[arg(long, value_name = "SUBDOMAIN")]
        workspace: Option<String>,
    },
    /// Give a confidential client a new secret; prints JSON {"client_id",
    /// "client_secret", "previous_secret_expires_at"}. The old secret keeps working
    /// until then (setting client_secret_overlap_secs, default 24 hours).
    RotateSecret { client_id: String },
    /// Delete a client: its grants and tokens end at once.
    Delete { client_id: String },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace and its first admin; prints the admin's password once.
    Create {
        subdomain: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
    },
    /// Switch the SCIM API on or off for a workspace.
    Scim {
        subdomain: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// "Manage teams with SCIM": while on, the IdP manages teams through SCIM Groups
    /// and the teams it manages are read-only on the pages; while off, /Groups
    /// answers 403.
    ScimTeams {
        subdomain: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Sign-in through the workspace's identity provider (OIDC or SAML).
    Sso {
        subdomain: String,
        #[command(subcommand)]
        action: SsoCommand,
    },
}

#[derive(Subcommand)]
enum SsoCommand {
    /// Print the settings and the values to give the IdP, as JSON.
    Show,
    /// Sign in through an OpenID Connect provider (turns SSO on).
    Oidc {
        /// The issuer URL, exactly as the IdP writes it (e.g. https://acme.okta.com).
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// Required the first time; omitted later keeps the stored one.
        #[arg(long, env = "ROLLCALL_OIDC_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// Do not fetch the issuer's discovery document to check it.
        #[arg(long)]
        no_check: bool,
    },
    /// Sign in through a SAML 2.0 IdP (turns SSO on): its metadata (URL or file), or
    /// the entity id, SSO URL and signing certificate.
    Saml {
        #[arg(long, conflicts_with_all = ["metadata_file", "entity_id"])]
        metadata_url: Option<String>,
        #[arg(long, conflicts_with = "entity_id")]
        metadata_file: Option<PathBuf>,
        #[arg(long, requires_all = ["sso_url", "certificate_file"])]
        entity_id: Option<String>,
        #[arg(long)]
        sso_url: Option<String>,
        /// The IdP's signing certificate (PEM or base64 DER).
        #[arg(long)]
        certificate_file: Option<PathBuf>,
    },
    /// Turn SSO off (settings are kept).
    Off,
    /// Passwords while SSO is on: `off` (default) or `on` for everyone; a named
    /// admin may keep a password as a break-glass account.
    Passwords {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// An admin's email; `--break-glass ""` removes it.
        #[arg(long)]
        break_glass: Option<String>,
    },
    /// Create unknown members the IdP vouches for, as contributors.
    AutoCreate {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for the workspace's SCIM API; prints only the token.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "API token")]
        name: String,
    },
}

fn main() -> ExitCode {
    rollcall::alloc::limit_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    let mut settings = Settings {
        database_url: g.database_url,
        base_url: g.base_url,
        log_format: g.log_format,
        data_dir: g.data_dir,
        secret_key: g.secret_key,
        sso_fetch_allow: (!g.sso_fetch_allow.is_empty()).then_some(g.sso_fetch_allow),
        ..Settings::default()
    };
    if let Command::Serve {
        listen,
        trust_forwarded_host,
        ..
    } = &cli.command
    {
        settings.listen = listen.clone();
        settings.trust_forwarded_host = trust_forwarded_host.then_some(true);
    }
    let config = Config::load(settings, g.config.as_deref())?;

    match cli.command {
        Command::Serve { demo, .. } => serve(config, demo).await,
        Command::Workspace(WorkspaceCommand::Create {
            subdomain,
            name,
            admin_email,
        }) => {
            let db = connect(&config).await?;
            let sub = Subdomain::parse(&subdomain).context("subdomain")?;
            let email = Email::parse(&admin_email).context("admin email")?;
            let created = admin::create_workspace(&db, &sub, &name, &email).await?;
            eprintln!(
                "Created workspace '{}' at {}. Admin {} signs in with this password (shown once):",
                created.workspace.subdomain,
                config.workspace_origin(&created.workspace.subdomain),
                created.admin.user_name
            );
            println!("{}", created.admin_password);
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::Scim { subdomain, state }) => {
            let db = connect(&config).await?;
            admin::set_scim(&db, &workspace(&db, &subdomain).await?, state == "on").await?;
            eprintln!("SCIM is {state} for workspace '{subdomain}'.");
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::ScimTeams { subdomain, state }) => {
            let db = connect(&config).await?;
            admin::set_scim_teams(&db, &workspace(&db, &subdomain).await?, state == "on").await?;
            eprintln!("Managing teams with SCIM is {state} for workspace '{subdomain}'.");
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::Sso { subdomain, action }) => {
            let db = connect(&config).await?;
            sso_command(&config, &db, &subdomain, action).await
        }
        Command::Client(command) => {
            let db = connect(&config).await?;
            client_command(&config, &db, command).await
        }
        Command::Token(TokenCommand::Create { workspace, name }) => {
            let db = connect(&config).await?;
            let ws = self::workspace(&db, &workspace).await?;
            let token = admin::create_api_token(&db, &ws, &name, "cli").await?;
            eprintln!("Created API token '{name}' for workspace '{workspace}' (shown once):");
            println!("{token}");
            Ok(())
        }
    }
}

async fn client_command(config: &Config, db: &Db, command: ClientCommand) -> anyhow::Result<()> {
    use rollcall::oauth::Scopes;
    use rollcall::oauth::client::GrantType;
    use rollcall::store::oauth::ClientScope;
    match command {
        ClientCommand::Create {
            name,
            workspace,
            redirect_uris,
            public,
            grants,
            scopes,
        } => {
            let ws = match &workspace {
                Some(sub) => Some(self::workspace(db, sub).await?),
                None => None,
            };
            let grants: Vec<GrantType> =
                grants.iter().filter_map(|g| GrantType::parse(g)).collect();
            let scopes = (!scopes.is_empty())
                .then(|| Scopes::parse(&scopes.join(" ")))
                .transpose()
                .map_err(|e| anyhow::anyhow!("scope: {e}"))?;
            let spec = admin::ClientSpec {
                name: &name,
                redirect_uris: &redirect_uris,
                public,
                grants: &grants,
                scopes,
            };
            let created = admin::register_client(db, ws.as_ref(), &spec, "cli").await?;
            eprintln!(
                "Registered OAuth client '{name}'{}.{}",
                workspace
                    .map(|w| format!(" for workspace '{w}'"))
                    .unwrap_or_default(),
                if public {
                    ""
                } else {
                    " The secret is shown once:"
                }
            );
            println!("{}", serde_json::to_string(&created)?);
        }
        ClientCommand::List { workspace } => {
            let ws = match &workspace {
                Some(sub) => Some(self::workspace(db, sub).await?),
                None => None,
            };
            let clients = admin::list_clients(db, ws.as_ref()).await?;
            println!("{}", serde_json::to_string(&clients)?);
        }
        ClientCommand::RotateSecret { client_id } => {
            let rotated = admin::rotate_client_secret(
                db,
                ClientScope::Any,
                &client_id,
                config.client_secret_overlap,
                "cli",
            )
            .await?;
            eprintln!(
                "New secret for OAuth client '{client_id}' (shown once); the old one works until the time given:"
            );
            println!("{}", serde_json::to_string(&rotated)?);
        }
        ClientCommand::Delete { client_id } => {
            admin::delete_client(db, ClientScope::Any, &client_id, "cli").await?;
            eprintln!("Deleted OAuth client '{client_id}'; its grants and tokens have ended.");
            println!(
                "{}",
                serde_json::json!({"client_id": client_id, "deleted": true})
            );
        }
    }
    Ok(())
}

async fn sso_command(
    config: &Config,
    db: &Db,
    subdomain: &str,
    action: SsoCommand,
) -> anyhow::Result<()> {
    let ws = &workspace(db, subdomain).await?;
    match action {
        SsoCommand::Show => {}
        SsoCommand::Oidc {
            issuer,
            client_id,
            client_secret,
            no_check,
        } => {
            let key =
                rollcall::sso::ServerKey::load(config.secret_key.as_deref(), &config.data_dir)?;
            let rt = rollcall::sso::Sso::new(key, &config.sso_fetch_allow)?;
            admin::set_oidc(
                db,
                &rt,
                ws,
                &issuer,
                &client_id,
                client_secret.as_deref(),
                !no_check,
            )
            .await?;
            eprintln!("Workspace '{subdomain}' now signs in through OpenID Connect ({issuer}).");
        }
        SsoCommand::Saml {
            metadata_url,
            metadata_file,
            entity_id,
            sso_url,
            certificate_file,
        } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let source = match (metadata_url, metadata_file, entity_id) {
                (Some(url), _, _) => admin::SamlSource::MetadataUrl(url),
                (_, Some(file), _) => admin::SamlSource::MetadataXml(read(&file)?),
                (_, _, Some(entity_id)) => admin::SamlSource::Values {
                    entity_id,
                    sso_url: sso_url.unwrap_or_default(),
                    certificate: certificate_file
                        .as_ref()
                        .map(read)
                        .transpose()?
                        .unwrap_or_default(),
                },
                _ => anyhow::bail!(
                    "give --metadata-url, --metadata-file, or --entity-id with --sso-url and --certificate-file"
                ),
            };
            let fetch = rollcall::sso::fetch::Fetcher::new(&config.sso_fetch_allow)?;
            admin::set_saml(db, &fetch, ws, source).await?;
            eprintln!("Workspace '{subdomain}' now signs in through SAML.");
        }
        SsoCommand::Off => {
            admin::sso_off(db, ws).await?;
            eprintln!("SSO is off for workspace '{subdomain}'.");
        }
        SsoCommand::Passwords { state, break_glass } => {
            let current = admin::sso_settings(db, config, ws).await?;
            let break_glass = match break_glass {
                Some(email) => Some(email),
                None => current.break_glass_email,
            };
            admin::set_password_policy(db, ws, state == "on", break_glass.as_deref()).await?;
        }
        SsoCommand::AutoCreate { state } => {
            admin::set_auto_create(db, ws, state == "on").await?;
        }
    }
    let view = admin::sso_settings(db, config, ws).await?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}

/// The workspace a command names, looked up once.
async fn workspace(
    db: &Db,
    subdomain: &str,
) -> anyhow::Result<rollcall::store::workspaces::Workspace> {
    let missing = || anyhow::anyhow!("no workspace '{subdomain}'");
    let sub = Subdomain::parse(subdomain).map_err(|_| missing())?;
    admin::workspace(db, &sub).await.map_err(|e| match e {
        AdminError::NoWorkspace(_) => missing(),
        other => other.into(),
    })
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database at {}",
            redact(&config.database_url)
        )
    })
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logging(config.log_format);
    let db = connect(&config).await?;
    if demo {
        match admin::seed_demo(&db).await? {
            Some(d) => eprintln!(
                "\nDemo workspace 'acme' is ready.\n\
                 \x20 Sign in:    {origin}/signin\n\
                 \x20 Email:      {email}\n\
                 \x20 Password:   {password}\n\
                 \x20 SCIM base:  {base}/scim/v2\n\
                 \x20 API token:  {token}\n\
                 \x20 Try:        curl -H 'Authorization: Bearer {token}' {base}/scim/v2/Users\n\n\
                 Demo OAuth client (authorization code grant):\n\
                 \x20 Client id:     {client_id}\n\
                 \x20 Client secret: {client_secret}\n\
                 \x20 Redirect URI:  {redirect_uri}\n\
                 \x20 Authorize:     {authorize}\n\
                 \x20 Metadata:      {base}/.well-known/oauth-authorization-server\n",
                origin = config.workspace_origin("acme"),
                email = d.admin_email,
                password = d.admin_password,
                base = config.base(),
                token = d.api_token,
                client_id = d.client.client_id,
                client_secret = d.client.client_secret.as_deref().unwrap_or("(none)"),
                redirect_uri = admin::DEMO_REDIRECT_URI,
                authorize = admin::demo_authorize_url(config.base(), &d.client.client_id),
            ),
            None => eprintln!("--demo: the database already has workspaces; nothing was added."),
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let base = config.base().to_owned();
    let running = rollcall::start(config, db, listener, true).await?;
    tracing::info!(
        addr = %running.addr,
        base_url = %base,
        ready_ms = started.elapsed().as_millis() as u64,
        "rollcall is ready"
    );
    running.wait().await?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
