//! Configuration: defaults, then a TOML file, then `VESPER_` environment variables, then
//! command-line flags, each overriding the one before.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// The `vesper` command line.
#[derive(Debug, Parser)]
#[command(
    name = "vesper",
    version,
    about = "Project and task management server (5pm API v2)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text, or as one JSON object a line for log shippers
    #[arg(
        long,
        global = true,
        env = "VESPER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS server.
    Serve(ServeArgs),
    /// Manage users from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage workspaces: one per host name under --base-domain.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Copy the SQLite database and its attached files into a new folder, while the
    /// server runs.
    Backup(BackupArgs),
    /// Lay out a data folder from a backup made by `vesper backup`.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup folder: new, or empty
    #[arg(long)]
    pub to: PathBuf,
    /// Where attached files live, as for `serve` [default: the data folder]
    #[arg(long, env = "VESPER_FILES_URL")]
    pub files_url: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A folder written by `vesper backup`
    #[arg(long)]
    pub from: PathBuf,
    /// Replace the database and files of a data folder that is not empty
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and its first admin; the admin's password is read from
    /// standard input.
    Create {
        /// Lower-case letters, digits and hyphens, 1 to 63 characters
        name: String,
        #[arg(long)]
        admin_email: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List the workspaces.
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Remove a workspace with all its rows and files.
    Remove {
        name: String,
        /// Confirms the removal: nothing of the workspace can be recovered
        #[arg(long)]
        yes: bool,
        /// Where attached files live, as for `serve` [default: the data folder]
        #[arg(long, env = "VESPER_FILES_URL")]
        files_url: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// admin, user, external or client
        #[arg(long, default_value = "user")]
        level: String,
        /// The workspace the user belongs to
        #[arg(long, default_value = crate::domain::workspace::DEFAULT_NAME)]
        workspace: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// Folder for the SQLite database, the certificate and files [default: ./vesper-data]
    #[arg(long, env = "VESPER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// postgres://... or sqlite:///path [default: SQLite in the data folder]
    #[arg(long, env = "VESPER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML configuration file
    #[arg(long, env = "VESPER_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on [default: 127.0.0.1:8443]
    #[arg(long, env = "VESPER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain; with --tls-key replaces the self-signed certificate
    #[arg(long, env = "VESPER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key
    #[arg(long, env = "VESPER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Storage for attached files: file:///shared/folder or s3://bucket/prefix?endpoint=...
    #[arg(long, env = "VESPER_FILES_URL")]
    pub files_url: Option<String>,
    /// SMTP server for notifications: smtp://user:pass@host:587?tls=required or smtps://...
    #[arg(long, env = "VESPER_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of notifications [default: Vesper <vesper@localhost>]
    #[arg(long, env = "VESPER_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Address of a TLS-terminating proxy allowed to send plain HTTP (repeatable)
    #[arg(
        long = "trusted-proxy",
        env = "VESPER_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve one workspace per host name: NAME.<base domain> is workspace NAME
    #[arg(long, env = "VESPER_BASE_DOMAIN")]
    pub base_domain: Option<String>,
    /// Serve Prometheus metrics at /metrics over plain HTTP on this address (keep it on a
    /// private interface) [default: off]
    #[arg(long, env = "VESPER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The configuration file's keys; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_proxies: Option<Vec<IpAddr>>,
    base_domain: Option<String>,
    session_idle_minutes: Option<u64>,
    session_max_days: Option<u64>,
    max_file_mib: Option<u64>,
    files_url: Option<String>,
    max_files_per_request: Option<usize>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    mail_max_attempts: Option<i64>,
    handshake_timeout_secs: Option<u64>,
    request_head_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    min_body_bytes_per_sec: Option<u64>,
    idle_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    metrics_listen: Option<SocketAddr>,
    #[serde(flatten)]
    unknown: toml::Table,
}

/// Everything the server needs to run.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub trusted_proxies: Vec<IpAddr>,
    /// With it, a request for `NAME.<base domain>` goes to workspace NAME (lower case,
    /// no leading dot); without it, every request goes to the default workspace.
    pub base_domain: Option<String>,
    /// A session ends after this long without use.
    pub session_idle_secs: i64,
    /// A session ends this long after sign-in, used or not.
    pub session_max_secs: i64,
    /// Failed logins allowed per login and per address within the window.
    pub login_failure_limit: i64,
    pub login_failure_window_secs: i64,
    /// Where attached files live: `file:///path` (a shared folder) or
    /// `s3://bucket/prefix?endpoint=...`; none: `<data-dir>/files`.
    pub files_url: Option<String>,
    /// Largest attached file, and most files in one attachFiles request.
    pub max_file_bytes: u64,
    pub max_files_per_request: usize,
    /// `smtp://user:pass@host:port` (`?tls=required` for STARTTLS) or `smtps://...`;
    /// without it mail is written as `.eml` files into `<data-dir>/mail/`.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Delivery attempts before a mail is given up.
    pub mail_max_attempts: i64,
    /// The first admin, created when the workspace has no user.
    pub admin_email: String,
    pub admin_password: Option<String>,
    /// Time limits on the network: the TLS handshake (from the connection's start), a
    /// request head (on HTTP/1.1 also the wait for the next one), each wait for more of
    /// a request body, a connection with no request in flight, and an answer the
    /// client stops reading.
    pub handshake_timeout: Duration,
    pub request_head_timeout: Duration,
    pub body_read_timeout: Duration,
    /// After `body_read_timeout`, a body must have brought this many bytes a second on
    /// average (0: no minimum).
    pub min_body_bytes_per_sec: u64,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    /// Open connections in all (never more than the open-file limit allows) and from one
    /// address (a trusted proxy is not counted per address).
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Where `/metrics` is served, in plain HTTP; none: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./vesper-data"),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            base_domain: None,
            session_idle_secs: 30 * 60,
            session_max_secs: 30 * 24 * 3600,
            login_failure_limit: 10,
            login_failure_window_secs: 15 * 60,
            files_url: None,
            max_file_bytes: 100 * 1024 * 1024,
            max_files_per_request: 20,
            smtp_url: None,
            mail_from: "Vesper <vesper@localhost>".into(),
            mail_max_attempts: 12,
            admin_email: "admin@example.com".into(),
            admin_password: None,
            handshake_timeout: Duration::from_secs(10),
            request_head_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            min_body_bytes_per_sec: 500,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_address: 256,
            metrics_listen: None,
        }
    }
}

/// Secrets (the database URL may hold a password) never reach a log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("listen", &self.listen)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("base_domain", &self.base_domain)
            .field("session_idle_secs", &self.session_idle_secs)
            .field("session_max_secs", &self.session_max_secs)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("mail_from", &self.mail_from)
            .field("admin_email", &self.admin_email)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("request_head_timeout", &self.request_head_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("min_body_bytes_per_sec", &self.min_body_bytes_per_sec)
            .field("idle_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("metrics_listen", &self.metrics_listen)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Config {
    /// Builds the configuration of `vesper serve`.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = Config::from_storage(&args.storage)?;
        if let Some(v) = args.listen {
            config.listen = v;
        }
        if args.tls_cert.is_some() {
            config.tls_cert = args.tls_cert.clone();
        }
        if args.tls_key.is_some() {
            config.tls_key = args.tls_key.clone();
        }
        if args.smtp_url.is_some() {
            config.smtp_url = args.smtp_url.clone();
        }
        if args.files_url.is_some() {
            config.files_url = args.files_url.clone();
        }
        if let Some(v) = &args.mail_from {
            config.mail_from = v.clone();
        }
        if !args.trusted_proxies.is_empty() {
            config.trusted_proxies = args.trusted_proxies.clone();
        }
        if args.base_domain.is_some() {
            config.base_domain = args.base_domain.clone();
        }
        if args.metrics_listen.is_some() {
            config.metrics_listen = args.metrics_listen;
        }
        if let Some(text) = &config.base_domain {
            let domain = crate::domain::workspace::base_domain(text)
                .map_err(|e| anyhow::anyhow!("--base-domain {e}"))?;
            config.base_domain = Some(domain);
        }
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            anyhow::bail!("--tls-cert and --tls-key go together");
        }
        Ok(config)
    }

    /// Builds the part of the configuration every subcommand needs.
    pub fn from_storage(args: &StorageArgs) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(path) = &args.config {
            config.apply_file(path)?;
        }
        if let Some(v) = &args.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &args.database_url {
            config.database_url = Some(v.clone());
        }
        if let Ok(email) = std::env::var("VESPER_ADMIN_EMAIL") {
            config.admin_email = email;
        }
        config.admin_password = std::env::var("VESPER_ADMIN_PASSWORD").ok();
        Ok(config)
    }

    fn apply_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: FileConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for key in file.unknown.keys() {
            tracing::warn!(key, file = %path.display(), "unknown configuration key ignored");
        }
        macro_rules! take {
            ($field:ident) => {
                if let Some(v) = file.$field {
                    self.$field = v.into();
                }
            };
        }
        take!(data_dir);
        take!(listen);
        take!(trusted_proxies);
        if file.base_domain.is_some() {
            self.base_domain = file.base_domain;
        }
        if file.database_url.is_some() {
            self.database_url = file.database_url;
        }
        if file.tls_cert.is_some() {
            self.tls_cert = file.tls_cert;
        }
        if file.metrics_listen.is_some() {
            self.metrics_listen = file.metrics_listen;
        }
        if file.tls_key.is_some() {
            self.tls_key = file.tls_key;
        }
        if let Some(m) = file.session_idle_minutes {
            self.session_idle_secs = (m * 60) as i64;
        }
        if let Some(d) = file.session_max_days {
            self.session_max_secs = (d * 24 * 3600) as i64;
        }
        if let Some(m) = file.max_file_mib {
            self.max_file_bytes = m * 1024 * 1024;
        }
        if let Some(n) = file.max_files_per_request {
            self.max_files_per_request = n;
        }
        if file.files_url.is_some() {
            self.files_url = file.files_url;
        }
        if file.smtp_url.is_some() {
            self.smtp_url = file.smtp_url;
        }
        take!(mail_from);
        take!(mail_max_attempts);
        // A zero would close every connection at once.
        let positive = |key: &str, v: u64| {
            if v == 0 {
                anyhow::bail!("{key} must be at least 1 (in {})", path.display());
            }
            Ok(v)
        };
        let seconds = |key: &str, v: Option<u64>| -> anyhow::Result<Option<Duration>> {
            v.map(|v| positive(key, v).map(Duration::from_secs))
                .transpose()
        };
        macro_rules! take_secs {
            ($key:ident => $field:ident) => {
                if let Some(d) = seconds(stringify!($key), file.$key)? {
                    self.$field = d;
                }
            };
        }
        take_secs!(handshake_timeout_secs => handshake_timeout);
        take_secs!(request_head_timeout_secs => request_head_timeout);
        take_secs!(body_read_timeout_secs => body_read_timeout);
        take_secs!(idle_timeout_secs => idle_timeout);
        take_secs!(write_timeout_secs => write_timeout);
        take!(min_body_bytes_per_sec);
        if let Some(n) = file.max_connections {
            self.max_connections = positive("max_connections", n as u64)? as usize;
        }
        if let Some(n) = file.max_connections_per_address {
            self.max_connections_per_address =
                positive("max_connections_per_address", n as u64)? as usize;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vesper.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/v\"\nsession_idle_minutes = 5\nbogus = 1\n",
        )
        .unwrap();
        let args = ServeArgs {
            storage: StorageArgs {
                config: Some(file),
                data_dir: Some("/override".into()),
                database_url: None,
            },
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/override"));
        assert_eq!(c.session_idle_secs, 300);
        assert_eq!(c.metrics_listen, None, "off unless asked for");
    }

    #[test]
    fn metrics_listen_comes_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vesper.toml");
        std::fs::write(&file, "metrics_listen = \"127.0.0.1:9100\"\n").unwrap();
        let mut args = ServeArgs {
            storage: StorageArgs {
                config: Some(file),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        args.metrics_listen = Some("10.0.0.1:9200".parse().unwrap());
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.metrics_listen, Some("10.0.0.1:9200".parse().unwrap()));
    }

    #[test]
    fn network_limits_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vesper.toml");
        std::fs::write(
            &file,
            "handshake_timeout_secs = 3\nrequest_head_timeout_secs = 4\nbody_read_timeout_secs = 5\n\
             min_body_bytes_per_sec = 0\nidle_timeout_secs = 6\nwrite_timeout_secs = 7\n\
             max_connections = 800\nmax_connections_per_address = 9\n",
        )
        .unwrap();
        let mut c = Config::default();
        c.apply_file(&file).unwrap();
        assert_eq!(c.handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.request_head_timeout, Duration::from_secs(4));
        assert_eq!(c.body_read_timeout, Duration::from_secs(5));
        assert_eq!(c.min_body_bytes_per_sec, 0);
        assert_eq!(c.idle_timeout, Duration::from_secs(6));
        assert_eq!(c.write_timeout, Duration::from_secs(7));
        assert_eq!(c.max_connections, 800);
        assert_eq!(c.max_connections_per_address, 9);
        std::fs::write(&file, "idle_timeout_secs = 0\n").unwrap();
        assert!(Config::default().apply_file(&file).is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Config {
            database_url: Some("postgres://u:hunter2@db/v".into()),
            admin_password: Some("s3cret-pass".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret-pass"));
    }
}
