//! `chaos webhooks`: subscriptions, their signing secrets and their deliveries.

use std::path::Path;

use clap::Subcommand;
use command_lambdas::clock::new_id;
use domain::provenance::CommandContext;
use embedded_read::notify::{Outbox, deliveries};
use embedded_write::SqliteService;
use embedded_write::sqlite::{OpenMode, open};
use graphql_api::backend::embedded::webhook_secret::{IssueError, IssuedSecret};
use serde_json::json;

use super::{CliError, ProvenanceArgs, context, print_json, service_over};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// Subscribe a URL to events (POSTed as JSON, retried until delivered or given up).
    Add {
        /// Subscription id.
        #[arg(long)]
        id: String,
        /// Receiver URL (http or https, no credentials).
        #[arg(long)]
        url: String,
        /// Event type to deliver (repeat for several; none: every event).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Allow a receiver at a non-public address (loopback, private network, link-local).
        /// The server delivers to it only if started with `--allow-private-webhook-targets`.
        #[arg(long)]
        allow_private_target: bool,
    },
    /// Remove a subscription.
    Remove {
        /// Subscription id.
        id: String,
    },
    /// Draw a new signing secret for a subscription (printed once; the old one signs nothing
    /// from now on).
    RotateSecret {
        /// Subscription id.
        id: String,
    },
    /// The current subscriptions.
    List,
    /// Recent deliveries, newest first.
    Deliveries {
        /// Only PENDING, DELIVERED or FAILED.
        #[arg(long)]
        status: Option<String>,
        /// Most deliveries printed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub(crate) async fn webhooks(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: WebhooksCommand,
) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        WebhooksCommand::Add {
            id,
            url,
            events,
            allow_private_target,
        } => {
            let recorded = service
                .add_webhook(&id, &url, events, allow_private_target, &ctx)
                .await?;
            let issued = issue_secret(&service, db, &id, &ctx).await?;
            print_json(&json!({
                "recorded": recorded,
                "webhook_id": id,
                "secret": issued.secret,
                "fingerprint": issued.fingerprint,
            }))
        }
        WebhooksCommand::RotateSecret { id } => {
            // The command refuses a webhook that does not exist (exit 3), before anything is kept.
            let issued = issue_secret(&service, db, &id, &ctx).await?;
            print_json(&json!({
                "webhook_id": id,
                "secret": issued.secret,
                "fingerprint": issued.fingerprint,
            }))
        }
        WebhooksCommand::Remove { id } => print_json(&service.remove_webhook(&id, &ctx).await?),
        WebhooksCommand::List => {
            let platform = service.platform().await?;
            print_json(platform.aggregate.webhooks())
        }
        WebhooksCommand::Deliveries { status, limit } => {
            let path = db.to_owned();
            let status = status.map(|s| s.to_ascii_uppercase());
            let list = tokio::task::spawn_blocking(move || {
                // Enqueue what the log holds first, so the list is current.
                Outbox::open(&path)?.catch_up()?;
                deliveries(&path, status.as_deref(), limit)
            })
            .await
            .map_err(|e| CliError::Task(e.to_string()))??;
            print_json(&list)
        }
    }
}

/// Issues webhook `id` a new secret as a command of its own (each draws a new secret, so it is
/// never the retry of another), in the action of `ctx`.
async fn issue_secret(
    service: &SqliteService,
    db: &Path,
    id: &str,
    ctx: &CommandContext,
) -> Result<IssuedSecret, CliError> {
    let ctx = ctx.follow_up(new_id())?;
    graphql_api::backend::embedded::webhook_secret::issue(service, db, id, &ctx)
        .await
        .map_err(|e| match e {
            IssueError::Refused(e) => CliError::from(e),
            e => CliError::SecretNotIssued(e.to_string()),
        })
}
