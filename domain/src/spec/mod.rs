//! The experiment specification: untrusted input in, validated values out.
//!
//! [`ExperimentSpecInput`] is what a person, script or template writes (JSON, unknown fields
//! refused). [`ExperimentSpecInput::from_json`] reads it from JSON and [`ExperimentSpec::parse`]
//! checks every field; both report *all* problems at once, each with the path of the offending
//! field, so a bad spec is fixed in one round trip.
//! The validated types derive `Deserialize` only for reading stored events back: the log is
//! the record of what was accepted then, and must load even if limits are tightened later.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::{
    HARD_TARGET_CAP, MAX_DESCRIPTION_CHARS, MAX_GROUP_CHARS, MAX_HEALTH_SAMPLES, MAX_ID_CHARS,
    MAX_NAME_CHARS, MAX_STOP_CONDITIONS, MAX_TARGET_ID_CHARS, MAX_TEXT_CHARS, MAX_USERNAME_CHARS,
};

mod json;

/// One thing wrong with an input, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Dotted path of the field, e.g. `selection.value`.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

/// Every problem found in an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if p.field.is_empty() {
                f.write_str(&p.message)?;
            } else {
                write!(f, "{}: {}", p.field, p.message)?;
            }
        }
        Ok(())
    }
}

/// Collects problems while parsing.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, SpecError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(SpecError { problems: self.0 })
        }
    }
}

fn check_text(
    problems: &mut Problems,
    field: &str,
    value: &str,
    max_chars: usize,
    allow_empty: bool,
) {
    let chars = value.chars().count();
    if !allow_empty && value.trim().is_empty() {
        problems.add(field, "must not be empty");
    } else if chars > max_chars {
        problems.add(
            field,
            format!("must have at most {max_chars} characters (has {chars})"),
        );
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        problems.add(field, "must not contain control characters");
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Checks an identifier: 1..=max ASCII letters, digits, `-`, `_`, `.`, `:`.
fn id_problem(value: &str, max_chars: usize) -> Option<String> {
    if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > max_chars {
        Some(format!(
            "must have at most {max_chars} characters (has {})",
            value.len()
        ))
    } else if !value.chars().all(is_id_char) {
        Some("may contain only ASCII letters, digits, '-', '_', '.' and ':'".to_owned())
    } else {
        None
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates an untrusted identifier.
            pub fn parse(value: impl Into<String>) -> Result<Self, SpecError> {
                let value = value.into();
                match id_problem(&value, $max) {
                    None => Ok(Self(value)),
                    Some(message) => Err(SpecError {
                        problems: vec![Problem { field: $what.to_owned(), message }],
                    }),
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// Identifies one experiment (its event stream). Chosen at the edge, usually a UUIDv7.
    /// Never the id of one of the platform's streams (`platform`, `halt-switch.1`, ...):
    /// see [`ExperimentId::parse_new`].
    ExperimentId,
    MAX_ID_CHARS,
    "id"
);

impl ExperimentId {
    /// Validates the id of an experiment about to be created: besides what [`Self::parse`]
    /// checks, it may not be the id of one of the platform's streams, so that a stream id
    /// names one stream whatever its type.
    pub fn parse_new(value: impl Into<String>) -> Result<Self, SpecError> {
        let id = Self::parse(value)?;
        if crate::platform::is_platform_stream(id.as_str()) {
            return Err(SpecError {
                problems: vec![Problem {
                    field: "id".to_owned(),
                    message: format!(
                        "{id:?} is reserved: it names one of the platform's own streams"
                    ),
                }],
            });
        }
        Ok(id)
    }
}
id_newtype!(
    /// Identifies one webhook subscription. Chosen at the edge.
    WebhookId,
    MAX_ID_CHARS,
    "webhook id"
);
id_newtype!(
    /// Identifies one recurring schedule. Chosen at the edge.
    ScheduleId,
    MAX_ID_CHARS,
    "schedule id"
);
id_newtype!(
    /// Identifies one blackout window. Chosen at the edge.
    BlackoutId,
    MAX_ID_CHARS,
    "blackout id"
);
id_newtype!(
    /// Identifies one API key (its holder acts as `key:<id>`). Chosen at the edge.
    ApiKeyId,
    MAX_ID_CHARS,
    "api key id"
);
id_newtype!(
    /// Names one user of the embedded identity provider (they act as `user:<name>`). Chosen
    /// at the edge.
    Username,
    MAX_USERNAME_CHARS,
    "username"
);
id_newtype!(
    /// Identifies one target instance: an EC2 instance id or a local worker id.
    TargetId,
    MAX_TARGET_ID_CHARS,
    "target"
);

/// What kind of fleet a target group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetKind {
    /// An EC2 Auto Scaling group, found by its `aws:autoscaling:groupName` tag.
    AutoScalingGroup,
    /// The local demo fleet of worker processes (embedded mode).
    LocalFleet,
}

/// The group of instances an experiment acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Fleet kind.
    pub kind: TargetKind,
    /// Group name (Auto Scaling group name or local fleet name).
    pub group: String,
}

impl Target {
    /// A stable key used for "one running experiment per target".
    pub fn key(&self) -> String {
        let kind = match self.kind {
            TargetKind::AutoScalingGroup => "asg",
            TargetKind::LocalFleet => "fleet",
        };
        format!("{kind}:{}", self.group)
    }
}

/// How many of the matching instances to hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "value", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Selection {
    /// Exactly this many (fewer if fewer match).
    Count(u32),
    /// This percentage of the matches, rounded up.
    Percent(u32),
    /// Every match, still bounded by the cap.
    All,
}

impl Selection {
    /// How many targets a run hits when `candidates` instances match, after applying `cap`.
    ///
    /// Zero candidates give zero: the caller must fail the run, never widen the selection.
    pub fn resolve_count(self, candidates: u32, cap: u32) -> u32 {
        let wanted = match self {
            Selection::Count(n) => n.min(candidates),
            Selection::Percent(p) => {
                let product = u64::from(candidates) * u64::from(p);
                u32::try_from(product.div_ceil(100)).unwrap_or(u32::MAX)
            }
            Selection::All => candidates,
        };
        wanted.min(cap).min(HARD_TARGET_CAP)
    }

    /// Which of `candidates` a run hits: [`Self::resolve_count`] of them, the same ones for
    /// the same candidates and `seed` (the experiment id) whatever order they were listed
    /// in, so a dry run names exactly what a real run would hit. Candidates are ranked by
    /// SHA-256 of seed and id, which spreads runs of different experiments over the group
    /// instead of always hitting its first instance. Duplicates count once. The result is in
    /// id order.
    pub fn choose(self, candidates: &[TargetId], cap: u32, seed: &str) -> Vec<TargetId> {
        let distinct: BTreeSet<&TargetId> = candidates.iter().collect();
        let count = self.resolve_count(u32::try_from(distinct.len()).unwrap_or(u32::MAX), cap);
        let mut ranked: Vec<([u8; 32], &TargetId)> = distinct
            .into_iter()
            .map(|id| {
                let mut hasher = Sha256::new();
                hasher.update(seed.as_bytes());
                hasher.update([0u8]);
                hasher.update(id.as_str().as_bytes());
                (hasher.finalize().into(), id)
            })
            .collect();
        ranked.sort();
        let mut chosen: Vec<TargetId> = ranked
            .into_iter()
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(|(_, id)| id.clone())
            .collect();
        chosen.sort();
        chosen
    }
}

/// The failure injected into each selected target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum FailureType {
    /// Terminate the instance (SIGKILL locally); recovery means the group replaced it.
    Terminate,
    /// Pause the instance's process (SIGSTOP) for a while, then resume it (SIGCONT).
    Pause {
        /// How long the process stays paused.
        duration_secs: u32,
    },
}

impl FailureType {
    /// Whether undoing the failure is an action (resume) rather than the fleet's own repair.
    pub fn is_reversible(self) -> bool {
        matches!(self, FailureType::Pause { .. })
    }
}

/// A condition that aborts a run when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum StopCondition {
    /// A CloudWatch alarm (or its local equivalent) in any state but OK.
    Alarm {
        /// Alarm name.
        alarm_name: String,
    },
    /// The error rate through the load balancer above this percentage.
    MaxErrorRate {
        /// Threshold, 1..=100.
        percent: u32,
    },
}

impl StopCondition {
    /// What breaches this condition in one health sample, if anything: an error rate above
    /// the threshold. An alarm is never decided here; its state is looked up at the edge.
    pub fn breached_by(&self, health: &crate::experiment::HealthSnapshot) -> Option<String> {
        match self {
            StopCondition::MaxErrorRate { percent } => {
                let limit_bp = percent.saturating_mul(100);
                (health.error_rate_bp > limit_bp).then(|| {
                    format!(
                        "error rate {}.{:02} % above the {percent} % limit",
                        health.error_rate_bp / 100,
                        health.error_rate_bp % 100
                    )
                })
            }
            StopCondition::Alarm { .. } => None,
        }
    }
}

/// Safety limits of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Checked before start (fail closed) and at every step.
    pub stop_conditions: Vec<StopCondition>,
    /// The run is stopped when it lasts longer than this.
    pub max_duration_secs: u32,
}

/// How recovery is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// Give up waiting for recovery after this long.
    pub timeout_secs: u32,
    /// Health is sampled this often while waiting.
    pub poll_interval_secs: u32,
    /// Health samples taken before injecting, to establish the baseline.
    pub baseline_samples: u32,
}

impl RecoveryPolicy {
    /// Health samples one run may record at most with this policy.
    pub fn max_samples(self) -> u32 {
        let polls = self.timeout_secs.div_ceil(self.poll_interval_secs.max(1));
        self.baseline_samples.saturating_add(polls)
    }
}

/// A validated experiment specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    name: String,
    description: String,
    target: Target,
    selection: Selection,
    max_targets: u32,
    failure: FailureType,
    dry_run: bool,
    guardrails: Guardrails,
    recovery: RecoveryPolicy,
}

/// An experiment specification as written by a user; see [`ExperimentSpec::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpecInput {
    /// Short human name.
    pub name: String,
    /// Optional longer text.
    #[serde(default)]
    pub description: String,
    /// The group to act on.
    pub target: Target,
    /// How many of its instances.
    pub selection: Selection,
    /// Upper bound on targets hit, whatever the selection says (<= the hard cap).
    pub max_targets: u32,
    /// What to do to each target.
    pub failure: FailureType,
    /// Resolve targets only; mutate nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop conditions and duration limit.
    pub guardrails: Guardrails,
    /// Recovery observation policy.
    pub recovery: RecoveryPolicy,
}

impl ExperimentSpec {
    /// Validates untrusted input, reporting every problem found.
    pub fn parse(input: ExperimentSpecInput) -> Result<Self, SpecError> {
        let mut p = Problems::default();
        let name = input.name.trim().to_owned();
        check_text(&mut p, "name", &name, MAX_NAME_CHARS, false);
        check_text(
            &mut p,
            "description",
            &input.description,
            MAX_DESCRIPTION_CHARS,
            true,
        );
        check_group(&mut p, &input.target.group);
        check_selection(&mut p, input.selection, input.max_targets);
        let pause_secs = check_failure(&mut p, input.failure, input.target.kind);
        check_stop_conditions(&mut p, &input.guardrails.stop_conditions);
        check_recovery(&mut p, input.recovery);
        check_duration(
            &mut p,
            input.guardrails.max_duration_secs,
            input.recovery.timeout_secs.saturating_add(pause_secs),
        );

        p.finish(|| ExperimentSpec {
            name,
            description: input.description,
            target: input.target,
            selection: input.selection,
            max_targets: input.max_targets,
            failure: input.failure,
            dry_run: input.dry_run,
            guardrails: input.guardrails,
            recovery: input.recovery,
        })
    }

    /// Human name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Longer description (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Target group.
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// Selection mode.
    pub fn selection(&self) -> Selection {
        self.selection
    }
    /// Per-experiment cap on targets.
    pub fn max_targets(&self) -> u32 {
        self.max_targets
    }
    /// Failure injected.
    pub fn failure(&self) -> FailureType {
        self.failure
    }
    /// Whether this is a dry run.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
    /// Guardrails.
    pub fn guardrails(&self) -> &Guardrails {
        &self.guardrails
    }
    /// Recovery policy.
    pub fn recovery(&self) -> RecoveryPolicy {
        self.recovery
    }
}

/// `target.group`: a name, not empty, not too long, no control characters.
fn check_group(p: &mut Problems, group: &str) {
    if group.trim().is_empty() {
        p.add("target.group", "must not be empty");
    } else if group.chars().count() > MAX_GROUP_CHARS {
        p.add(
            "target.group",
            format!("must have at most {MAX_GROUP_CHARS} characters"),
        );
    } else if group.chars().any(char::is_control) {
        p.add("target.group", "must not contain control characters");
    }
}

/// `selection` and `max_targets`: within the hard cap, and the count within `max_targets`.
fn check_selection(p: &mut Problems, selection: Selection, max_targets: u32) {
    match selection {
        Selection::Count(n) if n == 0 || n > HARD_TARGET_CAP => p.add(
            "selection.value",
            format!("COUNT must be between 1 and {HARD_TARGET_CAP} (got {n})"),
        ),
        Selection::Percent(pc) if pc == 0 || pc > 100 => p.add(
            "selection.value",
            format!("PERCENT must be between 1 and 100 (got {pc})"),
        ),
        _ => {}
    }
    if max_targets == 0 || max_targets > HARD_TARGET_CAP {
        p.add(
            "max_targets",
            format!(
                "must be between 1 and {HARD_TARGET_CAP} (got {})",
                max_targets
            ),
        );
    }
    if let Selection::Count(n) = selection
        && n > max_targets
        && max_targets > 0
    {
        p.add(
            "selection.value",
            format!(
                "COUNT {n} exceeds max_targets {}: raise max_targets or lower the count",
                max_targets
            ),
        );
    }
}

/// `failure`: a pause's duration, and a pause only where it can act. Returns how long the
/// failure lasts (0 for one that is done at once).
fn check_failure(p: &mut Problems, failure: FailureType, kind: TargetKind) -> u32 {
    let pause_secs = match failure {
        FailureType::Pause { duration_secs } => {
            if !(1..=3_600).contains(&duration_secs) {
                p.add(
                    "failure.duration_secs",
                    format!("must be between 1 and 3600 (got {duration_secs})"),
                );
            }
            duration_secs
        }
        FailureType::Terminate => 0,
    };
    if let (TargetKind::AutoScalingGroup, FailureType::Pause { .. }) = (kind, failure) {
        p.add(
            "failure.type",
            "PAUSE acts on local fleet workers only: an Auto Scaling group's instances can \
             be terminated (TERMINATE)",
        );
    }
    pause_secs
}

/// `guardrails.stop_conditions`: at most so many, each valid, none twice.
fn check_stop_conditions(p: &mut Problems, conditions: &[StopCondition]) {
    if conditions.len() > MAX_STOP_CONDITIONS {
        p.add(
            "guardrails.stop_conditions",
            format!(
                "at most {MAX_STOP_CONDITIONS} stop conditions (got {})",
                conditions.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, condition) in conditions.iter().enumerate() {
        let field = format!("guardrails.stop_conditions[{i}]");
        match condition {
            StopCondition::Alarm { alarm_name } => {
                if alarm_name.trim().is_empty() || alarm_name.chars().count() > 255 {
                    p.add(
                        format!("{field}.alarm_name"),
                        "must have 1 to 255 characters",
                    );
                } else if alarm_name.chars().any(char::is_control) {
                    p.add(
                        format!("{field}.alarm_name"),
                        "must not contain control characters",
                    );
                }
            }
            StopCondition::MaxErrorRate { percent } => {
                if *percent == 0 || *percent > 100 {
                    p.add(
                        format!("{field}.percent"),
                        format!("must be between 1 and 100 (got {percent})"),
                    );
                }
            }
        }
        if !seen.insert(format!("{condition:?}")) {
            p.add(field, "duplicates an earlier stop condition");
        }
    }
}

/// `recovery`: its timeout, poll interval and baseline within bounds, and the samples they
/// take within the stream's.
fn check_recovery(p: &mut Problems, r: RecoveryPolicy) {
    if !(5..=3_600).contains(&r.timeout_secs) {
        p.add(
            "recovery.timeout_secs",
            format!("must be between 5 and 3600 (got {})", r.timeout_secs),
        );
    }
    if !(1..=300).contains(&r.poll_interval_secs) {
        p.add(
            "recovery.poll_interval_secs",
            format!("must be between 1 and 300 (got {})", r.poll_interval_secs),
        );
    }
    if !(1..=10).contains(&r.baseline_samples) {
        p.add(
            "recovery.baseline_samples",
            format!("must be between 1 and 10 (got {})", r.baseline_samples),
        );
    }
    if r.poll_interval_secs > 0 && r.max_samples() > MAX_HEALTH_SAMPLES {
        p.add(
            "recovery",
            format!(
                "baseline_samples + timeout_secs / poll_interval_secs must be at most \
                 {MAX_HEALTH_SAMPLES} health samples (got {}): poll less often",
                r.max_samples()
            ),
        );
    }
}

/// `guardrails.max_duration_secs`: within bounds, and long enough for the failure and the
/// recovery (`needed` seconds).
fn check_duration(p: &mut Problems, max_duration: u32, needed: u32) {
    if !(10..=14_400).contains(&max_duration) {
        p.add(
            "guardrails.max_duration_secs",
            format!("must be between 10 and 14400 (got {max_duration})"),
        );
    } else if max_duration < needed {
        p.add(
            "guardrails.max_duration_secs",
            format!("must be at least the recovery timeout plus the pause duration ({needed} s)"),
        );
    }
}

/// A webhook URL as anyone but an administrator sees it: its scheme, host and port, with `/…`
/// for whatever followed. A receiver's path or query often is its secret (`?token=…`,
/// `/services/T0/B0/XXXX`); the host is what an audit needs.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // A URL stored before credentials were refused in it keeps them out of sight too.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let more = if tail.trim_start_matches('/').is_empty() {
        ""
    } else {
        "/…"
    };
    if scheme.is_empty() {
        format!("{authority}{more}")
    } else {
        format!("{scheme}://{authority}{more}")
    }
}

/// Checks a free-text field carried by a command (reason, detail).
pub fn parse_text(field: &str, value: &str) -> Result<String, SpecError> {
    let mut p = Problems::default();
    check_text(&mut p, field, value, MAX_TEXT_CHARS, true);
    p.finish(|| value.to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn input() -> ExperimentSpecInput {
        ExperimentSpecInput {
            name: "kill one web worker".into(),
            description: "Does the web tier replace a lost worker within two minutes?".into(),
            target: Target {
                kind: TargetKind::LocalFleet,
                group: "web".into(),
            },
            selection: Selection::Count(1),
            max_targets: 3,
            failure: FailureType::Terminate,
            dry_run: false,
            guardrails: Guardrails {
                stop_conditions: vec![StopCondition::MaxErrorRate { percent: 50 }],
                max_duration_secs: 600,
            },
            recovery: RecoveryPolicy {
                timeout_secs: 120,
                poll_interval_secs: 2,
                baseline_samples: 3,
            },
        }
    }

    #[test]
    fn a_good_spec_parses_and_trims_the_name() {
        let mut raw = input();
        raw.name = "  kill one web worker ".into();
        let spec = ExperimentSpec::parse(raw).expect("valid");
        assert_eq!(spec.name(), "kill one web worker");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut raw = input();
        raw.name = " ".into();
        raw.selection = Selection::Percent(0);
        raw.max_targets = 99;
        raw.recovery.poll_interval_secs = 0;
        raw.guardrails.max_duration_secs = 5;
        let err = ExperimentSpec::parse(raw).expect_err("invalid");
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "selection.value",
                "max_targets",
                "recovery.poll_interval_secs",
                "guardrails.max_duration_secs"
            ]
        );
        assert!(
            err.to_string()
                .contains("max_targets: must be between 1 and 50 (got 99)")
        );
    }

    #[test]
    fn pausing_a_group_is_refused_at_the_failure_type() {
        let mut raw = input();
        raw.target.kind = TargetKind::AutoScalingGroup;
        raw.failure = FailureType::Pause { duration_secs: 10 };
        let err = ExperimentSpec::parse(raw.clone()).expect_err("invalid");
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["failure.type"]);
        raw.target.kind = TargetKind::LocalFleet;
        assert!(ExperimentSpec::parse(raw.clone()).is_ok());
        raw.target.kind = TargetKind::AutoScalingGroup;
        raw.failure = FailureType::Terminate;
        assert!(ExperimentSpec::parse(raw).is_ok());
    }

    #[test]
    fn too_many_health_samples_is_refused() {
        let mut raw = input();
        raw.recovery.timeout_secs = 600;
        raw.recovery.poll_interval_secs = 1;
        let err = ExperimentSpec::parse(raw).expect_err("invalid");
        assert_eq!(err.problems[0].field, "recovery");
    }

    #[test]
    fn count_above_max_targets_is_refused() {
        let mut raw = input();
        raw.selection = Selection::Count(5);
        let err = ExperimentSpec::parse(raw).expect_err("invalid");
        assert!(err.problems[0].message.contains("exceeds max_targets 3"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(input()).expect("json");
        json["colour"] = "red".into();
        let err = serde_json::from_value::<ExperimentSpecInput>(json).expect_err("refused");
        assert!(err.to_string().contains("unknown field `colour`"));
    }

    #[test]
    fn an_error_rate_above_its_limit_breaches_and_an_alarm_is_left_to_the_edge() {
        use crate::experiment::HealthSnapshot;
        let health = |error_rate_bp| HealthSnapshot {
            healthy: 3,
            total: 3,
            latency_p95_ms: 20,
            error_rate_bp,
        };
        let limit = StopCondition::MaxErrorRate { percent: 5 };
        assert_eq!(limit.breached_by(&health(500)), None);
        assert_eq!(
            limit.breached_by(&health(501)).as_deref(),
            Some("error rate 5.01 % above the 5 % limit")
        );
        let alarm = StopCondition::Alarm {
            alarm_name: "high-errors".into(),
        };
        assert_eq!(alarm.breached_by(&health(10_000)), None);
    }

    #[test]
    fn choosing_is_deterministic_bounded_and_order_free() {
        let ids: Vec<TargetId> = (0..10)
            .map(|n| TargetId::parse(format!("i-{n:02}")).expect("id"))
            .collect();
        let mut shuffled = ids.clone();
        shuffled.reverse();
        shuffled.push(ids[3].clone());
        let chosen = Selection::Count(3).choose(&ids, 5, "exp-1");
        assert_eq!(chosen.len(), 3);
        assert_eq!(Selection::Count(3).choose(&shuffled, 5, "exp-1"), chosen);
        assert!(chosen.windows(2).all(|w| w[0] < w[1]));
        assert!(chosen.iter().all(|c| ids.contains(c)));
        assert_eq!(Selection::All.choose(&ids, 4, "exp-1").len(), 4);
        assert_eq!(Selection::Percent(25).choose(&ids, 10, "exp-1").len(), 3);
        assert!(Selection::All.choose(&[], 4, "exp-1").is_empty());
        // Different experiments do not all hit the same instance.
        let firsts: BTreeSet<TargetId> = (0..20)
            .map(|n| Selection::Count(1).choose(&ids, 1, &format!("exp-{n}"))[0].clone())
            .collect();
        assert!(firsts.len() > 3, "{firsts:?}");
    }

    #[test]
    fn selection_never_widens_and_respects_caps() {
        assert_eq!(Selection::Count(3).resolve_count(0, 10), 0);
        assert_eq!(Selection::All.resolve_count(0, 10), 0);
        assert_eq!(Selection::Count(3).resolve_count(2, 10), 2);
        assert_eq!(Selection::Percent(30).resolve_count(10, 10), 3);
        assert_eq!(Selection::Percent(1).resolve_count(10, 10), 1);
        assert_eq!(Selection::All.resolve_count(40, 5), 5);
        assert_eq!(Selection::All.resolve_count(400, 400), HARD_TARGET_CAP);
    }

    #[test]
    fn ids_are_checked() {
        assert!(ExperimentId::parse("01931f0e-6f39-7c1a-9a3e-1d2f3a4b5c6d").is_ok());
        for (url, shown) in [
            (
                "https://hooks.example.com/chaos?token=s3cret",
                "https://hooks.example.com/…",
            ),
            (
                "https://hooks.slack.com/services/T0/B0/XXXX",
                "https://hooks.slack.com/…",
            ),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
            ("https://h.example.com", "https://h.example.com"),
            (
                "https://admin:pw@h.example.com/x",
                "https://h.example.com/…",
            ),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
        assert!(ExperimentId::parse("").is_err());
        assert!(ExperimentId::parse("has space").is_err());
        assert!(TargetId::parse("x".repeat(65)).is_err());
    }
}
