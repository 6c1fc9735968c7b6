//! `chaos user`, `chaos apikey`: who may use the API, and their passwords and keys.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use domain::provenance::Role;
use embedded_write::sqlite::{OpenMode, open};
use serde_json::json;

use super::{CliError, ProvenanceArgs, context, print_json, service_over};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; reads their password from standard input (asked for on a terminal).
    Add {
        /// Their name; they act as `user:<name>`.
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password (read from standard input) and end their sessions.
    Passwd {
        /// Their name.
        name: String,
    },
    /// Give a user another role (from their next request on).
    Role {
        /// Their name.
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Remove a user and end their sessions.
    Remove {
        /// Their name.
        name: String,
    },
    /// The users and their roles.
    List,
}

pub(crate) async fn users(db: &Path, p: &ProvenanceArgs, cmd: UserCommand) -> Result<(), CliError> {
    use graphql_api::identity::local::{LocalIssuer, TokenPolicy, key_file};
    use graphql_api::identity::password;
    let ctx = context(p)?;
    let pool = open(db, OpenMode::MustExist).await?;
    let service = service_over(pool.clone());
    let issuer = LocalIssuer::open(pool, &key_file(db), TokenPolicy::default()).await?;
    owner_only(db)?;
    let weak = |e| CliError::Identity(graphql_api::identity::local::AuthError::Password(e));
    match cmd {
        UserCommand::Add { name, role } => {
            let secret = read_password(&name)?;
            password::check_policy(&secret).map_err(weak)?;
            let outcome = service.add_user(&name, role, &ctx).await?;
            issuer.set_password(&name, &secret).await?;
            print_json(&json!({
                "user": name,
                "actor": graphql_api::identity::user_actor(&name),
                "role": role.as_str(),
                "recorded": outcome,
            }))
        }
        UserCommand::Passwd { name } => {
            if service.platform().await?.aggregate.user(&name).is_none() {
                return Err(CliError::NoSuchUser(name));
            }
            let secret = read_password(&name)?;
            issuer.set_password(&name, &secret).await?;
            print_json(&json!({ "user": name, "password": "changed", "sessions": "ended" }))
        }
        UserCommand::Role { name, role } => {
            print_json(&service.change_user_role(&name, role, &ctx).await?)
        }
        UserCommand::Remove { name } => {
            let outcome = service.remove_user(&name, &ctx).await?;
            issuer.forget(&name).await?;
            print_json(&outcome)
        }
        UserCommand::List => {
            let platform = service.platform().await?;
            let users: Vec<serde_json::Value> = platform
                .aggregate
                .users()
                .iter()
                .map(|(name, user)| {
                    json!({
                        "user": name.as_str(),
                        "actor": graphql_api::identity::user_actor(name.as_str()),
                        "role": user.role.as_str(),
                        "addedAt": user.added_at.to_string(),
                    })
                })
                .collect();
            print_json(&users)
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Issue a key; prints its secret, which is not shown again.
    Create {
        /// What it is for (e.g. "deploy pipeline gate").
        #[arg(long)]
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Key id (default: a new UUIDv7); its holder acts as `key:<id>`.
        #[arg(long)]
        id: Option<String>,
    },
    /// The keys in force (never their secrets).
    List,
    /// Revoke a key: it authenticates nothing from the next request on.
    Revoke {
        /// Key id.
        id: String,
    },
}

pub(crate) async fn api_keys(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: ApiKeyCommand,
) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        ApiKeyCommand::Create { name, role, id } => {
            let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let issued = command_lambdas::api_keys::issue(&service, &id, &name, role, &ctx)
                .await
                .map_err(|e| match e {
                    command_lambdas::api_keys::KeyError::Service(e) => CliError::from(e),
                    other => CliError::Task(other.to_string()),
                })?;
            print_json(&serde_json::json!({
                "id": issued.id,
                "actor": command_lambdas::api_keys::actor_id(&issued.id),
                "role": role.as_str(),
                "secret": issued.secret,
                "note": "the secret is shown this once; send it as `Authorization: Bearer <secret>`",
            }))
        }
        ApiKeyCommand::List => {
            let platform = service.platform().await?;
            let keys: Vec<serde_json::Value> = platform
                .aggregate
                .api_keys()
                .iter()
                .map(|(id, key)| {
                    serde_json::json!({
                        "id": id.as_str(),
                        "name": key.name,
                        "role": key.role.as_str(),
                        "createdAt": key.created_at.to_string(),
                    })
                })
                .collect();
            print_json(&keys)
        }
        ApiKeyCommand::Revoke { id } => print_json(&service.revoke_api_key(&id, &ctx).await?),
    }
}

fn parse_role(text: &str) -> Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
        .map_err(|_| format!("{text:?} is not ADMIN, OPERATOR or VIEWER"))
}

/// A password from standard input: asked for without echo on a terminal, else the first line.
fn read_password(name: &str) -> Result<String, CliError> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let input = |source| CliError::Input {
        path: "standard input".to_owned(),
        source,
    };
    let mut line = String::new();
    if stdin.is_terminal() {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        eprint!("password for {name}: ");
        let saved = tcgetattr(&stdin).map_err(|e| input(e.into()))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| input(e.into()))?;
        let read = stdin.lock().read_line(&mut line);
        let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.map_err(input)?;
        restored.map_err(|e| input(e.into()))?;
    } else {
        stdin.lock().read_line(&mut line).map_err(input)?;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

/// Makes the store readable by its owner only: it holds password hashes and the token
/// signing key (and the write-ahead log files, copies of its pages).
pub(crate) fn owner_only(db: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let path = PathBuf::from(path);
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CliError::Input {
                    path: path.display().to_string(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
