//! Issuing a webhook its signing secret: drawn at the edge, named in the log by its
//! fingerprint (`WebhookSecretIssued`), then kept in the store for the sender
//! ([`embedded_read::notify`]). In that order, so no secret ever signs a delivery that the
//! log does not name.

use std::path::Path;

use command_lambdas::service::ServiceError;
use domain::provenance::CommandContext;
use embedded_read::notify::{NotifyError, draw_secret, keep_secret};
use embedded_write::SqliteService;

/// A secret issued to a webhook: shown once, to whoever asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedSecret {
    /// The secret (`whsec_` and 64 hex digits).
    pub secret: String,
    /// Its fingerprint, as the log records it.
    pub fingerprint: String,
}

/// Why a secret was not issued, or not put in force.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The command was refused (no such webhook, ...): nothing changed.
    #[error(transparent)]
    Refused(#[from] ServiceError),
    /// No secret could be drawn: nothing changed.
    #[error("no secret could be drawn: {0}")]
    NotDrawn(NotifyError),
    /// The log records the secret, but it could not be kept: deliveries go on with the one
    /// before it. Issue another.
    #[error(
        "secret {fingerprint} is recorded but could not be kept, so the one before it still signs: {error}"
    )]
    NotKept {
        /// The recorded fingerprint.
        fingerprint: String,
        /// Why.
        error: NotifyError,
    },
}

/// Issues webhook `webhook_id` of the store at `path` a new signing secret: draws it, records
/// its fingerprint in the log (through `service`, as `context`), then keeps it for the sender.
/// A secret recorded but not kept is reported ([`IssueError::NotKept`]).
pub async fn issue(
    service: &SqliteService,
    path: &Path,
    webhook_id: &str,
    context: &CommandContext,
) -> Result<IssuedSecret, IssueError> {
    let secret = draw_secret().map_err(IssueError::NotDrawn)?;
    let fingerprint = domain::platform::webhook_secret_fingerprint(&secret);
    service
        .issue_webhook_secret(webhook_id, &fingerprint, context)
        .await?;
    let kept = {
        let (path, id, secret) = (path.to_owned(), webhook_id.to_owned(), secret.clone());
        tokio::task::spawn_blocking(move || keep_secret(&path, &id, &secret))
            .await
            .map_err(|e| NotifyError::Sender(format!("keeping the secret: {e}")))
            .and_then(|kept| kept)
    };
    match kept {
        Ok(()) => Ok(IssuedSecret {
            secret,
            fingerprint,
        }),
        Err(error) => Err(IssueError::NotKept { fingerprint, error }),
    }
}
