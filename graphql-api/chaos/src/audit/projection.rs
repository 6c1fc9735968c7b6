//! The audit-log read model against the log: every event applied has exactly one entry that
//! says what the event says, and no entry stands for an event that is not there.

use dynamo_tables::views;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use domain::audit::OwnedRow;
use domain::views::audit_log::AuditEntry;
use domain::views::{Envelope, RawRecord};
use graphql_api::chain::{dynamo_error, read_only};

use super::AuditError;

/// The first disagreement of one stream's audit log entries with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectionFault {
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) sequence: u64,
    pub(crate) problem: String,
}

/// What comparing the audit log read model with the log found.
#[derive(Debug, Default)]
pub(crate) struct ProjectionCheck {
    /// Entries compared with their events.
    pub(crate) entries: u64,
    pub(crate) faults: Vec<ProjectionFault>,
}

/// Compares the embedded audit log read model with the log, in one read snapshot: every event
/// the projection has applied (at or below its checkpoint for the stream) has exactly one
/// entry, which says what the event says (type, actor, times, description); no entry exists
/// for an event not applied or not in the log. `None` when the store has no read models.
pub(crate) fn check_projection(path: &Path) -> Result<Option<ProjectionCheck>, AuditError> {
    let conn = read_only(path)?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
         AND name IN ('view_audit_log', 'projection_checkpoints')",
        [],
        |r| r.get(0),
    )?;
    if tables < 2 {
        return Ok(None);
    }
    conn.execute_batch("BEGIN")?;
    let mut check = ProjectionCheck::default();
    let mut first: HashMap<(String, String), ProjectionFault> = HashMap::new();
    let mut note = |t: &str, id: &str, sequence: u64, problem: String| {
        let fault = ProjectionFault {
            aggregate_type: t.to_owned(),
            aggregate_id: id.to_owned(),
            sequence,
            problem,
        };
        first
            .entry((t.to_owned(), id.to_owned()))
            .and_modify(|f| {
                if sequence < f.sequence {
                    *f = fault.clone();
                }
            })
            .or_insert(fault);
    };
    {
        let mut statement = conn.prepare(
            "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
             e.payload, e.metadata, a.event_type, a.actor, a.recorded_at, a.at, a.action, c.sequence \
             FROM events e \
             LEFT JOIN view_audit_log a ON a.aggregate_type = e.aggregate_type \
               AND a.aggregate_id = e.aggregate_id AND a.sequence = e.sequence \
             LEFT JOIN projection_checkpoints c ON c.projection = 'audit_log' \
               AND c.aggregate_type = e.aggregate_type AND c.aggregate_id = e.aggregate_id",
        )?;
        let mut rows = statement.query([])?;
        while let Some(r) = rows.next()? {
            let raw = RawRecord {
                aggregate_type: r.get_ref(0)?.as_str().unwrap_or_default(),
                aggregate_id: r.get_ref(1)?.as_str().unwrap_or_default(),
                sequence: r.get(2)?,
                event_type: r.get_ref(3)?.as_str().unwrap_or_default(),
                event_version: r.get_ref(4)?.as_str().unwrap_or_default(),
                payload: r.get_ref(5)?.as_str().unwrap_or_default(),
                metadata: r.get_ref(6)?.as_str().unwrap_or_default(),
            };
            let sequence = u64::try_from(raw.sequence).unwrap_or(0);
            let entry: Option<[String; 5]> = match r.get::<_, Option<String>>(7)? {
                Some(event_type) => {
                    Some([event_type, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?])
                }
                None => None,
            };
            let checkpoint: Option<i64> = r.get(12)?;
            let applied = checkpoint.is_some_and(|c| raw.sequence <= c);
            let (t, id) = (raw.aggregate_type, raw.aggregate_id);
            match (applied, entry) {
                (false, None) => {}
                (true, None) => note(
                    t,
                    id,
                    sequence,
                    format!(
                        "no audit log entry, though the projection has applied the stream up to sequence {}",
                        checkpoint.unwrap_or_default()
                    ),
                ),
                (false, Some(_)) => note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the projection has not applied".into(),
                ),
                (true, Some(entry)) => {
                    check.entries += 1;
                    if let Some(problem) = entry_disagreement(raw, &entry) {
                        note(t, id, sequence, problem);
                    }
                }
            }
        }
        let mut orphans = conn.prepare(
            "SELECT a.aggregate_type, a.aggregate_id, a.sequence FROM view_audit_log a \
             WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_type = a.aggregate_type \
               AND e.aggregate_id = a.aggregate_id AND e.sequence = a.sequence)",
        )?;
        let mut rows = orphans.query([])?;
        while let Some(r) = rows.next()? {
            let (t, id, sequence): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            note(
                &t,
                &id,
                u64::try_from(sequence).unwrap_or(0),
                "an audit log entry for an event the log does not hold".into(),
            );
        }
    }
    conn.execute_batch("COMMIT")?;
    check.faults = first.into_values().collect();
    check.faults.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
    });
    Ok(Some(check))
}

/// Compares the audit log in the read-model table (AWS) with the log, one stream at a time:
/// every event the projection has applied (at or below the stream's `checkpoint#audit_log`)
/// has exactly the entry the event makes, and no entry exists for an event not applied or not
/// in the log. The table is read while the projection may be writing to it: an event applied
/// between reading the log and reading its stream's rows is reported as an entry for an event
/// the log does not hold, so run it again before concluding.
pub(crate) struct DynamoAuditCheck<'a> {
    client: &'a aws_sdk_dynamodb::Client,
    views: &'a str,
    check: ProjectionCheck,
    first: HashMap<(String, String), ProjectionFault>,
}

impl<'a> DynamoAuditCheck<'a> {
    pub(crate) fn new(client: &'a aws_sdk_dynamodb::Client, views: &'a str) -> Self {
        DynamoAuditCheck {
            client,
            views,
            check: ProjectionCheck::default(),
            first: HashMap::new(),
        }
    }

    fn note(&mut self, t: &str, id: &str, sequence: u64, problem: String) {
        let fault = ProjectionFault {
            aggregate_type: t.to_owned(),
            aggregate_id: id.to_owned(),
            sequence,
            problem,
        };
        self.first
            .entry((t.to_owned(), id.to_owned()))
            .and_modify(|f| {
                if sequence < f.sequence {
                    *f = fault.clone();
                }
            })
            .or_insert(fault);
    }

    /// Checks stream `t:id`, whose events are `rows`, against its partition of the table.
    pub(crate) async fn stream(
        &mut self,
        t: &str,
        id: &str,
        rows: &[OwnedRow],
    ) -> Result<(), AuditError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let bad = |what: String| AuditError::Dynamo(format!("read-model row of {t}:{id}: {what}"));
        let mut pages = self
            .client
            .query()
            .table_name(self.views)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", views::PK)
            .expression_attribute_values(":pk", AttributeValue::S(views::stream_partition(t, id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut checkpoint = 0u64;
        let mut entries: BTreeMap<u64, AuditEntry> = BTreeMap::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(dynamo_error)?;
            let sk = item
                .get(views::SK)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == views::checkpoint_sort_key("audit_log") {
                checkpoint = item
                    .get("Sequence")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad(format!("{sk} has no Sequence")))?;
            } else if sk.starts_with(views::AUDIT_PREFIX) {
                let sequence = views::sequence_of_audit(&sk)
                    .ok_or_else(|| bad(format!("{sk} is not {}SEQUENCE", views::AUDIT_PREFIX)))?;
                let entry = item
                    .get("Entry")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| bad(format!("{sk} has no Entry")))?;
                let entry = serde_json::from_str(entry)
                    .map_err(|e| bad(format!("{sk}'s Entry does not decode: {e}")))?;
                entries.insert(sequence, entry);
            }
        }
        for row in rows {
            let sequence = u64::try_from(row.sequence).unwrap_or(0);
            match (sequence <= checkpoint, entries.remove(&sequence)) {
                (false, None) => {}
                (true, None) => self.note(
                    t,
                    id,
                    sequence,
                    format!(
                        "no audit log entry, though the projection has applied the stream up to sequence {checkpoint}"
                    ),
                ),
                (false, Some(_)) => self.note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the projection has not applied".into(),
                ),
                (true, Some(entry)) => {
                    self.check.entries += 1;
                    let raw = row.row();
                    let entry = [
                        entry.event_type,
                        entry.actor,
                        entry.recorded_at,
                        entry.at.to_string(),
                        entry.action,
                    ];
                    let record = RawRecord {
                        aggregate_type: raw.aggregate_type,
                        aggregate_id: raw.aggregate_id,
                        sequence: raw.sequence,
                        event_type: raw.event_type,
                        event_version: raw.event_version,
                        payload: raw.payload,
                        metadata: raw.metadata,
                    };
                    if let Some(problem) = entry_disagreement(record, &entry) {
                        self.note(t, id, sequence, problem);
                    }
                }
            }
        }
        for sequence in entries.into_keys() {
            self.note(
                t,
                id,
                sequence,
                "an audit log entry for an event the log does not hold".into(),
            );
        }
        Ok(())
    }

    /// Entries of streams the log does not hold at all: the audit feed's keys (the `ByFeed`
    /// index), against the log's `streams`.
    pub(crate) async fn orphans(
        &mut self,
        streams: &BTreeSet<(String, String)>,
    ) -> Result<(), AuditError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut pages = self
            .client
            .query()
            .table_name(self.views)
            .index_name(views::BY_FEED)
            .key_condition_expression("#feed = :feed")
            .expression_attribute_names("#feed", views::FEED)
            .expression_attribute_values(":feed", AttributeValue::S(views::AUDIT_FEED.to_owned()))
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", views::PK)
            .expression_attribute_names("#sk", views::SK)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(dynamo_error)?;
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (Some(pk), Some(sk)) = (text(views::PK), text(views::SK)) else {
                continue;
            };
            let Some((t, id)) = views::stream_of(&pk) else {
                continue;
            };
            if !streams.contains(&(t.to_owned(), id.to_owned())) {
                let sequence = views::sequence_of_audit(&sk).unwrap_or(0);
                self.note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the log does not hold".into(),
                );
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> ProjectionCheck {
        self.check.faults = self.first.into_values().collect();
        self.check.faults.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        self.check
    }
}

/// Which read model `verify` compares with the log, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Projection<'a> {
    /// The read-model table, for a DynamoDB log (the embedded one is in the store file).
    pub(crate) views_table: Option<&'a str>,
}

/// What an entry `[event_type, actor, recorded_at, at, action]` gets wrong about its event.
fn entry_disagreement(raw: RawRecord<'_>, entry: &[String; 5]) -> Option<String> {
    let expected = match Envelope::decode(raw) {
        Ok(envelope) => AuditEntry::from_envelope(&envelope),
        Err(e) => {
            return Some(format!(
                "the event does not decode ({e}) yet has an audit log entry"
            ));
        }
    };
    let fields = [
        ("event type", &expected.event_type),
        ("actor", &expected.actor),
        ("recorded_at", &expected.recorded_at),
        ("at", &expected.at.to_string()),
        ("action", &expected.action),
    ];
    fields
        .iter()
        .zip(entry)
        .find(|((_, log), entry)| *log != *entry)
        .map(|((name, log), entry)| {
            format!("the audit log entry's {name} is {entry:?}, the log says {log:?}")
        })
}
