//! The platform's DynamoDB tables, defined once: the name of every key and index, and how each
//! key's value is made, for every crate that writes or reads them (the event store, the
//! projection Lambda, the API's queries and settings, housekeeping, the auditors' tools).
//!
//! - [`events`]: the `Events` table, as dynamo-es lays it out.
//! - [`views`]: the read-model table, which also holds the API's settings and the workflow's
//!   target claims, each in partitions of its own.

pub mod events {
    //! The `Events` table: one item per event, in dynamo-es's layout.

    /// Partition key (S): `{aggregate_type}:{aggregate_id}`, see [`partition`].
    pub const PARTITION_KEY: &str = "AggregateTypeAndId";
    /// Sort key (N): the event's sequence in its stream.
    pub const SORT_KEY: &str = "AggregateIdSequence";

    /// The partition of a stream.
    pub fn partition(aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{aggregate_type}:{aggregate_id}")
    }

    /// The stream a partition key names: `(aggregate_type, aggregate_id)`.
    pub fn stream_of(partition: &str) -> Option<(&str, &str)> {
        partition.split_once(':')
    }
}

pub mod views {
    //! The read-model table. Partition key [`PK`], sort key [`SK`] (both S). Every row of a
    //! stream lives in that stream's partition ([`stream_partition`]); its rows are the
    //! [`RECORD`], the [`TRACKER`], the [`RESULT`], one audit row per event
    //! ([`audit_sort_key`]) and one checkpoint per projection ([`checkpoint_sort_key`]).
    //! Two indexes: [`BY_STATUS`] ([`STATUS`], [`CREATED_AT`]) over the records, and
    //! [`BY_FEED`] ([`FEED`], [`FEED_KEY`]) over the audit rows and the results.

    /// Partition key (S).
    pub const PK: &str = "Pk";
    /// Sort key (S).
    pub const SK: &str = "Sk";

    /// The partition of a stream's rows: `{aggregate_type}#{aggregate_id}`.
    pub fn stream_partition(aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{aggregate_type}#{aggregate_id}")
    }

    /// The stream whose partition `pk` is: `(aggregate_type, aggregate_id)`.
    pub fn stream_of(pk: &str) -> Option<(&str, &str)> {
        pk.split_once('#')
    }

    /// The partition of an experiment's rows.
    pub fn experiment_partition(id: &str) -> String {
        stream_partition("Experiment", id)
    }

    /// The experiment whose partition `pk` is, if it is one.
    pub fn experiment_of(pk: &str) -> Option<&str> {
        pk.strip_prefix("Experiment#")
    }

    /// Sort key of an experiment's record (its summary, indexed by [`BY_STATUS`]).
    pub const RECORD: &str = "record";
    /// Sort key of the run in progress.
    pub const TRACKER: &str = "tracker";
    /// Sort key of a finished run's result (indexed by [`BY_FEED`]).
    pub const RESULT: &str = "result";

    /// What every audit row's sort key begins with.
    pub const AUDIT_PREFIX: &str = "audit#";

    /// Sort key of the audit row of the event at `sequence`: zero-padded, so that the rows of
    /// a partition sort in sequence order.
    pub fn audit_sort_key(sequence: u64) -> String {
        format!("{AUDIT_PREFIX}{sequence:010}")
    }

    /// The sequence an audit row's sort key names, if it is one.
    pub fn sequence_of_audit(sk: &str) -> Option<u64> {
        sk.strip_prefix(AUDIT_PREFIX)?.parse().ok()
    }

    /// What every checkpoint row's sort key begins with.
    pub const CHECKPOINT_PREFIX: &str = "checkpoint#";

    /// Sort key of a projection's checkpoint in a stream's partition.
    pub fn checkpoint_sort_key(projection: &str) -> String {
        format!("{CHECKPOINT_PREFIX}{projection}")
    }

    /// The index of experiments by status: the records, by [`STATUS`] and [`CREATED_AT`].
    pub const BY_STATUS: &str = "ByStatus";
    /// [`BY_STATUS`]'s partition key: the experiment's status (S).
    pub const STATUS: &str = "Status";
    /// [`BY_STATUS`]'s sort key: when the experiment was created (S, RFC 3339).
    pub const CREATED_AT: &str = "CreatedAt";

    /// The index of the feeds: the whole audit log and every finished run.
    pub const BY_FEED: &str = "ByFeed";
    /// [`BY_FEED`]'s partition key: [`AUDIT_FEED`] or [`RESULT_FEED`] (S).
    pub const FEED: &str = "Feed";
    /// [`BY_FEED`]'s sort key (S): [`audit_feed_key`] or [`result_feed_key`].
    pub const FEED_KEY: &str = "FeedKey";
    /// [`FEED`] of audit rows.
    pub const AUDIT_FEED: &str = "audit";
    /// [`FEED`] of result rows.
    pub const RESULT_FEED: &str = "result";

    /// [`FEED_KEY`] of an audit row: `{recorded_at}#{aggregate_id}#{sequence:010}`.
    ///
    /// Its order is the embedded audit log's, `(recorded_at, aggregate_id, sequence)`:
    /// `recorded_at` is a timestamp in its fixed-width text (milliseconds, `Z`), `#` sorts
    /// below every character an id may hold (ASCII letters, digits, `-`, `_`, `.`, `:`), so an
    /// id sorts before the ids it is a prefix of, as in a tuple (`|` would not: `e-1|` sorts
    /// after `e-10|`), and the sequence is zero-padded.
    pub fn audit_feed_key(recorded_at: &str, aggregate_id: &str, sequence: u64) -> String {
        format!(
            "{}#{sequence:010}",
            audit_feed_prefix(recorded_at, aggregate_id)
        )
    }

    /// What the [`audit_feed_key`] of every event of `aggregate_id` recorded at `recorded_at`
    /// begins with: it sorts before all of them, and after every key of an entry that comes
    /// before them in the feed.
    pub fn audit_feed_prefix(recorded_at: &str, aggregate_id: &str) -> String {
        format!("{recorded_at}#{aggregate_id}")
    }

    /// [`FEED_KEY`] of a result row: `{ended_at}#{experiment_id}`, in `(ended_at,
    /// experiment_id)` order (see [`audit_feed_key`]).
    pub fn result_feed_key(ended_at: &str, experiment_id: &str) -> String {
        format!("{ended_at}#{experiment_id}")
    }

    /// The partition of the API's experiment templates (sort key: the template's id).
    pub const TEMPLATES_PARTITION: &str = "settings#template";
    /// The partition of users' preferences (sort key: the actor).
    pub const PREFERENCES_PARTITION: &str = "settings#preferences";

    /// The partition of the workflow's claim on a target.
    pub fn claim_partition(target: &str) -> String {
        format!("Claim#{target}")
    }
    /// Sort key of a target's claim.
    pub const CLAIM: &str = "claim";

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn keys_sort_as_their_tuples_do() {
            assert!(audit_sort_key(9) < audit_sort_key(10));
            assert_eq!(sequence_of_audit(&audit_sort_key(42)), Some(42));
            assert_eq!(sequence_of_audit("record"), None);
            let t = "2026-12-07T10:00:00.000Z";
            assert!(audit_feed_key(t, "e-1", 2) < audit_feed_key(t, "e-10", 1));
            assert!(audit_feed_key(t, "e-1", 9) < audit_feed_key(t, "e-1", 10));
            assert_eq!(experiment_of(&experiment_partition("x#1")), Some("x#1"));
            assert_eq!(experiment_of("Platform#halt-switch.1"), None);
        }
    }
}
