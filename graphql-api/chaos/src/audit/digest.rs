//! `chaos audit digest`: the chain heads of a verified log, for keeping elsewhere.

use std::path::Path;

use domain::Timestamp;
use domain::audit::digest::Digest;

use super::verify::{outcome, print_verification, verify_source};
use super::{AuditError, Source, SourceArgs, out};

/// `chaos audit digest`: verifies the log, then prints its chain heads as JSON.
pub async fn print_digest(
    db: &Path,
    args: &SourceArgs,
    taken_at: Timestamp,
) -> Result<(), AuditError> {
    let source = Source::of(db, args);
    let v = verify_source(&source, None, None, true).await?;
    if let Err(e) = outcome(&v) {
        print_verification(&v, None)?;
        return Err(e);
    }
    let digest = Digest::of(&v.report, Some(taken_at.to_string()));
    out(&serde_json::to_string_pretty(&digest)?)
}
