//! Vesper: a project and task management server speaking the 5pm API v2.
//!
//! A request walks one way: [`http`] (TLS, arguments, envelope), then [`api`] (the
//! endpoint table and one module per 5pm service), which asks [`auth`] for the caller,
//! then [`domain`] (rules, no I/O), then [`store`]. [`router`] puts the API's dispatcher
//! on the HTTP layer; nothing below the API names it.
// No unsafe code, but for SQLite's C API where rusqlite has no call for what is needed
// (`store::sqlite::skip_memory_statistics`, the statements kept and read in place in
// `store::sqlite::statements`) and the admission's two, each allowing it by name.
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod backup;
pub mod commands;
pub mod config;
pub mod domain;
pub mod files;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::net::TcpListener;

use crate::api::AppState;
use crate::auth::Authentication;
use crate::config::Config;
use crate::domain::user::{NewUser, Profile, SecurityLevel};
use crate::domain::{now, password, validate, WorkspaceId};
use crate::store::Store;

/// Runs the whole server on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    files::make_private(&config.data_dir)
        .with_context(|| format!("making {} private", config.data_dir.display()))?;
    let store = store::open(config.database_url.as_deref(), &config.data_dir).await?;
    if let Some(generated) = ensure_first_admin(&*store, &config).await? {
        // Shown once, on standard output, never through the log.
        println!(
            "Created the first admin {} with the password: {generated}",
            config.admin_email
        );
    }
    let files = files::Blobs::open(config.files_url.as_deref(), &config.data_dir)?;
    // The data folder's own files belong to this node alone: everything unreferenced
    // there is a crash's orphan. Shared storage may hold another node's upload in
    // flight, so there only old orphans go.
    let grace = if config.files_url.is_some() {
        files::SWEEP_GRACE
    } else {
        Duration::ZERO
    };
    sweep_files(&*store, &files, grace).await?;
    let mailer = mail::Mailer::new(
        config.smtp_url.as_deref(),
        &config.mail_from,
        &config.data_dir,
        config.mail_max_attempts,
    )?;
    let mail_wake = Arc::new(tokio::sync::Notify::new());
    let tls = http::tls::server_config(&config)?;
    let config = Arc::new(config);
    let files_for_sweep = files.clone();
    let auth = Arc::new(Authentication::new(
        store.clone(),
        config.clone(),
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    )?);
    let state = AppState {
        store: store.clone(),
        config: config.clone(),
        files: files.clone(),
        mail_wake: mail_wake.clone(),
        auth: auth.clone(),
        workspaces: Arc::new(api::workspace::Workspaces::new(
            config.base_domain.clone(),
            store.clone(),
        )),
    };
    let sweeper = tokio::spawn(auth.sweep());
    let file_sweeper = tokio::spawn({
        let (store, files) = (store.clone(), files_for_sweep);
        async move {
            let mut tick = tokio::time::interval(files::SWEEP_GRACE);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = sweep_files(&*store, &files, files::SWEEP_GRACE).await {
                    tracing::warn!(error = %e, "file sweep failed");
                }
            }
        }
    });
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --metrics-listen {addr}"))?;
            tracing::info!(address = %listener.local_addr()?, "serving /metrics (plain HTTP)");
            Some(tokio::spawn(serve_metrics(listener, store.clone())))
        }
        None => None,
    };
    let mail_worker = tokio::spawn(mail::supervise(store, mailer, mail_wake));
    tracing::info!(address = %listener.local_addr()?, "listening (HTTPS)");
    http::transport::serve(listener, tls, router(state), &config, shutdown).await;
    sweeper.abort();
    file_sweeper.abort();
    mail_worker.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Creates the first admin when the workspace has no user. Returns the generated
/// password when none was configured.
pub async fn ensure_first_admin(
    store: &dyn Store,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    let ws = WorkspaceId::DEFAULT;
    if store.count_users(ws).await? > 0 {
        return Ok(None);
    }
    let email = validate::email(&config.admin_email)
        .map_err(|e| anyhow::anyhow!("VESPER_ADMIN_EMAIL {}", e.message))?;
    let (given, generated) = match &config.admin_password {
        Some(p) => {
            validate::password(p)
                .map_err(|e| anyhow::anyhow!("VESPER_ADMIN_PASSWORD {}", e.message))?;
            (p.clone(), None)
        }
        None => {
            let p = password::generate_password();
            (p.clone(), Some(p))
        }
    };
    let hash = tokio::task::spawn_blocking(move || password::hash(&given)).await?;
    let added = store
        .add_user(
            ws,
            NewUser {
                email,
                password_hash: hash,
                profile: Profile::default(),
                security_level: SecurityLevel::Admin,
                can_view_profiles: true,
            },
            now(),
        )
        .await;
    match added {
        Ok(_) => {}
        // Another node starting at the same moment created it.
        Err(store::StoreError::DuplicateEmail) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(email = %config.admin_email, "created the first admin");
    Ok(generated)
}

/// Removes file blobs no row names, older than `grace`.
async fn sweep_files(
    store: &dyn Store,
    files: &files::Blobs,
    grace: Duration,
) -> anyhow::Result<()> {
    let known = store.storage_keys().await?.into_iter().collect();
    let swept = files.sweep(&known, grace).await?;
    if swept > 0 {
        tracing::info!(removed = swept, "removed file blobs that no row names");
    }
    Ok(())
}

/// The server's routes: the API's dispatcher, the web page for people and the health
/// check, on the HTTP layer's plumbing.
pub fn router(state: AppState) -> Router {
    let pages = web::routes()
        .layer(axum::middleware::map_response(web::security_headers))
        .layer(axum::middleware::from_fn(web::log_page));
    Router::new()
        .route(api::endpoints::ROUTE, any(api::endpoints::dispatch))
        .route(api::openapi::PATH, get(api::openapi::serve))
        .route("/health", get(http::health))
        .route("/ready", get(ready))
        .merge(pages)
        .fallback(http::unknown)
        .with_state(state)
}

/// How long `/ready` and a scrape wait for storage.
const STORAGE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Readiness: 200 when storage answers a trivial query within a second, 503 otherwise.
/// `/health` is the liveness check and touches nothing.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(STORAGE_PROBE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: storage failed");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
        Err(_) => {
            tracing::warn!("not ready: storage did not answer within a second");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// Serves `/metrics` in plain HTTP on its own listener, until aborted.
async fn serve_metrics(listener: TcpListener, store: Arc<dyn Store>) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(store);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

/// The metrics in the Prometheus text format; the outbox's depth is left out when
/// storage does not answer in time.
async fn scrape(State(store): State<Arc<dyn Store>>) -> Response {
    let depth = tokio::time::timeout(STORAGE_PROBE_TIMEOUT, store.outbox_depth())
        .await
        .ok()
        .and_then(|r| r.ok());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics::METRICS.render(depth),
    )
        .into_response()
}
