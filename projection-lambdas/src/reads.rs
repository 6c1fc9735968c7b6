//! What a read of the read models asks and answers, whichever store holds them: the filters
//! and pages of the lists, and an experiment with its timeline. The embedded read models
//! (`embedded-read`'s `queries`) and the DynamoDB ones ([`crate::dynamo_queries`]) answer the
//! same questions with the same types.

use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentRecord;

/// One experiment with its timeline (its audit log entries in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentDetail {
    /// The record.
    pub record: ExperimentRecord,
    /// Every event of the experiment, summarized.
    pub timeline: Vec<AuditEntry>,
}

/// `text` as a filter compares it: SQLite's `lower` folds ASCII letters only, so the filter
/// does the same.
pub fn fold_case(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// Filters of the experiments list (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct ExperimentFilter {
    /// Status (`RUNNING`, `COMPLETED`, ...).
    pub status: Option<String>,
    /// Part of the target key, in any case (`web` finds `fleet:web`).
    pub target: Option<String>,
    /// Created at or after (RFC 3339 text of a [`domain::Timestamp`]).
    pub created_from: Option<String>,
    /// Created before.
    pub created_to: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Include archived experiments.
    pub include_archived: bool,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// Cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// Filters of the audit log (all optional, combined with AND), and its order.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Part of the actor id, in any case (`sam` finds `user:sam` and `user:Samira`).
    pub actor: Option<String>,
    /// Stream id (an experiment id, or `platform`).
    pub aggregate_id: Option<String>,
    /// Recorded at or after.
    pub from: Option<String>,
    /// Recorded before.
    pub to: Option<String>,
    /// Newest first (the entries before `after`), rather than in recording order.
    pub newest_first: bool,
}
