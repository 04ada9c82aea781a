//! The command-line operations beside `serve`: users and workspaces, run straight on the
//! store the configuration names, with passwords read from standard input, never from a
//! flag.

use std::io::Read;

use anyhow::Context;

use crate::config::Config;
use crate::domain::user::{NewUser, Profile, SecurityLevel, User};
use crate::domain::workspace::{self, Workspace, DEFAULT_NAME};
use crate::domain::{now, password, validate, WorkspaceId};
use crate::store::{Store, StoreError};

/// `vesper user create`.
pub async fn create_user(
    config: Config,
    email: &str,
    level: &str,
    workspace: &str,
) -> anyhow::Result<()> {
    let level = SecurityLevel::from_name(level)
        .context("--level must be admin, user, external or client")?;
    let given = password_from_stdin()?;
    let store = open_store(&config).await?;
    let ws = existing(&*store, workspace).await?;
    let user = add_user(&*store, ws, email, given, level).await?;
    println!(
        "Created user {} ({}) in workspace {workspace}",
        user.id, user.email
    );
    Ok(())
}

/// `vesper workspace create`: the workspace and its first admin.
pub async fn create_workspace(config: Config, name: &str, admin_email: &str) -> anyhow::Result<()> {
    let given = password_from_stdin()?;
    let store = open_store(&config).await?;
    let (made, admin) = add_workspace(&*store, name, admin_email, given).await?;
    println!(
        "Created workspace {} with the admin {} ({})",
        made.name, admin.id, admin.email
    );
    Ok(())
}

/// Makes a workspace and its first admin, after checking everything it is given, so
/// that a refusal leaves no workspace behind.
pub async fn add_workspace(
    store: &dyn Store,
    name: &str,
    admin_email: &str,
    admin_password: String,
) -> anyhow::Result<(Workspace, User)> {
    let name = workspace::name(name).map_err(|e| anyhow::anyhow!("the name {e}"))?;
    let email =
        validate::email(admin_email).map_err(|e| anyhow::anyhow!("--admin-email {}", e.message))?;
    validate::password(&admin_password).map_err(|e| anyhow::anyhow!("password {}", e.message))?;
    let made = store
        .add_workspace(name.to_owned(), now())
        .await
        .map_err(|e| match e {
            StoreError::DuplicateName => anyhow::anyhow!("a workspace named {name} exists"),
            other => other.into(),
        })?;
    let admin = add_user(store, made.id, &email, admin_password, SecurityLevel::Admin).await?;
    Ok((made, admin))
}

/// `vesper workspace list`: name and creation date, one a line.
pub async fn list_workspaces(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    for Workspace {
        name, created_at, ..
    } in store.workspaces().await?
    {
        let created = chrono::DateTime::from_timestamp(created_at, 0)
            .map_or_else(|| created_at.to_string(), |d| d.to_rfc3339());
        println!("{name}\t{created}");
    }
    Ok(())
}

/// `vesper workspace remove`.
pub async fn remove_workspace(
    config: Config,
    name: &str,
    yes: bool,
    files_url: Option<&str>,
) -> anyhow::Result<()> {
    if !yes {
        anyhow::bail!("removing a workspace deletes all its data; add --yes to confirm");
    }
    let store = open_store(&config).await?;
    let files_url = files_url.or(config.files_url.as_deref());
    let files = crate::files::Blobs::open(files_url, &config.data_dir)?;
    let removed = take_workspace_away(&*store, &files, name).await?;
    println!("Removed workspace {name} and its {removed} files");
    Ok(())
}

/// Deletes every row of a workspace in one transaction, then its files' blobs; answers
/// how many files went. The default workspace stays: it is the one served without a base
/// domain.
pub async fn take_workspace_away(
    store: &dyn Store,
    files: &crate::files::Blobs,
    name: &str,
) -> anyhow::Result<usize> {
    if name == DEFAULT_NAME {
        anyhow::bail!("the default workspace is the one served without a base domain; it stays");
    }
    let ws = existing(store, name).await?;
    let keys = store.remove_workspace(ws).await?;
    // The rows that named them are gone: a blob left by a failure here is an orphan the
    // server's sweep removes.
    files.remove_all(&keys).await;
    Ok(keys.len())
}

/// The store the configuration names, after making the data folder private as `serve`
/// does: a database this command creates is no more readable than one `serve` creates.
async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    crate::files::make_private(&config.data_dir)
        .with_context(|| format!("making {} private", config.data_dir.display()))?;
    crate::store::open(config.database_url.as_deref(), &config.data_dir).await
}

async fn existing(store: &dyn Store, name: &str) -> anyhow::Result<WorkspaceId> {
    store
        .workspace_by_name(name.to_owned())
        .await?
        .with_context(|| format!("no workspace named {name}"))
}

async fn add_user(
    store: &dyn Store,
    ws: WorkspaceId,
    email: &str,
    given: String,
    level: SecurityLevel,
) -> anyhow::Result<User> {
    let email = validate::email(email).map_err(|e| anyhow::anyhow!("--email {}", e.message))?;
    let hash = tokio::task::spawn_blocking(move || password::hash(&given)).await?;
    let new = NewUser {
        email,
        password_hash: hash,
        profile: Profile::default(),
        security_level: level,
        can_view_profiles: level == SecurityLevel::Admin,
    };
    store.add_user(ws, new, now()).await.map_err(|e| match e {
        StoreError::DuplicateEmail => anyhow::anyhow!("a user with this email already exists"),
        other => other.into(),
    })
}

/// The password on standard input, without its line end, checked as the API checks one.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let given = input.trim_end_matches(['\r', '\n']).to_owned();
    validate::password(&given).map_err(|e| anyhow::anyhow!("password {}", e.message))?;
    Ok(given)
}
