//! The `vesper` binary: reads the configuration, starts logging, runs a command.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use vesper::config::{
    BackupArgs, Cli, Command, Config, LogFormat, RestoreArgs, UserCommand, WorkspaceCommand,
};
use vesper::{backup, commands};

fn main() -> anyhow::Result<()> {
    keep_large_allocations_out_of_arenas();
    let cli = Cli::parse();
    start_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(Config::resolve(&args)?).await,
            Command::User(UserCommand::Create {
                email,
                level,
                workspace,
                storage,
            }) => {
                commands::create_user(Config::from_storage(&storage)?, &email, &level, &workspace)
                    .await
            }
            Command::Workspace(WorkspaceCommand::Create {
                name,
                admin_email,
                storage,
            }) => {
                commands::create_workspace(Config::from_storage(&storage)?, &name, &admin_email)
                    .await
            }
            Command::Workspace(WorkspaceCommand::List { storage }) => {
                commands::list_workspaces(Config::from_storage(&storage)?).await
            }
            Command::Workspace(WorkspaceCommand::Remove {
                name,
                yes,
                files_url,
                storage,
            }) => {
                let config = Config::from_storage(&storage)?;
                commands::remove_workspace(config, &name, yes, files_url.as_deref()).await
            }
            Command::Backup(BackupArgs {
                to,
                files_url,
                storage,
            }) => {
                let config = Config::from_storage(&storage)?;
                backup::backup(config, &to, files_url.as_deref()).await
            }
            Command::Restore(RestoreArgs {
                from,
                overwrite,
                storage,
            }) => backup::restore(Config::from_storage(&storage)?, &from, overwrite).await,
        }
    })
}

/// Log lines on standard error, filtered by `VESPER_LOG`: text, or one JSON object a
/// line with the event's fields at the top level and the request's span (its id) under
/// `span`.
fn start_logging(format: LogFormat) {
    // rustls warns about every client that sends an IP address as SNI.
    let filter = EnvFilter::try_from_env("VESPER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// glibc raises its mmap threshold each time a large block is freed, so after the first
/// Argon2 hash (19 MiB) every later one came from a thread's arena and stayed there: five
/// arenas held 290 MiB after seeding the benchmark. A fixed threshold turns that dynamic
/// rise off; large blocks go back to the kernel when freed (18 MiB resident after the
/// same seeding).
fn keep_large_allocations_out_of_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; it runs before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The usual soft limit (1,024) is a few hundred idle clients; the hard limit is what
    // the administrator allows.
    match vesper::http::transport::raise_open_file_limit() {
        Ok(Some(limit)) => tracing::info!(open_files = limit, "open file limit"),
        Ok(None) => tracing::info!("open file limit: unlimited"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    vesper::launch(config, listener, shutdown_signal()).await
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
