//! Who did what, from where: the provenance every stored event carries.
//!
//! A [`CommandContext`] is filled in at the edge (API, CLI, workflow, scheduler) from the
//! authenticated identity; the store adds the event id, the time and the hash chain and writes
//! the result as [`EventMetadata`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::limits::MAX_ID_CHARS;

/// Access level of an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also runs and stops experiments.
    Operator,
    /// Also halts the platform, changes configuration, manages keys and users.
    Admin,
}

impl Role {
    /// The text form used in metadata (`ADMIN`, `OPERATOR`, `VIEWER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Operator => "OPERATOR",
            Role::Admin => "ADMIN",
        }
    }

    /// The role of this text form, if it is one (exactly `ADMIN`, `OPERATOR` or `VIEWER`).
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "VIEWER" => Some(Role::Viewer),
            "OPERATOR" => Some(Role::Operator),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which interface a command came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The web dashboard.
    Dashboard,
    /// The GraphQL API used directly (scripts, CI).
    Api,
    /// The scheduler.
    Schedule,
    /// The experiment workflow (Step Functions or the embedded interpreter).
    Workflow,
    /// The `chaos` command line.
    Cli,
}

impl Source {
    /// Whether a command from here binds its id to what it asks ([`command_fingerprint`]): so
    /// for people and scripts, who may reuse an id by mistake; not for the platform's own
    /// workflow and scheduler, whose retries re-measure what they record.
    pub fn binds_command_ids(self) -> bool {
        matches!(self, Source::Dashboard | Source::Api | Source::Cli)
    }

    /// The text form used in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dashboard => "dashboard",
            Source::Api => "api",
            Source::Schedule => "schedule",
            Source::Workflow => "workflow",
            Source::Cli => "cli",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no known role or source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of {expected})")]
pub struct UnknownName {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "VIEWER" => Ok(Role::Viewer),
            "OPERATOR" => Ok(Role::Operator),
            "ADMIN" => Ok(Role::Admin),
            _ => Err(UnknownName {
                what: "role",
                value: s.to_owned(),
                expected: "ADMIN, OPERATOR, VIEWER",
            }),
        }
    }
}

impl FromStr for Source {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dashboard" => Ok(Source::Dashboard),
            "api" => Ok(Source::Api),
            "schedule" => Ok(Source::Schedule),
            "workflow" => Ok(Source::Workflow),
            "cli" => Ok(Source::Cli),
            _ => Err(UnknownName {
                what: "source",
                value: s.to_owned(),
                expected: "dashboard, api, schedule, workflow, cli",
            }),
        }
    }
}

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Stable id: a user name, an API key id, or a service name such as `workflow`.
    pub id: String,
    /// Role at the time of the command.
    pub role: Role,
}

/// A context value that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// An id is empty, too long or has characters outside printable ASCII.
    #[error("{field} must be 1 to {MAX_ID_CHARS} printable ASCII characters without spaces")]
    BadId {
        /// Which field.
        field: &'static str,
    },
}

fn check_id(field: &'static str, value: &str) -> Result<(), ContextError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_CHARS
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ContextError::BadId { field })
    }
}

/// Provenance of one command, decided at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandContext {
    command_id: String,
    correlation_id: String,
    actor: Actor,
    source: Source,
}

impl CommandContext {
    /// Builds a context, checking the ids.
    ///
    /// `command_id` is the idempotency key: a command whose id is already stored in the target
    /// stream is answered with the stored outcome instead of running again.
    pub fn new(
        command_id: impl Into<String>,
        correlation_id: impl Into<String>,
        actor: Actor,
        source: Source,
    ) -> Result<Self, ContextError> {
        let command_id = command_id.into();
        let correlation_id = correlation_id.into();
        check_id("command_id", &command_id)?;
        check_id("correlation_id", &correlation_id)?;
        check_id("actor", &actor.id)?;
        Ok(Self {
            command_id,
            correlation_id,
            actor,
            source,
        })
    }

    /// A further command of the same action (same correlation, actor and source) under its
    /// own idempotency key `command_id`.
    pub fn follow_up(&self, command_id: impl Into<String>) -> Result<Self, ContextError> {
        let command_id = command_id.into();
        check_id("command_id", &command_id)?;
        Ok(Self {
            command_id,
            ..self.clone()
        })
    }

    /// Idempotency key.
    pub fn command_id(&self) -> &str {
        &self.command_id
    }
    /// Groups the commands of one user action or one workflow execution.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }
    /// Who issued the command.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// Through which interface.
    pub fn source(&self) -> Source {
        self.source
    }
}

/// What binds an idempotency key to the command it was first used with: the command's kind and
/// the SHA-256 of its canonical input, `<Kind>:<64 hex digits>`. `command` is the command as
/// JSON (externally tagged: `{"HaltAll":{"reason":..,"at":..}}`); the time it was issued
/// (`at`) and the facts looked up for it (`gate`) are left out, since a retry of the same
/// request sees them anew. `None` for a value that is not a command of that shape.
pub fn command_fingerprint(command: &serde_json::Value) -> Option<String> {
    use sha2::{Digest, Sha256};
    let (kind, input) = command.as_object()?.iter().next()?;
    let mut input = input.clone();
    if let Some(fields) = input.as_object_mut() {
        fields.remove("at");
        fields.remove("gate");
    }
    let canonical = crate::audit::canonical::to_canonical(&input).ok()?;
    Some(format!(
        "{kind}:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    ))
}

/// The metadata stored with every event.
///
/// All fields are strings so that any language reads them the same way; see `docs/AUDIT.md`
/// for how `prev_hash` and `hash` are computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    /// UUIDv7 of this event, assigned by the store.
    pub event_id: String,
    /// Idempotency key of the command that produced it.
    pub command_id: String,
    /// Correlation id of the command.
    pub correlation_id: String,
    /// Actor id.
    pub actor: String,
    /// Actor role (`ADMIN`, `OPERATOR`, `VIEWER`).
    pub actor_role: String,
    /// What the command id was first used for ([`command_fingerprint`]), recorded for commands
    /// people and scripts send, so that the same id sent with another command is refused
    /// rather than answered with this one's outcome. Absent for the platform's own commands
    /// (the workflow, the scheduler) and in events of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Interface (`dashboard`, `api`, `schedule`, `workflow`, `cli`).
    pub source: String,
    /// When the store recorded it (RFC 3339, UTC, milliseconds).
    pub recorded_at: String,
    /// Hash of the previous event in the stream (64 zeros for the first), lowercase hex.
    pub prev_hash: String,
    /// Hash of this event, lowercase hex.
    pub hash: String,
}

impl EventMetadata {
    /// Metadata for a new event, before hashing (`prev_hash` and `hash` are filled by the chain).
    pub fn unsealed(event_id: String, context: &CommandContext, recorded_at: Timestamp) -> Self {
        Self {
            event_id,
            command_id: context.command_id.clone(),
            correlation_id: context.correlation_id.clone(),
            actor: context.actor.id.clone(),
            actor_role: context.actor.role.as_str().to_owned(),
            command: None,
            source: context.source.as_str().to_owned(),
            recorded_at: recorded_at.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_checks_ids() {
        let actor = Actor {
            id: "alice".into(),
            role: Role::Operator,
        };
        assert!(CommandContext::new("c-1", "r-1", actor.clone(), Source::Cli).is_ok());
        assert_eq!(
            CommandContext::new("", "r-1", actor.clone(), Source::Cli),
            Err(ContextError::BadId {
                field: "command_id"
            })
        );
        assert!(CommandContext::new("c 1", "r-1", actor, Source::Cli).is_err());
    }

    #[test]
    fn names_round_trip() {
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        for source in [
            Source::Dashboard,
            Source::Api,
            Source::Schedule,
            Source::Workflow,
            Source::Cli,
        ] {
            assert_eq!(source.as_str().parse::<Source>(), Ok(source));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
