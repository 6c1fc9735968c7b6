//! The platform: platform-wide state that must be audited like everything else.
//!
//! Its state has seven concerns ([`Concern`]), each kept apart in a ledger of its own (see
//! [`crate::ledger`] and [`book`]): the halt switch, the configuration (server-side caps),
//! webhook subscriptions, recurring schedules, blackout windows, the API keys in force (by the
//! SHA-256 of their secrets), and the users of the embedded identity provider with their roles
//! (never their passwords). A ledger goes on for ever, book after book, so no command of one
//! concern is ever refused for lack of room, and none waits on another concern's writers: a
//! halt never contends with a webhook being added.
//!
//! [`Platform`] is the state of all of them together, as the edge reads it: its facts reach
//! experiment decisions through [`crate::experiment::PlatformGate`].

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::Timestamp;
use crate::experiment::ExperimentEvent;
use crate::ledger::BookRef;
use crate::limits::{
    HARD_TARGET_CAP, MAX_API_KEYS, MAX_BLACKOUTS, MAX_RECURRING_SCHEDULES, MAX_USERS, MAX_WEBHOOKS,
};
use crate::provenance::Role;
use crate::schedule::{Blackout, BlackoutWindow, Cron, Zone};
use crate::spec::{
    ApiKeyId, BlackoutId, ExperimentSpec, Problem, ScheduleId, SpecError, Username, WebhookId,
    parse_text,
};

pub mod book;

pub use book::PlatformBook;

/// The stream that held all of the platform's state before it was kept in ledgers: the first
/// book of every ledger continues from it where it exists, and nothing is appended to it.
pub const LEGACY_PLATFORM_ID: &str = "platform";

/// Whether `stream` (of aggregate type `Platform`) is one of the platform's: a book of one of
/// its ledgers, or the stream of an earlier release.
pub fn is_platform_stream(stream: &str) -> bool {
    stream == LEGACY_PLATFORM_ID
        || crate::ledger::parse_book_id(stream)
            .is_some_and(|(ledger, _)| Concern::of_ledger(ledger).is_some())
}

/// One concern of the platform's state, kept in a ledger of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Concern {
    /// The halt switch.
    HaltSwitch,
    /// The configuration: the platform's caps.
    Limits,
    /// Webhook subscriptions.
    Webhooks,
    /// Recurring schedules.
    Schedules,
    /// Blackout windows.
    Blackouts,
    /// API keys.
    ApiKeys,
    /// Users of the embedded identity provider.
    Users,
}

impl Concern {
    /// Every concern.
    pub const ALL: [Concern; 7] = [
        Concern::HaltSwitch,
        Concern::Limits,
        Concern::Webhooks,
        Concern::Schedules,
        Concern::Blackouts,
        Concern::ApiKeys,
        Concern::Users,
    ];

    /// The name of its ledger (its books are the streams `<name>.<n>`).
    pub fn ledger(self) -> &'static str {
        match self {
            Concern::HaltSwitch => "halt-switch",
            Concern::Limits => "limits",
            Concern::Webhooks => "webhooks",
            Concern::Schedules => "schedules",
            Concern::Blackouts => "blackouts",
            Concern::ApiKeys => "api-keys",
            Concern::Users => "users",
        }
    }

    /// The concern whose ledger is named `name`.
    pub fn of_ledger(name: &str) -> Option<Concern> {
        Concern::ALL.into_iter().find(|c| c.ledger() == name)
    }
}

/// Platform-wide caps, enforced at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Most targets any one run may hit (<= the hard cap).
    pub max_targets_per_run: u32,
    /// Longest run allowed, in seconds.
    pub max_duration_secs: u32,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            max_targets_per_run: 10,
            max_duration_secs: 3_600,
        }
    }
}

impl PlatformConfig {
    /// Validates a proposed configuration.
    pub fn parse(self) -> Result<Self, SpecError> {
        let mut problems = Vec::new();
        if self.max_targets_per_run == 0 || self.max_targets_per_run > HARD_TARGET_CAP {
            problems.push(Problem {
                field: "max_targets_per_run".into(),
                message: format!(
                    "must be between 1 and {HARD_TARGET_CAP} (got {})",
                    self.max_targets_per_run
                ),
            });
        }
        if !(10..=14_400).contains(&self.max_duration_secs) {
            problems.push(Problem {
                field: "max_duration_secs".into(),
                message: format!(
                    "must be between 10 and 14400 (got {})",
                    self.max_duration_secs
                ),
            });
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(SpecError { problems })
        }
    }
}

/// Commands to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformCommand {
    /// Turn the halt switch on: no experiment may start until it is lifted.
    HaltAll {
        /// Why.
        reason: String,
        /// Now.
        at: Timestamp,
    },
    /// Lift the halt switch.
    LiftHalt {
        /// Now.
        at: Timestamp,
    },
    /// Replace the configuration.
    UpdateConfig {
        /// New configuration (validated here).
        config: PlatformConfig,
        /// Now.
        at: Timestamp,
    },
    /// Subscribe a webhook to events.
    AddWebhook {
        /// New subscription id (chosen at the edge).
        id: WebhookId,
        /// Where deliveries are POSTed (validated here).
        url: String,
        /// Whether the deployment allows targets at non-public addresses (see
        /// [`crate::net::parse_webhook_url`]): a fact of the deployment, looked up at the edge.
        allow_private: bool,
        /// Event types delivered; empty for every event.
        events: Vec<String>,
        /// Now.
        at: Timestamp,
    },
    /// Remove a webhook subscription.
    RemoveWebhook {
        /// Its id.
        id: WebhookId,
        /// Now.
        at: Timestamp,
    },
    /// Record that webhook `id` signs its deliveries with a new secret from now on (its first,
    /// when it is added, or one issued anew). The secret is drawn and kept at the edge, never
    /// in the log: only its fingerprint.
    IssueWebhookSecret {
        /// Its id.
        id: WebhookId,
        /// The new secret's [`webhook_secret_fingerprint`] (computed at the edge).
        fingerprint: String,
        /// Now.
        at: Timestamp,
    },
    /// Run an experiment of `spec` at every time `cron` names in `time_zone`.
    AddSchedule {
        /// New schedule id (chosen at the edge).
        id: ScheduleId,
        /// Five-field cron expression (checked here).
        cron: String,
        /// IANA time zone name (checked here).
        time_zone: String,
        /// What each run does.
        spec: ExperimentSpec,
        /// Now.
        at: Timestamp,
    },
    /// Remove a recurring schedule.
    RemoveSchedule {
        /// Its id.
        id: ScheduleId,
        /// Now.
        at: Timestamp,
    },
    /// Add a blackout window: nothing starts in it, and runs in it are stopped.
    AddBlackout {
        /// New window id (chosen at the edge).
        id: BlackoutId,
        /// When it applies (checked here).
        window: BlackoutWindow,
        /// Now.
        at: Timestamp,
    },
    /// Remove a blackout window.
    RemoveBlackout {
        /// Its id.
        id: BlackoutId,
        /// Now.
        at: Timestamp,
    },
    /// Issue an API key: its holder acts as `key:<id>` with `role`. The secret itself never
    /// reaches the log; only its SHA-256, which authenticates it.
    CreateApiKey {
        /// New key id (chosen at the edge).
        id: ApiKeyId,
        /// What it is for (`ci-deploy-gate`).
        name: String,
        /// The role its holder acts with.
        role: Role,
        /// SHA-256 of the secret, 64 lowercase hex digits (computed at the edge).
        secret_sha256: String,
        /// Now.
        at: Timestamp,
    },
    /// Revoke an API key: it authenticates nothing from now on.
    RevokeApiKey {
        /// Its id.
        id: ApiKeyId,
        /// Now.
        at: Timestamp,
    },
    /// Add a user of the embedded identity provider, who acts as `user:<name>` with `role`.
    /// Their password is kept apart from the log, hashed.
    AddUser {
        /// Their name (chosen at the edge).
        username: Username,
        /// The role they act with.
        role: Role,
        /// Now.
        at: Timestamp,
    },
    /// Give a user another role, from their next request on.
    ChangeUserRole {
        /// Their name.
        username: Username,
        /// The new role.
        role: Role,
        /// Now.
        at: Timestamp,
    },
    /// Remove a user: they authenticate no more.
    RemoveUser {
        /// Their name.
        username: Username,
        /// Now.
        at: Timestamp,
    },
}

impl PlatformCommand {
    /// The concern it changes: the ledger it is decided in.
    pub fn concern(&self) -> Concern {
        match self {
            PlatformCommand::HaltAll { .. } | PlatformCommand::LiftHalt { .. } => {
                Concern::HaltSwitch
            }
            PlatformCommand::UpdateConfig { .. } => Concern::Limits,
            PlatformCommand::AddWebhook { .. }
            | PlatformCommand::RemoveWebhook { .. }
            | PlatformCommand::IssueWebhookSecret { .. } => Concern::Webhooks,
            PlatformCommand::AddSchedule { .. } | PlatformCommand::RemoveSchedule { .. } => {
                Concern::Schedules
            }
            PlatformCommand::AddBlackout { .. } | PlatformCommand::RemoveBlackout { .. } => {
                Concern::Blackouts
            }
            PlatformCommand::CreateApiKey { .. } | PlatformCommand::RevokeApiKey { .. } => {
                Concern::ApiKeys
            }
            PlatformCommand::AddUser { .. }
            | PlatformCommand::ChangeUserRole { .. }
            | PlatformCommand::RemoveUser { .. } => Concern::Users,
        }
    }
}

/// How full one bounded part of the platform's state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// What is counted (`users`).
    pub what: &'static str,
    /// How many are in force.
    pub used: usize,
    /// How many may be at once.
    pub limit: usize,
}

impl Capacity {
    /// The share of a limit past which the platform warns, in percent: an administrator
    /// learns of a limit long before it refuses anything.
    pub const WARN_PERCENT: usize = 80;

    fn new(what: &'static str, used: usize, limit: usize) -> Self {
        Self { what, used, limit }
    }

    /// Whether it is past [`Capacity::WARN_PERCENT`] of its limit.
    pub fn is_near(&self) -> bool {
        self.used * 100 >= self.limit * Self::WARN_PERCENT
    }

    /// A warning in words, when near its limit.
    pub fn warning(&self) -> Option<String> {
        self.is_near().then(|| {
            format!(
                "{} {} of at most {} are in force ({} %): remove some before the limit refuses more",
                self.used,
                self.what,
                self.limit,
                self.used * 100 / self.limit.max(1)
            )
        })
    }
}

/// The halt switch, when on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halt {
    /// Why.
    pub reason: String,
    /// Since when.
    pub at: Timestamp,
}

/// The state of one concern, as a book of its ledger opens with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Snapshot {
    /// The halt switch.
    HaltSwitch {
        /// On (with why and since when), or off.
        halted: Option<Halt>,
    },
    /// The configuration.
    Limits {
        /// The caps in force.
        config: PlatformConfig,
    },
    /// Webhook subscriptions.
    Webhooks {
        /// Every subscription.
        webhooks: BTreeMap<WebhookId, Webhook>,
    },
    /// Recurring schedules.
    Schedules {
        /// Every schedule.
        schedules: BTreeMap<ScheduleId, RecurringSchedule>,
    },
    /// Blackout windows.
    Blackouts {
        /// Every window.
        blackouts: BTreeMap<BlackoutId, BlackoutWindow>,
    },
    /// API keys.
    ApiKeys {
        /// Every key in force.
        api_keys: BTreeMap<ApiKeyId, ApiKey>,
    },
    /// Users.
    Users {
        /// Every user.
        users: BTreeMap<Username, User>,
    },
}

/// A user of the embedded identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The role they act with.
    pub role: Role,
    /// When they were added.
    pub added_at: Timestamp,
}

/// An API key in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// What it is for.
    pub name: String,
    /// The role its holder acts with.
    pub role: Role,
    /// SHA-256 of the secret (hex).
    pub secret_sha256: String,
    /// When it was issued.
    pub created_at: Timestamp,
}

/// A recurring schedule: an experiment of `spec` at every time `cron` names in `time_zone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurringSchedule {
    /// Five-field cron expression, normalized.
    pub cron: String,
    /// IANA time zone name.
    pub time_zone: String,
    /// What each run does.
    pub spec: ExperimentSpec,
}

impl RecurringSchedule {
    /// The first time it fires strictly after `after` (none for a stored schedule that no
    /// longer parses, which cannot happen for one added through [`PlatformCommand`]).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let cron = Cron::parse(&self.cron).ok()?;
        cron.next_after(Zone::parse(&self.time_zone).ok()?, after)
    }

    /// The last time it fired at or before `at`, looking back at most `within_secs`.
    pub fn last_at_or_before(&self, at: Timestamp, within_secs: i64) -> Option<Timestamp> {
        let cron = Cron::parse(&self.cron).ok()?;
        cron.last_at_or_before(
            Zone::parse(&self.time_zone).ok()?,
            at,
            chrono::Duration::seconds(within_secs),
        )
    }
}

/// How many hex digits a webhook secret's fingerprint has (64 bits).
pub const FINGERPRINT_DIGITS: usize = 16;

/// The fingerprint of a webhook signing secret, as the log records it: the first
/// [`FINGERPRINT_DIGITS`] hex digits of SHA-256 over `chaos webhook secret fingerprint`, a line
/// feed and the secret's text. It names a secret (a receiver computes it from the secret it
/// holds to see which rotation that is) without revealing it. It is not SHA-256 of the secret
/// alone, which for a secret longer than 64 bytes is the HMAC key itself.
pub fn webhook_secret_fingerprint(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"chaos webhook secret fingerprint\n")
        .chain_update(secret.as_bytes())
        .finalize();
    let mut hex = hex::encode(digest);
    hex.truncate(FINGERPRINT_DIGITS);
    hex
}

fn is_fingerprint(text: &str) -> bool {
    text.len() == FINGERPRINT_DIGITS
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered; empty for every event.
    pub events: Vec<String>,
}

impl Webhook {
    /// Whether an event of this type is delivered to this webhook.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event_type)
    }
}

/// Facts about the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformEvent {
    /// The halt switch was turned on.
    PlatformHalted {
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The halt switch was lifted.
    HaltLifted {
        /// When.
        at: Timestamp,
    },
    /// The configuration changed.
    ConfigUpdated {
        /// The new configuration.
        config: PlatformConfig,
        /// When.
        at: Timestamp,
    },
    /// A webhook was subscribed.
    WebhookAdded {
        /// Subscription id.
        id: WebhookId,
        /// Where deliveries go.
        url: String,
        /// Event types delivered; empty for every event.
        events: Vec<String>,
        /// When.
        at: Timestamp,
    },
    /// A webhook was removed.
    WebhookRemoved {
        /// Subscription id.
        id: WebhookId,
        /// When.
        at: Timestamp,
    },
    /// A webhook's deliveries are signed with a new secret from now on (its first, or one
    /// issued anew); any older one signs nothing more. The secret is never recorded: only its
    /// fingerprint, which names it without revealing it (see [`webhook_secret_fingerprint`]).
    WebhookSecretIssued {
        /// Subscription id.
        id: WebhookId,
        /// The new secret's fingerprint: 16 lowercase hex digits.
        fingerprint: String,
        /// When.
        at: Timestamp,
    },
    /// A recurring schedule was added.
    ScheduleAdded {
        /// Schedule id.
        id: ScheduleId,
        /// Cron expression, normalized.
        cron: String,
        /// IANA time zone name.
        time_zone: String,
        /// What each run does.
        spec: ExperimentSpec,
        /// When.
        at: Timestamp,
    },
    /// A recurring schedule was removed.
    ScheduleRemoved {
        /// Schedule id.
        id: ScheduleId,
        /// When.
        at: Timestamp,
    },
    /// A blackout window was added.
    BlackoutAdded {
        /// Window id.
        id: BlackoutId,
        /// When it applies.
        window: BlackoutWindow,
        /// When.
        at: Timestamp,
    },
    /// A blackout window was removed.
    BlackoutRemoved {
        /// Window id.
        id: BlackoutId,
        /// When.
        at: Timestamp,
    },
    /// An API key was issued.
    ApiKeyCreated {
        /// Key id.
        id: ApiKeyId,
        /// What it is for.
        name: String,
        /// The role its holder acts with.
        role: Role,
        /// SHA-256 of the secret (hex); the secret is never recorded.
        secret_sha256: String,
        /// When.
        at: Timestamp,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// Key id.
        id: ApiKeyId,
        /// When.
        at: Timestamp,
    },
    /// A user was added.
    UserAdded {
        /// Their name.
        username: Username,
        /// Their role.
        role: Role,
        /// When.
        at: Timestamp,
    },
    /// A user's role was changed.
    UserRoleChanged {
        /// Their name.
        username: Username,
        /// The new role.
        role: Role,
        /// When.
        at: Timestamp,
    },
    /// A user was removed.
    UserRemoved {
        /// Their name.
        username: Username,
        /// When.
        at: Timestamp,
    },
    /// A book of a ledger was opened: the first event of every book after the first (and of a
    /// first book that continues the stream of an earlier release).
    BookOpened {
        /// The last event of the stream this book continues.
        previous: BookRef,
        /// The state of the ledger's concern at that point.
        state: Snapshot,
        /// When.
        at: Timestamp,
    },
    /// A full book was closed: the last event of the book, naming the one that continues it.
    BookClosed {
        /// The stream of the next book.
        next: String,
        /// When.
        at: Timestamp,
    },
}

impl PlatformEvent {
    /// Every event type name.
    pub const TYPES: [&'static str; 17] = [
        "PlatformHalted",
        "HaltLifted",
        "ConfigUpdated",
        "WebhookAdded",
        "WebhookRemoved",
        "WebhookSecretIssued",
        "ScheduleAdded",
        "ScheduleRemoved",
        "BlackoutAdded",
        "BlackoutRemoved",
        "ApiKeyCreated",
        "ApiKeyRevoked",
        "UserAdded",
        "UserRoleChanged",
        "UserRemoved",
        "BookOpened",
        "BookClosed",
    ];

    /// The concern it changes (none for the events that open and close books).
    pub fn concern(&self) -> Option<Concern> {
        Some(match self {
            PlatformEvent::PlatformHalted { .. } | PlatformEvent::HaltLifted { .. } => {
                Concern::HaltSwitch
            }
            PlatformEvent::ConfigUpdated { .. } => Concern::Limits,
            PlatformEvent::WebhookAdded { .. }
            | PlatformEvent::WebhookRemoved { .. }
            | PlatformEvent::WebhookSecretIssued { .. } => Concern::Webhooks,
            PlatformEvent::ScheduleAdded { .. } | PlatformEvent::ScheduleRemoved { .. } => {
                Concern::Schedules
            }
            PlatformEvent::BlackoutAdded { .. } | PlatformEvent::BlackoutRemoved { .. } => {
                Concern::Blackouts
            }
            PlatformEvent::ApiKeyCreated { .. } | PlatformEvent::ApiKeyRevoked { .. } => {
                Concern::ApiKeys
            }
            PlatformEvent::UserAdded { .. }
            | PlatformEvent::UserRoleChanged { .. }
            | PlatformEvent::UserRemoved { .. } => Concern::Users,
            PlatformEvent::BookOpened { .. } | PlatformEvent::BookClosed { .. } => return None,
        })
    }

    /// When the fact happened (as decided at the edge).
    pub fn at(&self) -> Timestamp {
        match self {
            PlatformEvent::PlatformHalted { at, .. }
            | PlatformEvent::HaltLifted { at }
            | PlatformEvent::ConfigUpdated { at, .. }
            | PlatformEvent::WebhookAdded { at, .. }
            | PlatformEvent::WebhookRemoved { at, .. }
            | PlatformEvent::WebhookSecretIssued { at, .. }
            | PlatformEvent::ScheduleAdded { at, .. }
            | PlatformEvent::ScheduleRemoved { at, .. }
            | PlatformEvent::BlackoutAdded { at, .. }
            | PlatformEvent::BlackoutRemoved { at, .. }
            | PlatformEvent::ApiKeyCreated { at, .. }
            | PlatformEvent::ApiKeyRevoked { at, .. }
            | PlatformEvent::UserAdded { at, .. }
            | PlatformEvent::UserRoleChanged { at, .. }
            | PlatformEvent::UserRemoved { at, .. }
            | PlatformEvent::BookOpened { at, .. }
            | PlatformEvent::BookClosed { at, .. } => *at,
        }
    }
}

impl DomainEvent for PlatformEvent {
    fn event_type(&self) -> String {
        match self {
            PlatformEvent::PlatformHalted { .. } => "PlatformHalted",
            PlatformEvent::HaltLifted { .. } => "HaltLifted",
            PlatformEvent::ConfigUpdated { .. } => "ConfigUpdated",
            PlatformEvent::WebhookAdded { .. } => "WebhookAdded",
            PlatformEvent::WebhookRemoved { .. } => "WebhookRemoved",
            PlatformEvent::WebhookSecretIssued { .. } => "WebhookSecretIssued",
            PlatformEvent::ScheduleAdded { .. } => "ScheduleAdded",
            PlatformEvent::ScheduleRemoved { .. } => "ScheduleRemoved",
            PlatformEvent::BlackoutAdded { .. } => "BlackoutAdded",
            PlatformEvent::BlackoutRemoved { .. } => "BlackoutRemoved",
            PlatformEvent::ApiKeyCreated { .. } => "ApiKeyCreated",
            PlatformEvent::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            PlatformEvent::UserAdded { .. } => "UserAdded",
            PlatformEvent::UserRoleChanged { .. } => "UserRoleChanged",
            PlatformEvent::UserRemoved { .. } => "UserRemoved",
            PlatformEvent::BookOpened { .. } => "BookOpened",
            PlatformEvent::BookClosed { .. } => "BookClosed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// A refused platform command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Bad input.
    #[error(transparent)]
    InvalidInput(#[from] SpecError),
    /// A command reached a closed book (the store moves on to the next book first, so this
    /// means a bug or a store changed under it).
    #[error("this book of the ledger is closed: it continues in {next}")]
    BookClosed {
        /// The book that continues it.
        next: String,
    },
    /// A webhook with this id exists.
    #[error("webhook {0} already exists")]
    WebhookExists(WebhookId),
    /// No webhook with this id.
    #[error("no webhook {0}")]
    UnknownWebhook(WebhookId),
    /// The subscription limit is reached.
    #[error("at most {max} webhooks")]
    TooManyWebhooks {
        /// The limit.
        max: usize,
    },
    /// A schedule or blackout window with this id exists.
    #[error("{what} {id} already exists")]
    Exists {
        /// Schedule or blackout window.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// No schedule or blackout window with this id.
    #[error("no {what} {id}")]
    Unknown {
        /// Schedule or blackout window.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The limit of schedules or blackout windows is reached.
    #[error("at most {max} {what}s")]
    TooMany {
        /// Schedule or blackout window.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

/// The platform's state: every concern's, folded from their events (in any order: each
/// concern's events change only its part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    halted: Option<Halt>,
    config: PlatformConfig,
    webhooks: BTreeMap<WebhookId, Webhook>,
    schedules: BTreeMap<ScheduleId, RecurringSchedule>,
    blackouts: BTreeMap<BlackoutId, BlackoutWindow>,
    api_keys: BTreeMap<ApiKeyId, ApiKey>,
    users: BTreeMap<Username, User>,
}

impl Platform {
    /// The halt reason and time, when halted.
    pub fn halted(&self) -> Option<(&str, Timestamp)> {
        self.halted.as_ref().map(|h| (h.reason.as_str(), h.at))
    }

    /// Current configuration.
    pub fn config(&self) -> PlatformConfig {
        self.config
    }

    /// Current webhook subscriptions.
    pub fn webhooks(&self) -> &BTreeMap<WebhookId, Webhook> {
        &self.webhooks
    }

    /// Current recurring schedules.
    pub fn schedules(&self) -> &BTreeMap<ScheduleId, RecurringSchedule> {
        &self.schedules
    }

    /// Current blackout windows.
    pub fn blackouts(&self) -> &BTreeMap<BlackoutId, BlackoutWindow> {
        &self.blackouts
    }

    /// API keys in force.
    pub fn api_keys(&self) -> &BTreeMap<ApiKeyId, ApiKey> {
        &self.api_keys
    }

    /// The key in force whose secret has this SHA-256.
    pub fn api_key_by_hash(&self, secret_sha256: &str) -> Option<(&ApiKeyId, &ApiKey)> {
        self.api_keys
            .iter()
            .find(|(_, key)| key.secret_sha256 == secret_sha256)
    }

    /// Users of the embedded identity provider.
    pub fn users(&self) -> &BTreeMap<Username, User> {
        &self.users
    }

    /// The user of this name, if there is one.
    pub fn user(&self, username: &str) -> Option<&User> {
        Username::parse(username)
            .ok()
            .and_then(|name| self.users.get(&name))
    }

    /// The blackout window `at` falls in, if any, in words (`id: 22:00-06:00 Europe/Berlin,
    /// every day`).
    pub fn blackout_at(&self, at: Timestamp) -> Option<String> {
        self.blackouts.iter().find_map(|(id, window)| {
            let blackout = Blackout::parse(window.clone()).ok()?;
            blackout
                .contains(at)
                .then(|| format!("blackout {id} ({})", blackout.describe()))
        })
    }

    /// How full each bounded part of the state is. A ledger goes on for ever; what is bounded
    /// is how many of each thing are in force at once.
    pub fn capacity(&self) -> Vec<Capacity> {
        vec![
            Capacity::new("webhooks", self.webhooks.len(), MAX_WEBHOOKS),
            Capacity::new("schedules", self.schedules.len(), MAX_RECURRING_SCHEDULES),
            Capacity::new("blackout windows", self.blackouts.len(), MAX_BLACKOUTS),
            Capacity::new("api keys", self.api_keys.len(), MAX_API_KEYS),
            Capacity::new("users", self.users.len(), MAX_USERS),
        ]
    }

    /// The state of one concern.
    pub fn snapshot(&self, concern: Concern) -> Snapshot {
        match concern {
            Concern::HaltSwitch => Snapshot::HaltSwitch {
                halted: self.halted.clone(),
            },
            Concern::Limits => Snapshot::Limits {
                config: self.config,
            },
            Concern::Webhooks => Snapshot::Webhooks {
                webhooks: self.webhooks.clone(),
            },
            Concern::Schedules => Snapshot::Schedules {
                schedules: self.schedules.clone(),
            },
            Concern::Blackouts => Snapshot::Blackouts {
                blackouts: self.blackouts.clone(),
            },
            Concern::ApiKeys => Snapshot::ApiKeys {
                api_keys: self.api_keys.clone(),
            },
            Concern::Users => Snapshot::Users {
                users: self.users.clone(),
            },
        }
    }

    /// Takes one concern's state from `other`, leaving the others as they are.
    pub fn adopt(&mut self, concern: Concern, other: &Platform) {
        self.restore(other.snapshot(concern));
    }

    /// Sets one concern's state to `snapshot`.
    fn restore(&mut self, snapshot: Snapshot) {
        match snapshot {
            Snapshot::HaltSwitch { halted } => self.halted = halted,
            Snapshot::Limits { config } => self.config = config,
            Snapshot::Webhooks { webhooks } => self.webhooks = webhooks,
            Snapshot::Schedules { schedules } => self.schedules = schedules,
            Snapshot::Blackouts { blackouts } => self.blackouts = blackouts,
            Snapshot::ApiKeys { api_keys } => self.api_keys = api_keys,
            Snapshot::Users { users } => self.users = users,
        }
    }

    /// The pure decision. Halting twice or lifting an absent halt changes nothing: a kill
    /// switch pressed twice must not fail. Each command appends at most one event.
    pub fn decide(&self, command: PlatformCommand) -> Result<Vec<PlatformEvent>, PlatformError> {
        match command {
            PlatformCommand::HaltAll { reason, at } => self.halt_all(reason, at),
            PlatformCommand::LiftHalt { at } => self.lift_halt(at),
            PlatformCommand::UpdateConfig { config, at } => self.update_config(config, at),
            PlatformCommand::AddWebhook {
                id,
                url,
                allow_private,
                events,
                at,
            } => self.add_webhook(id, url, allow_private, events, at),
            PlatformCommand::RemoveWebhook { id, at } => self.remove_webhook(id, at),
            PlatformCommand::IssueWebhookSecret {
                id,
                fingerprint,
                at,
            } => self.issue_webhook_secret(id, fingerprint, at),
            PlatformCommand::AddSchedule {
                id,
                cron,
                time_zone,
                spec,
                at,
            } => self.add_schedule(id, cron, time_zone, spec, at),
            PlatformCommand::RemoveSchedule { id, at } => self.remove_schedule(id, at),
            PlatformCommand::AddBlackout { id, window, at } => self.add_blackout(id, window, at),
            PlatformCommand::RemoveBlackout { id, at } => self.remove_blackout(id, at),
            PlatformCommand::CreateApiKey {
                id,
                name,
                role,
                secret_sha256,
                at,
            } => self.create_api_key(id, name, role, secret_sha256, at),
            PlatformCommand::RevokeApiKey { id, at } => self.revoke_api_key(id, at),
            PlatformCommand::AddUser { username, role, at } => self.add_user(username, role, at),
            PlatformCommand::ChangeUserRole { username, role, at } => {
                self.change_user_role(username, role, at)
            }
            PlatformCommand::RemoveUser { username, at } => self.remove_user(username, at),
        }
    }

    /// Decides [`PlatformCommand::HaltAll`].
    fn halt_all(&self, reason: String, at: Timestamp) -> Result<Vec<PlatformEvent>, PlatformError> {
        let reason = parse_text("reason", &reason)?;
        Ok(if self.halted.is_some() {
            Vec::new()
        } else {
            vec![PlatformEvent::PlatformHalted { reason, at }]
        })
    }

    /// Decides [`PlatformCommand::LiftHalt`].
    fn lift_halt(&self, at: Timestamp) -> Result<Vec<PlatformEvent>, PlatformError> {
        Ok(if self.halted.is_some() {
            vec![PlatformEvent::HaltLifted { at }]
        } else {
            Vec::new()
        })
    }

    /// Decides [`PlatformCommand::UpdateConfig`].
    fn update_config(
        &self,
        config: PlatformConfig,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        let config = config.parse()?;
        Ok(if config == self.config {
            Vec::new()
        } else {
            vec![PlatformEvent::ConfigUpdated { config, at }]
        })
    }

    /// Decides [`PlatformCommand::AddWebhook`].
    fn add_webhook(
        &self,
        id: WebhookId,
        url: String,
        allow_private: bool,
        events: Vec<String>,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        let url = crate::net::parse_webhook_url(&url, allow_private)?;
        let unknown: Vec<&String> = events
            .iter()
            .filter(|e| {
                !ExperimentEvent::TYPES.contains(&e.as_str())
                    && !PlatformEvent::TYPES.contains(&e.as_str())
            })
            .collect();
        if let Some(first) = unknown.first() {
            return Err(SpecError {
                problems: vec![Problem {
                    field: "events".into(),
                    message: format!("unknown event type {first:?}"),
                }],
            }
            .into());
        }
        if self.webhooks.contains_key(&id) {
            return Err(PlatformError::WebhookExists(id));
        }
        if self.webhooks.len() >= MAX_WEBHOOKS {
            return Err(PlatformError::TooManyWebhooks { max: MAX_WEBHOOKS });
        }
        let mut events = events;
        events.sort();
        events.dedup();
        Ok(vec![PlatformEvent::WebhookAdded {
            id,
            url,
            events,
            at,
        }])
    }

    /// Decides [`PlatformCommand::RemoveWebhook`].
    fn remove_webhook(
        &self,
        id: WebhookId,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !self.webhooks.contains_key(&id) {
            return Err(PlatformError::UnknownWebhook(id));
        }
        Ok(vec![PlatformEvent::WebhookRemoved { id, at }])
    }

    /// Decides [`PlatformCommand::IssueWebhookSecret`].
    fn issue_webhook_secret(
        &self,
        id: WebhookId,
        fingerprint: String,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !is_fingerprint(&fingerprint) {
            return Err(SpecError {
                problems: vec![Problem {
                    field: "fingerprint".into(),
                    message: format!("must be {FINGERPRINT_DIGITS} lowercase hex digits"),
                }],
            }
            .into());
        }
        if !self.webhooks.contains_key(&id) {
            return Err(PlatformError::UnknownWebhook(id));
        }
        Ok(vec![PlatformEvent::WebhookSecretIssued {
            id,
            fingerprint,
            at,
        }])
    }

    /// Decides [`PlatformCommand::AddSchedule`].
    fn add_schedule(
        &self,
        id: ScheduleId,
        cron: String,
        time_zone: String,
        spec: ExperimentSpec,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        let cron = Cron::parse(&cron)?;
        let zone = Zone::parse(&time_zone)?;
        if self.schedules.contains_key(&id) {
            return Err(PlatformError::Exists {
                what: "schedule",
                id: id.to_string(),
            });
        }
        if self.schedules.len() >= MAX_RECURRING_SCHEDULES {
            return Err(PlatformError::TooMany {
                what: "schedule",
                max: MAX_RECURRING_SCHEDULES,
            });
        }
        Ok(vec![PlatformEvent::ScheduleAdded {
            id,
            cron: cron.as_str().to_owned(),
            time_zone: zone.name().to_owned(),
            spec,
            at,
        }])
    }

    /// Decides [`PlatformCommand::RemoveSchedule`].
    fn remove_schedule(
        &self,
        id: ScheduleId,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !self.schedules.contains_key(&id) {
            return Err(PlatformError::Unknown {
                what: "schedule",
                id: id.to_string(),
            });
        }
        Ok(vec![PlatformEvent::ScheduleRemoved { id, at }])
    }

    /// Decides [`PlatformCommand::AddBlackout`].
    fn add_blackout(
        &self,
        id: BlackoutId,
        window: BlackoutWindow,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        let window = Blackout::parse(window)?.window().clone();
        if self.blackouts.contains_key(&id) {
            return Err(PlatformError::Exists {
                what: "blackout window",
                id: id.to_string(),
            });
        }
        if self.blackouts.len() >= MAX_BLACKOUTS {
            return Err(PlatformError::TooMany {
                what: "blackout window",
                max: MAX_BLACKOUTS,
            });
        }
        Ok(vec![PlatformEvent::BlackoutAdded { id, window, at }])
    }

    /// Decides [`PlatformCommand::RemoveBlackout`].
    fn remove_blackout(
        &self,
        id: BlackoutId,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !self.blackouts.contains_key(&id) {
            return Err(PlatformError::Unknown {
                what: "blackout window",
                id: id.to_string(),
            });
        }
        Ok(vec![PlatformEvent::BlackoutRemoved { id, at }])
    }

    /// Decides [`PlatformCommand::CreateApiKey`].
    fn create_api_key(
        &self,
        id: ApiKeyId,
        name: String,
        role: Role,
        secret_sha256: String,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        let name = parse_text("name", &name)?;
        let is_digest = secret_sha256.len() == 64
            && secret_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_digest {
            return Err(SpecError {
                problems: vec![Problem {
                    field: "secret_sha256".into(),
                    message: "must be 64 lowercase hex digits".into(),
                }],
            }
            .into());
        }
        if self.api_keys.contains_key(&id) {
            return Err(PlatformError::Exists {
                what: "api key",
                id: id.to_string(),
            });
        }
        if self.api_key_by_hash(&secret_sha256).is_some() {
            return Err(PlatformError::Exists {
                what: "api key with this secret",
                id: id.to_string(),
            });
        }
        if self.api_keys.len() >= MAX_API_KEYS {
            return Err(PlatformError::TooMany {
                what: "api key",
                max: MAX_API_KEYS,
            });
        }
        Ok(vec![PlatformEvent::ApiKeyCreated {
            id,
            name,
            role,
            secret_sha256,
            at,
        }])
    }

    /// Decides [`PlatformCommand::RevokeApiKey`].
    fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !self.api_keys.contains_key(&id) {
            return Err(PlatformError::Unknown {
                what: "api key",
                id: id.to_string(),
            });
        }
        Ok(vec![PlatformEvent::ApiKeyRevoked { id, at }])
    }

    /// Decides [`PlatformCommand::AddUser`].
    fn add_user(
        &self,
        username: Username,
        role: Role,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if self.users.contains_key(&username) {
            return Err(PlatformError::Exists {
                what: "user",
                id: username.to_string(),
            });
        }
        if self.users.len() >= MAX_USERS {
            return Err(PlatformError::TooMany {
                what: "user",
                max: MAX_USERS,
            });
        }
        Ok(vec![PlatformEvent::UserAdded { username, role, at }])
    }

    /// Decides [`PlatformCommand::ChangeUserRole`].
    fn change_user_role(
        &self,
        username: Username,
        role: Role,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        Ok(match self.users.get(&username) {
            None => {
                return Err(PlatformError::Unknown {
                    what: "user",
                    id: username.to_string(),
                });
            }
            Some(user) if user.role == role => vec![],
            Some(_) => vec![PlatformEvent::UserRoleChanged { username, role, at }],
        })
    }

    /// Decides [`PlatformCommand::RemoveUser`].
    fn remove_user(
        &self,
        username: Username,
        at: Timestamp,
    ) -> Result<Vec<PlatformEvent>, PlatformError> {
        if !self.users.contains_key(&username) {
            return Err(PlatformError::Unknown {
                what: "user",
                id: username.to_string(),
            });
        }
        Ok(vec![PlatformEvent::UserRemoved { username, at }])
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: PlatformEvent) {
        match event {
            PlatformEvent::PlatformHalted { reason, at } => self.halted = Some(Halt { reason, at }),
            PlatformEvent::HaltLifted { .. } => self.halted = None,
            PlatformEvent::ConfigUpdated { config, .. } => self.config = config,
            PlatformEvent::WebhookAdded {
                id, url, events, ..
            } => {
                self.webhooks.insert(id, Webhook { url, events });
            }
            PlatformEvent::WebhookRemoved { id, .. } => {
                self.webhooks.remove(&id);
            }
            // The secret is kept at the edge; the subscription is unchanged.
            PlatformEvent::WebhookSecretIssued { .. } => {}
            PlatformEvent::ScheduleAdded {
                id,
                cron,
                time_zone,
                spec,
                ..
            } => {
                self.schedules.insert(
                    id,
                    RecurringSchedule {
                        cron,
                        time_zone,
                        spec,
                    },
                );
            }
            PlatformEvent::ScheduleRemoved { id, .. } => {
                self.schedules.remove(&id);
            }
            PlatformEvent::BlackoutAdded { id, window, .. } => {
                self.blackouts.insert(id, window);
            }
            PlatformEvent::BlackoutRemoved { id, .. } => {
                self.blackouts.remove(&id);
            }
            PlatformEvent::ApiKeyCreated {
                id,
                name,
                role,
                secret_sha256,
                at,
            } => {
                self.api_keys.insert(
                    id,
                    ApiKey {
                        name,
                        role,
                        secret_sha256,
                        created_at: at,
                    },
                );
            }
            PlatformEvent::ApiKeyRevoked { id, .. } => {
                self.api_keys.remove(&id);
            }
            PlatformEvent::UserAdded { username, role, at } => {
                self.users.insert(username, User { role, added_at: at });
            }
            PlatformEvent::UserRoleChanged { username, role, .. } => {
                if let Some(user) = self.users.get_mut(&username) {
                    user.role = role;
                }
            }
            PlatformEvent::UserRemoved { username, .. } => {
                self.users.remove(&username);
            }
            PlatformEvent::BookOpened { state, .. } => self.restore(state),
            PlatformEvent::BookClosed { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn at() -> Timestamp {
        Timestamp::from_unix_millis(1_795_000_000_000)
    }

    fn create_key(id: &str, digest: &str) -> PlatformCommand {
        PlatformCommand::CreateApiKey {
            id: ApiKeyId::parse(id).expect("id"),
            name: "ci".into(),
            role: Role::Operator,
            secret_sha256: digest.into(),
            at: at(),
        }
    }

    #[test]
    fn api_keys_are_issued_by_digest_found_by_it_and_revoked() {
        let digest = "a".repeat(64);
        let mut platform = Platform::default();
        let events = platform.decide(create_key("ci", &digest)).expect("issued");
        for event in events {
            platform.apply(event);
        }
        let (id, key) = platform.api_key_by_hash(&digest).expect("found");
        assert_eq!((id.as_str(), key.role), ("ci", Role::Operator));
        assert!(platform.api_key_by_hash(&"b".repeat(64)).is_none());
        // Not a digest, a second key of the same id or secret: refused.
        for (id, bad) in [
            ("x", "A".repeat(64)),
            ("x", "a".repeat(63)),
            ("x", "g".repeat(64)),
        ] {
            assert!(matches!(
                platform.decide(create_key(id, &bad)),
                Err(PlatformError::InvalidInput(_))
            ));
        }
        assert!(matches!(
            platform.decide(create_key("ci", &"c".repeat(64))),
            Err(PlatformError::Exists { .. })
        ));
        assert!(matches!(
            platform.decide(create_key("other", &digest)),
            Err(PlatformError::Exists { .. })
        ));
        let revoke = |id: &str| PlatformCommand::RevokeApiKey {
            id: ApiKeyId::parse(id).expect("id"),
            at: at(),
        };
        for event in platform.decide(revoke("ci")).expect("revoked") {
            platform.apply(event);
        }
        assert!(platform.api_key_by_hash(&digest).is_none());
        assert!(matches!(
            platform.decide(revoke("ci")),
            Err(PlatformError::Unknown { .. })
        ));
    }

    #[test]
    fn users_are_added_once_change_role_and_are_removed() {
        let name = |n: &str| Username::parse(n).expect("name");
        let mut platform = Platform::default();
        let run = |platform: &mut Platform, command| -> Result<usize, PlatformError> {
            let events = platform.decide(command)?;
            let n = events.len();
            for event in events {
                platform.apply(event);
            }
            Ok(n)
        };
        let add = |n: &str, role| PlatformCommand::AddUser {
            username: name(n),
            role,
            at: at(),
        };
        assert_eq!(run(&mut platform, add("alice", Role::Viewer)), Ok(1));
        assert_eq!(platform.user("alice").map(|u| u.role), Some(Role::Viewer));
        assert!(platform.user("bob").is_none());
        assert!(platform.user("not a name").is_none());
        assert!(matches!(
            run(&mut platform, add("alice", Role::Admin)),
            Err(PlatformError::Exists { .. })
        ));
        let change = |n: &str, role| PlatformCommand::ChangeUserRole {
            username: name(n),
            role,
            at: at(),
        };
        assert_eq!(run(&mut platform, change("alice", Role::Admin)), Ok(1));
        assert_eq!(platform.user("alice").map(|u| u.role), Some(Role::Admin));
        // The same role again records nothing.
        assert_eq!(run(&mut platform, change("alice", Role::Admin)), Ok(0));
        assert!(matches!(
            run(&mut platform, change("bob", Role::Admin)),
            Err(PlatformError::Unknown { .. })
        ));
        let remove = |n: &str| PlatformCommand::RemoveUser {
            username: name(n),
            at: at(),
        };
        assert_eq!(run(&mut platform, remove("alice")), Ok(1));
        assert!(platform.user("alice").is_none());
        assert!(matches!(
            run(&mut platform, remove("alice")),
            Err(PlatformError::Unknown { .. })
        ));
        assert!(Username::parse("no spaces").is_err());
        assert!(Username::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn halt_is_recorded_once_and_lift_only_when_halted() {
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::HaltAll {
                reason: "incident 42".into(),
                at: at(),
            })
            .then_expect_events(vec![PlatformEvent::PlatformHalted {
                reason: "incident 42".into(),
                at: at(),
            }]);
        TestFramework::<PlatformBook>::with(())
            .given(vec![PlatformEvent::PlatformHalted {
                reason: "x".into(),
                at: at(),
            }])
            .when(PlatformCommand::HaltAll {
                reason: "again".into(),
                at: at(),
            })
            .then_expect_events(vec![]);
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::LiftHalt { at: at() })
            .then_expect_events(vec![]);
        TestFramework::<PlatformBook>::with(())
            .given(vec![PlatformEvent::PlatformHalted {
                reason: "x".into(),
                at: at(),
            }])
            .when(PlatformCommand::LiftHalt { at: at() })
            .then_expect_events(vec![PlatformEvent::HaltLifted { at: at() }]);
    }

    #[test]
    fn config_is_validated() {
        let bad = PlatformConfig {
            max_targets_per_run: 0,
            max_duration_secs: 5,
        };
        let result = TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::UpdateConfig {
                config: bad,
                at: at(),
            })
            .inspect_result();
        let Err(PlatformError::InvalidInput(e)) = result else {
            panic!("expected invalid input, got {result:?}");
        };
        assert_eq!(e.problems.len(), 2);
        let good = PlatformConfig {
            max_targets_per_run: 5,
            max_duration_secs: 900,
        };
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::UpdateConfig {
                config: good,
                at: at(),
            })
            .then_expect_events(vec![PlatformEvent::ConfigUpdated {
                config: good,
                at: at(),
            }]);
    }

    #[test]
    fn webhooks_are_validated_added_and_removed() {
        let id = WebhookId::parse("pager").expect("id");
        let add = |url: &str, events: Vec<&str>| PlatformCommand::AddWebhook {
            id: id.clone(),
            url: url.into(),
            allow_private: false,
            events: events.into_iter().map(str::to_owned).collect(),
            at: at(),
        };
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(add(
                "https://hooks.example.com/chaos",
                vec![
                    "ExperimentFailed",
                    "ExperimentCompleted",
                    "ExperimentFailed",
                ],
            ))
            .then_expect_events(vec![PlatformEvent::WebhookAdded {
                id: id.clone(),
                url: "https://hooks.example.com/chaos".into(),
                events: vec!["ExperimentCompleted".into(), "ExperimentFailed".into()],
                at: at(),
            }]);
        let added = PlatformEvent::WebhookAdded {
            id: id.clone(),
            url: "https://hooks.example.com/chaos".into(),
            events: vec![],
            at: at(),
        };
        TestFramework::<PlatformBook>::with(())
            .given(vec![added.clone()])
            .when(add("https://other.example.com/", vec![]))
            .then_expect_error(PlatformError::WebhookExists(id.clone()));
        let result = TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(add("https://x.example.com/", vec!["ExperimentExploded"]))
            .inspect_result();
        assert!(
            matches!(&result, Err(PlatformError::InvalidInput(e)) if e.problems[0].message.contains("ExperimentExploded")),
            "{result:?}"
        );
        let result = TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(add("https://admin:pw@x.example.com/", vec![]))
            .inspect_result();
        assert!(
            matches!(result, Err(PlatformError::InvalidInput(_))),
            "{result:?}"
        );
        // The metadata service is no webhook, unless the deployment allows private targets.
        let metadata = "http://169.254.169.254/latest/meta-data/";
        let result = TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(add(metadata, vec![]))
            .inspect_result();
        assert!(
            matches!(&result, Err(PlatformError::InvalidInput(e)) if e.problems[0].message.contains("not a public address")),
            "{result:?}"
        );
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::AddWebhook {
                id: id.clone(),
                url: metadata.into(),
                allow_private: true,
                events: vec![],
                at: at(),
            })
            .then_expect_events(vec![PlatformEvent::WebhookAdded {
                id: id.clone(),
                url: metadata.into(),
                events: vec![],
                at: at(),
            }]);
        TestFramework::<PlatformBook>::with(())
            .given(vec![added.clone()])
            .when(PlatformCommand::RemoveWebhook {
                id: id.clone(),
                at: at(),
            })
            .then_expect_events(vec![PlatformEvent::WebhookRemoved {
                id: id.clone(),
                at: at(),
            }]);
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(PlatformCommand::RemoveWebhook {
                id: id.clone(),
                at: at(),
            })
            .then_expect_error(PlatformError::UnknownWebhook(id.clone()));
        let full: Vec<PlatformEvent> = (0..MAX_WEBHOOKS)
            .map(|i| PlatformEvent::WebhookAdded {
                id: WebhookId::parse(format!("w{i}")).expect("id"),
                url: "https://x.example.com/".into(),
                events: vec![],
                at: at(),
            })
            .collect();
        TestFramework::<PlatformBook>::with(())
            .given(full)
            .when(add("https://x.example.com/", vec![]))
            .then_expect_error(PlatformError::TooManyWebhooks { max: MAX_WEBHOOKS });
    }

    #[test]
    fn an_issued_webhook_secret_is_recorded_by_its_fingerprint_only() {
        let id = WebhookId::parse("pager").expect("id");
        let added = PlatformEvent::WebhookAdded {
            id: id.clone(),
            url: "https://hooks.example.com/".into(),
            events: vec![],
            at: at(),
        };
        let secret = "whsec_0123456789abcdef";
        let fingerprint = webhook_secret_fingerprint(secret);
        // As docs/WEBHOOKS.md computes it with `printf ... | sha256sum | cut -c1-16`.
        assert_eq!(fingerprint, "283a0c7dcf3d8f4b");
        assert!(is_fingerprint(&fingerprint));
        // Neither the secret nor its plain SHA-256 (the HMAC key of a long secret) is in it.
        let plain = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret));
        assert!(!plain.starts_with(&fingerprint), "{fingerprint}");
        let rotate = |id: &WebhookId, fingerprint: &str| PlatformCommand::IssueWebhookSecret {
            id: id.clone(),
            fingerprint: fingerprint.to_owned(),
            at: at(),
        };
        TestFramework::<PlatformBook>::with(())
            .given(vec![added.clone()])
            .when(rotate(&id, &fingerprint))
            .then_expect_events(vec![PlatformEvent::WebhookSecretIssued {
                id: id.clone(),
                fingerprint: fingerprint.clone(),
                at: at(),
            }]);
        TestFramework::<PlatformBook>::with(())
            .given_no_previous_events()
            .when(rotate(&id, &fingerprint))
            .then_expect_error(PlatformError::UnknownWebhook(id.clone()));
        for bad in [secret, "", "0123456789ABCDEF", "0123456789abcde"] {
            let result = TestFramework::<PlatformBook>::with(())
                .given(vec![added.clone()])
                .when(rotate(&id, bad))
                .inspect_result();
            assert!(
                matches!(&result, Err(PlatformError::InvalidInput(e)) if e.problems[0].field == "fingerprint"),
                "{bad:?}: {result:?}"
            );
        }
        // The subscription itself is unchanged by a rotation.
        let mut platform = Platform::default();
        platform.apply(added);
        let before = platform.clone();
        platform.apply(PlatformEvent::WebhookSecretIssued {
            id,
            fingerprint,
            at: at(),
        });
        assert_eq!(platform, before);
    }

    #[test]
    fn every_command_and_event_belongs_to_one_concern_and_its_ledger_names_it() {
        for concern in Concern::ALL {
            assert_eq!(Concern::of_ledger(concern.ledger()), Some(concern));
        }
        assert_eq!(Concern::of_ledger("platform"), None);
        let halt = PlatformCommand::HaltAll {
            reason: "x".into(),
            at: at(),
        };
        assert_eq!(halt.concern(), Concern::HaltSwitch);
        for event in Platform::default().decide(halt).expect("halted") {
            assert_eq!(event.concern(), Some(Concern::HaltSwitch));
        }
    }

    #[test]
    fn a_snapshot_carries_exactly_its_concern() {
        let mut platform = Platform::default();
        platform.apply(PlatformEvent::PlatformHalted {
            reason: "incident".into(),
            at: at(),
        });
        platform.apply(PlatformEvent::UserAdded {
            username: Username::parse("ada").expect("name"),
            role: Role::Admin,
            at: at(),
        });
        let mut users_only = Platform::default();
        users_only.adopt(Concern::Users, &platform);
        assert!(users_only.user("ada").is_some());
        assert!(users_only.halted().is_none());
        let mut halt_only = Platform::default();
        halt_only.adopt(Concern::HaltSwitch, &platform);
        assert_eq!(halt_only.halted().map(|h| h.0), Some("incident"));
        assert!(halt_only.users().is_empty());
    }
}
