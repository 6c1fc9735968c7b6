//! Reads of the embedded read models, for the API, the dashboard and the CLI.
//!
//! Every list is ordered and paginated by a cursor (the last row's sort key), never by offset,
//! so pages stay stable while new events land.

use domain::views::analytics::{Analytics, analytics};
use domain::views::audit_log::{AuditEntry, AuditedEvent};
use domain::views::experiments::{ExperimentRecord, ExperimentSummary};
use domain::views::results::RunResult;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use projection_lambdas::reads::{AuditFilter, ExperimentDetail, ExperimentFilter, Page, fold_case};

use crate::projector::ProjectionError;

/// The experiment with this id, if the read model has it.
pub fn experiment(
    conn: &Connection,
    id: &str,
) -> Result<Option<ExperimentDetail>, ProjectionError> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT record FROM view_experiments WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let record: ExperimentRecord = serde_json::from_str(&stored)?;
    let mut timeline = audit_log(
        conn,
        &AuditFilter {
            aggregate_id: Some(id.to_owned()),
            ..AuditFilter::default()
        },
        None,
        usize::MAX,
    )?;
    // Stream ids are unique per aggregate type only: an experiment may be called `platform`.
    timeline.retain(|e| e.aggregate_type == "Experiment");
    // The log's order, not the recording clock's (a wall clock can step back between events).
    timeline.sort_by_key(|e| e.sequence);
    Ok(Some(ExperimentDetail { record, timeline }))
}

/// Summaries already decoded, by experiment and version: a record of a given version never
/// changes, so a hit is exact. Lists read the same newest rows again and again; decoding a
/// record costs more than the rest of a row. Bounded: when full it starts over.
#[derive(Debug, Default)]
pub struct SummaryCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (i64, ExperimentSummary)>>,
}

impl SummaryCache {
    /// Most summaries kept.
    pub const CAPACITY: usize = 20_000;

    fn get(&self, id: &str, version: i64) -> Option<ExperimentSummary> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(id)
            .filter(|(v, _)| *v == version)
            .map(|(_, summary)| summary.clone())
    }

    fn put(&self, version: i64, summary: &ExperimentSummary) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(summary.id.clone(), (version, summary.clone()));
        }
    }
}

/// Column `i` of `row` as text, borrowed.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Experiments, newest first, `limit` at a time after `cursor`.
pub fn experiments(
    conn: &Connection,
    filter: &ExperimentFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<ExperimentSummary>, ProjectionError> {
    experiments_cached(conn, filter, cursor, limit, None)
}

/// [`experiments`], decoding only the records `cache` does not hold at their version.
pub fn experiments_cached(
    conn: &Connection,
    filter: &ExperimentFilter,
    cursor: Option<&str>,
    limit: usize,
    cache: Option<&SummaryCache>,
) -> Result<Page<ExperimentSummary>, ProjectionError> {
    let mut sql =
        String::from("SELECT record, created_at, id, version FROM view_experiments WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: String| {
        args.push(SqlValue::Text(value));
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(status) = &filter.status {
        bind(&mut sql, " AND status = ?", status.clone());
    }
    if let Some(target) = &filter.target {
        bind(
            &mut sql,
            " AND instr(lower(target), ?) > 0",
            fold_case(target),
        );
    }
    if let Some(from) = &filter.created_from {
        bind(&mut sql, " AND created_at >= ?", from.clone());
    }
    if let Some(to) = &filter.created_to {
        bind(&mut sql, " AND created_at < ?", to.clone());
    }
    if let Some(search) = &filter.search {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        bind(
            &mut sql,
            " AND name LIKE ? ESCAPE '\\'",
            format!("%{escaped}%"),
        );
    }
    if !filter.include_archived {
        sql.push_str(" AND archived = 0");
    }
    if let Some(cursor) = cursor {
        let (created_at, id) = cursor
            .split_once('|')
            .ok_or_else(|| ProjectionError::BadCursor(cursor.to_owned()))?;
        bind(
            &mut sql,
            " AND (created_at, id) < (?",
            created_at.to_owned(),
        );
        bind(&mut sql, ", ?)", id.to_owned());
    }
    let fetch = limit.saturating_add(1);
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {fetch}"));

    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(args.iter()))?;
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    let mut read = 0;
    while let Some(row) = rows.next()? {
        if read == limit {
            more = true;
            break;
        }
        read += 1;
        let created_at = text(row, 1)?;
        let id = text(row, 2)?;
        let version: i64 = row.get(3)?;
        let cached = cache.and_then(|c| c.get(id, version));
        let summary = match cached {
            Some(summary) => Some(summary),
            None => {
                let record: ExperimentRecord = serde_json::from_str(text(row, 0)?)?;
                let summary = record.summary();
                if let (Some(cache), Some(summary)) = (cache, &summary) {
                    cache.put(version, summary);
                }
                summary
            }
        };
        if let Some(summary) = summary {
            items.push(summary);
        }
        last_key = Some(format!("{created_at}|{id}"));
    }
    let next = if more { last_key } else { None };
    Ok(Page { items, next })
}

/// Every finished run, oldest first.
pub fn results(conn: &Connection) -> Result<Vec<RunResult>, ProjectionError> {
    let mut statement =
        conn.prepare_cached("SELECT result FROM view_results ORDER BY ended_at, experiment_id")?;
    let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

/// Analytics over every finished run.
pub fn run_analytics(conn: &Connection) -> Result<Analytics, ProjectionError> {
    Ok(analytics(&results(conn)?))
}

/// Audit entries matching `filter`, in recording order (or its reverse, newest first),
/// `limit` at a time after the entry `(recorded_at, aggregate_id, sequence)` given as `after`
/// in that order.
pub fn audit_log(
    conn: &Connection,
    filter: &AuditFilter,
    after: Option<(&str, &str, u64)>,
    limit: usize,
) -> Result<Vec<AuditEntry>, ProjectionError> {
    // The entry's metadata (ids, role, source, chain hashes) is read from the log itself, not
    // copied into the read model: what an entry shows of the chain is what the log holds.
    let mut sql = String::from(
        "SELECT a.aggregate_type, a.aggregate_id, a.sequence, a.event_type, a.action, a.at, e.metadata \
         FROM view_audit_log a JOIN events e ON e.aggregate_type = a.aggregate_type \
         AND e.aggregate_id = a.aggregate_id AND e.sequence = a.sequence WHERE 1 = 1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(actor) = &filter.actor {
        // `instr`, not `LIKE`: what the user typed is text, never a pattern.
        push(
            &mut sql,
            " AND instr(lower(a.actor), ?) > 0",
            SqlValue::Text(fold_case(actor)),
        );
    }
    if let Some(id) = &filter.aggregate_id {
        push(
            &mut sql,
            " AND a.aggregate_id = ?",
            SqlValue::Text(id.clone()),
        );
    }
    if let Some(from) = &filter.from {
        push(
            &mut sql,
            " AND a.recorded_at >= ?",
            SqlValue::Text(from.clone()),
        );
    }
    if let Some(to) = &filter.to {
        push(
            &mut sql,
            " AND a.recorded_at < ?",
            SqlValue::Text(to.clone()),
        );
    }
    if let Some((recorded_at, id, sequence)) = after {
        let beyond = if filter.newest_first { "<" } else { ">" };
        push(
            &mut sql,
            &format!(" AND (a.recorded_at, a.aggregate_id, a.sequence) {beyond} (?"),
            SqlValue::Text(recorded_at.to_owned()),
        );
        push(&mut sql, ", ?", SqlValue::Text(id.to_owned()));
        push(
            &mut sql,
            ", ?)",
            SqlValue::Integer(i64::try_from(sequence).unwrap_or(i64::MAX)),
        );
    }
    sql.push_str(if filter.newest_first {
        " ORDER BY a.recorded_at DESC, a.aggregate_id DESC, a.sequence DESC"
    } else {
        " ORDER BY a.recorded_at, a.aggregate_id, a.sequence"
    });
    if limit != usize::MAX {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok((
            AuditedRow {
                aggregate_type: r.get(0)?,
                aggregate_id: r.get(1)?,
                sequence: r.get(2)?,
                event_type: r.get(3)?,
                action: r.get(4)?,
                at: r.get(5)?,
            },
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (row, metadata) = row?;
        let at = row
            .at
            .parse()
            .map_err(|_| ProjectionError::BadTime(row.at.clone()))?;
        let event = AuditedEvent {
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: u64::try_from(row.sequence).unwrap_or(0),
            event_type: row.event_type,
            action: row.action,
            at,
        };
        out.push(AuditEntry::of_parts(
            event,
            serde_json::from_str(&metadata)?,
        ));
    }
    Ok(out)
}

/// An audit log row as stored.
struct AuditedRow {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    action: String,
    at: String,
}

/// A record the projector could not apply yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Parked {
    /// Row of the event.
    pub event_rowid: i64,
    /// Stream.
    pub aggregate_id: String,
    /// Its sequence.
    pub sequence: i64,
    /// Why.
    pub reason: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Every parked record.
pub fn parked(conn: &Connection) -> Result<Vec<Parked>, ProjectionError> {
    let mut statement = conn.prepare_cached(
        "SELECT event_rowid, aggregate_id, sequence, reason, attempts FROM projection_parked ORDER BY event_rowid",
    )?;
    let rows = statement.query_map(params![], |r| {
        Ok(Parked {
            event_rowid: r.get(0)?,
            aggregate_id: r.get(1)?,
            sequence: r.get(2)?,
            reason: r.get(3)?,
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Where the read models are in the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    /// Last event row the projector has read.
    pub position: i64,
    /// Last event row in the log.
    pub head: i64,
    /// Events appended and not read yet.
    pub behind: i64,
    /// Records waiting (poison records and what queues behind them).
    pub parked: Vec<Parked>,
}

/// The projector's position against the log.
pub fn status(conn: &Connection) -> Result<ProjectionStatus, ProjectionError> {
    let position: i64 = conn
        .query_row(
            "SELECT position FROM projection_feed WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let head: i64 = conn.query_row("SELECT coalesce(max(rowid), 0) FROM events", [], |r| {
        r.get(0)
    })?;
    Ok(ProjectionStatus {
        position,
        head,
        behind: (head - position).max(0),
        parked: parked(conn)?,
    })
}
