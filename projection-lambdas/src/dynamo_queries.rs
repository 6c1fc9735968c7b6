//! Reads of the AWS read models (the DynamoDB table [`dynamo_stream`](crate::dynamo_stream)
//! keeps), for the API: the answers the embedded read models give from SQLite, from
//! DynamoDB.
//!
//! No common path scans the table. The experiments list queries the [`BY_STATUS`] index, the
//! status asked for or every status at once, merged newest first; the audit log and the
//! results query the [`BY_FEED`] index; an experiment, and the audit log of one stream, read
//! that stream's own partition. Every query follows `LastEvaluatedKey`.
//!
//! What an index cannot say (target, name search, archived, exclusive bounds, cursors) is
//! decided here on each row, exactly as `queries.rs` says it in SQL, and reading goes on
//! until a page is full. The orders are the same too: the lists by `(created_at, id)`,
//! the audit log by `(recorded_at, aggregate_id, sequence)`, the results by
//! `(ended_at, experiment_id)`, all compared as bytes, as SQLite compares text. `CreatedAt`
//! ties are not ordered by the index, so a list reads every row tied with the last one it
//! keeps before it sorts.
//!
//! This module only reads; it never writes a row.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::experiment::Status;
use domain::views::analytics::{Analytics, analytics};
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::{ExperimentRecord, ExperimentSummary};
use domain::views::results::RunResult;

use dynamo_tables::views::{
    AUDIT_FEED, AUDIT_PREFIX, BY_FEED, BY_STATUS, CREATED_AT, FEED, FEED_KEY, PK, RECORD,
    RESULT_FEED, SK, STATUS, audit_feed_prefix, experiment_partition, stream_partition,
};

use crate::dynamo_stream::serde_name;
use crate::reads::{AuditFilter, ExperimentDetail, ExperimentFilter, Page, fold_case};

/// Why a read of the DynamoDB read models failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A cursor this API did not give out.
    #[error("cursor {0:?} is not one this API gave out")]
    BadCursor(String),
    /// DynamoDB refused or could not be reached.
    #[error("DynamoDB: {0}")]
    Api(String),
    /// A stored row does not decode.
    #[error("read model row {key}: {reason}")]
    Row {
        /// Its key, `Pk/Sk`.
        key: String,
        /// Why.
        reason: String,
    },
}

fn api<E: std::error::Error>(e: E) -> ReadError {
    ReadError::Api(DisplayErrorContext(e).to_string())
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn row_error(item: &Item, reason: String) -> ReadError {
    ReadError::Row {
        key: format!(
            "{}/{}",
            text(item, PK).unwrap_or("?"),
            text(item, SK).unwrap_or("?")
        ),
        reason,
    }
}

/// The JSON attribute `name` of a row.
fn json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T, ReadError> {
    let value = text(item, name).ok_or_else(|| row_error(item, format!("{name} is missing")))?;
    serde_json::from_str(value).map_err(|e| row_error(item, format!("{name}: {e}")))
}

/// The aggregate types whose streams have partitions (`{type}#{id}`).
const AGGREGATE_TYPES: [&str; 2] = ["Experiment", "Platform"];

/// Every status, by the name `Status` attributes hold.
fn status_names() -> Vec<String> {
    // Exhaustive on purpose: a new status stops this compiling until it is listed here too.
    let listed = |status: Status| match status {
        Status::New
        | Status::Draft
        | Status::Scheduled
        | Status::Running
        | Status::Completed
        | Status::Failed
        | Status::Stopped
        | Status::Cancelled => status,
    };
    [
        Status::New,
        Status::Draft,
        Status::Scheduled,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Stopped,
        Status::Cancelled,
    ]
    .into_iter()
    .map(|status| serde_name(&listed(status)))
    .collect()
}

/// Most items asked of DynamoDB in one page.
const MAX_PAGE: usize = 1_000;

/// The items of one query, a page at a time: the first page asks for what the caller needs,
/// each next one for twice as many (up to [`MAX_PAGE`]), so a selective filter does not cost
/// a round trip per row, nor an unfiltered page a megabyte.
struct Pages {
    query: QueryFluentBuilder,
    start: Option<Item>,
    size: usize,
    done: bool,
}

impl Pages {
    fn new(query: QueryFluentBuilder, need: usize) -> Self {
        Self {
            query,
            start: None,
            size: need.clamp(1, MAX_PAGE),
            done: false,
        }
    }

    /// The next page's items; `None` once the query has no more.
    async fn next(&mut self) -> Result<Option<Vec<Item>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .query
            .clone()
            .limit(i32::try_from(self.size).unwrap_or(i32::MAX))
            .set_exclusive_start_key(self.start.take())
            .send()
            .await
            .map_err(api)?;
        self.size = (self.size * 2).min(MAX_PAGE);
        self.start = page.last_evaluated_key;
        self.done = self.start.is_none();
        Ok(Some(page.items.unwrap_or_default()))
    }
}

/// An experiment as the list sees it.
struct Listed {
    /// `summary.created_at` as text, as the list orders and bounds it.
    created_at: String,
    summary: ExperimentSummary,
}

impl Listed {
    /// The list row of a `record` row: its `Summary`, or, on a row written before rows had
    /// one, the summary of its `Record`. `None` for a record without a spec (never written).
    fn of(item: &Item) -> Result<Option<Self>, ReadError> {
        let summary = if item.contains_key("Summary") {
            Some(json::<ExperimentSummary>(item, "Summary")?)
        } else {
            json::<ExperimentRecord>(item, "Record")?.summary()
        };
        Ok(summary.map(|summary| Self {
            created_at: summary.created_at.to_string(),
            summary,
        }))
    }

    fn cursor(&self) -> String {
        format!("{}|{}", self.created_at, self.summary.id)
    }
}

/// What a listed experiment must be besides its status: the `WHERE` of `queries::experiments`.
struct ListFilter<'a> {
    target: Option<&'a str>,
    created_from: Option<&'a str>,
    created_to: Option<&'a str>,
    /// The search, ASCII lowercase: `LIKE` folds the case of ASCII letters only.
    search: Option<String>,
    include_archived: bool,
    /// `(created_at, id)` of the cursor: only rows before it.
    before: Option<(&'a str, &'a str)>,
}

impl ListFilter<'_> {
    fn accepts(&self, listed: &Listed) -> bool {
        let s = &listed.summary;
        let created_at = listed.created_at.as_str();
        self.target
            .is_none_or(|t| fold_case(&s.target).contains(&fold_case(t)))
            && self.created_from.is_none_or(|from| created_at >= from)
            && self.created_to.is_none_or(|to| created_at < to)
            && self
                .search
                .as_deref()
                .is_none_or(|search| s.name.to_ascii_lowercase().contains(search))
            && (self.include_archived || !s.archived)
            && self
                .before
                .is_none_or(|before| (created_at, s.id.as_str()) < before)
    }

    /// Inclusive bounds on `CreatedAt` for the key condition (the exact tests are
    /// [`Self::accepts`]); `None` when no row can match.
    fn created_at_bounds(&self) -> Option<(Option<&str>, Option<&str>)> {
        // `created_at >= ""` holds for every row: no bound.
        let low = self.created_from.filter(|from| !from.is_empty());
        let high = match (self.created_to, self.before.map(|(c, _)| c)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (low, high) {
            // Below "" (exclusive) or at-or-before ("", id): no stored `created_at` is empty.
            (_, Some("")) => None,
            (Some(low), Some(high)) if low > high => None,
            bounds => Some(bounds),
        }
    }
}

/// The rows of one status a list page may need, offered newest first: the first `need` that
/// the filter accepts, and every accepted row created at the same instant as the last of them
/// (the index does not order rows with equal `CreatedAt`; the page sorts them).
struct Newest<'f> {
    wanted: &'f ListFilter<'f>,
    need: usize,
    rows: Vec<Listed>,
    /// `created_at` of the `need`th row, once there is one.
    last: Option<String>,
}

impl<'f> Newest<'f> {
    fn new(wanted: &'f ListFilter<'f>, need: usize) -> Self {
        Self {
            wanted,
            need,
            rows: Vec::new(),
            last: None,
        }
    }

    /// Takes the next row; `false` when no row after it can be needed.
    fn offer(&mut self, listed: Listed) -> bool {
        if self
            .last
            .as_ref()
            .is_some_and(|last| listed.created_at < *last)
        {
            return false;
        }
        if self.wanted.accepts(&listed) {
            self.rows.push(listed);
            if self.rows.len() == self.need {
                self.last = self.rows.last().map(|l| l.created_at.clone());
            }
        }
        true
    }
}

/// The page of `limit` newest of `rows` (from any statuses, in any order), and the cursor
/// after it when there are more.
fn page_of(mut rows: Vec<Listed>, limit: usize) -> Page<ExperimentSummary> {
    rows.sort_by(|a, b| {
        (&b.created_at, &b.summary.id, b.summary.version).cmp(&(
            &a.created_at,
            &a.summary.id,
            a.summary.version,
        ))
    });
    // A row read in two statuses while its status changed: the later version stays.
    rows.dedup_by(|later, kept| later.summary.id == kept.summary.id);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(Listed::cursor)
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|l| l.summary).collect(),
        next,
    }
}

/// The read models in the DynamoDB table `dynamo_stream` keeps, read as `queries` reads the
/// embedded ones.
#[derive(Debug, Clone)]
pub struct DynamoReads {
    client: Client,
    table: String,
}

impl DynamoReads {
    /// The reads of `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// Every item of a query, page after page.
    async fn all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, ReadError> {
        let mut out = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(api)?);
        }
        Ok(out)
    }

    /// Every audit entry of one partition (`{type}#{id}`), in sequence order.
    async fn stream_entries(&self, pk: String) -> Result<Vec<AuditEntry>, ReadError> {
        let items = self
            .all(
                self.query()
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :audit)")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(pk))
                    .expression_attribute_values(":audit", s(AUDIT_PREFIX)),
            )
            .await?;
        let mut entries = items
            .iter()
            .map(|item| json::<AuditEntry>(item, "Entry"))
            .collect::<Result<Vec<_>, _>>()?;
        // `Sk` is already in this order while sequences have at most ten digits.
        entries.sort_by_key(|e| e.sequence);
        Ok(entries)
    }

    /// The experiment with this id and its timeline (its audit entries in sequence order),
    /// if the read model has it: the answer of `queries::experiment`.
    pub async fn experiment(&self, id: &str) -> Result<Option<ExperimentDetail>, ReadError> {
        let pk = experiment_partition(id);
        let record = async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(RECORD))
                .send()
                .await
                .map_err(api)
        };
        let (record, timeline) = futures::try_join!(record, self.stream_entries(pk.clone()))?;
        let Some(item) = record.item else {
            return Ok(None);
        };
        Ok(Some(ExperimentDetail {
            record: json(&item, "Record")?,
            timeline,
        }))
    }

    /// Experiments, newest first (`created_at` then `id`, descending), `limit` at a time after
    /// `cursor` (`created_at|id`, as the last page's `next` gave it): the answer of
    /// `queries::experiments` for the same filter, cursor and limit.
    pub async fn experiments(
        &self,
        filter: &ExperimentFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ReadError> {
        let before = cursor
            .map(|c| {
                c.split_once('|')
                    .ok_or_else(|| ReadError::BadCursor(c.to_owned()))
            })
            .transpose()?;
        let wanted = ListFilter {
            target: filter.target.as_deref(),
            created_from: filter.created_from.as_deref(),
            created_to: filter.created_to.as_deref(),
            search: filter.search.as_deref().map(str::to_ascii_lowercase),
            include_archived: filter.include_archived,
            before,
        };
        let empty = Page {
            items: Vec::new(),
            next: None,
        };
        let Some(bounds) = wanted.created_at_bounds() else {
            return Ok(empty);
        };
        let statuses = match &filter.status {
            // An empty key value is refused by DynamoDB; no row has that status anyway.
            Some(status) if status.is_empty() => return Ok(empty),
            Some(status) => vec![status.clone()],
            None => status_names(),
        };
        let need = limit.saturating_add(1);
        let newest = statuses
            .iter()
            .map(|status| self.newest_in(status, bounds, &wanted, need));
        let rows: Vec<Listed> = futures::future::try_join_all(newest)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(page_of(rows, limit))
    }

    /// The rows of `status` a page may need (see [`Newest`]).
    async fn newest_in(
        &self,
        status: &str,
        (low, high): (Option<&str>, Option<&str>),
        wanted: &ListFilter<'_>,
        need: usize,
    ) -> Result<Vec<Listed>, ReadError> {
        let condition = match (low, high) {
            (Some(_), Some(_)) => "#status = :status AND #created BETWEEN :low AND :high",
            (Some(_), None) => "#status = :status AND #created >= :low",
            (None, Some(_)) => "#status = :status AND #created <= :high",
            (None, None) => "#status = :status",
        };
        let mut query = self
            .query()
            .index_name(BY_STATUS)
            .scan_index_forward(false)
            .key_condition_expression(condition)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":status", s(status));
        if low.is_some() || high.is_some() {
            query = query.expression_attribute_names("#created", CREATED_AT);
        }
        if let Some(low) = low {
            query = query.expression_attribute_values(":low", s(low));
        }
        if let Some(high) = high {
            query = query.expression_attribute_values(":high", s(high));
        }
        let mut pages = Pages::new(query, need);
        let mut newest = Newest::new(wanted, need);
        while let Some(items) = pages.next().await? {
            for item in &items {
                let Some(listed) = Listed::of(item)? else {
                    continue;
                };
                if !newest.offer(listed) {
                    return Ok(newest.rows);
                }
            }
        }
        Ok(newest.rows)
    }

    /// Every finished run, oldest first (`ended_at`, then `experiment_id`): the answer of
    /// `queries::results`.
    pub async fn results(&self) -> Result<Vec<RunResult>, ReadError> {
        let items = self
            .all(
                self.query()
                    .index_name(BY_FEED)
                    .key_condition_expression("#feed = :feed")
                    .expression_attribute_names("#feed", FEED)
                    .expression_attribute_values(":feed", s(RESULT_FEED)),
            )
            .await?;
        let mut results = items
            .iter()
            .map(|item| json::<RunResult>(item, "Result"))
            .collect::<Result<Vec<_>, _>>()?;
        // The index is in this order already; sorting here makes it exact whatever the ids.
        results.sort_by_cached_key(|r| (r.ended_at.to_string(), r.experiment_id.clone()));
        Ok(results)
    }

    /// Analytics over every finished run: the answer of `queries::run_analytics`.
    pub async fn analytics(&self) -> Result<Analytics, ReadError> {
        Ok(analytics(&self.results().await?))
    }

    /// Audit entries matching `filter`, in `(recorded_at, aggregate_id, sequence)` order,
    /// `limit` at a time after the entry `after` names: the answer of `queries::audit_log`.
    ///
    /// Filtered by stream, it reads that stream's partitions; otherwise the audit feed of
    /// [`BY_FEED`] from the first entry that can match, and only as far as it must.
    pub async fn audit_log(
        &self,
        filter: &AuditFilter,
        after: Option<(&str, &str, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match &filter.aggregate_id {
            Some(id) => self.audit_log_of(id, filter, after, limit).await,
            None => self.audit_feed(filter, after, limit).await,
        }
    }

    /// The audit log of the streams called `id` (an experiment, or the platform; both, for an
    /// experiment called `platform`).
    async fn audit_log_of(
        &self,
        id: &str,
        filter: &AuditFilter,
        after: Option<(&str, &str, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadError> {
        let streams = AGGREGATE_TYPES
            .iter()
            .map(|aggregate_type| self.stream_entries(stream_partition(aggregate_type, id)));
        let mut entries: Vec<AuditEntry> = futures::future::try_join_all(streams)
            .await?
            .into_iter()
            .flatten()
            .filter(|e| audit_accepts(filter, after, e))
            .collect();
        // The recording clock's order, as the embedded log's (not the stream's: a wall clock
        // can step back between two events).
        entries.sort_by(|a, b| audit_order(a).cmp(&audit_order(b)));
        if filter.newest_first {
            entries.reverse();
        }
        entries.truncate(limit);
        Ok(entries)
    }

    /// The audit log of every stream, from the audit feed: forwards, or read backwards for
    /// newest first.
    async fn audit_feed(
        &self,
        filter: &AuditFilter,
        after: Option<(&str, &str, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadError> {
        let forwards = !filter.newest_first;
        // Where reading starts, as a bound on `FeedKey` for each of two filters; the tighter
        // one holds. Forwards, from `from` and `after` (`{recorded_at}#{id}` sorts at or
        // before every key of an entry after `after`). Backwards, from `to` (every key of an
        // entry recorded before `to` sorts before it: the times have one length) and `after`
        // (every key of an entry before it sorts at or before `{recorded_at}#{id}#` followed
        // by the highest character).
        let bounds = if forwards {
            [
                filter.from.clone(),
                after.map(|(recorded_at, id, _)| audit_feed_prefix(recorded_at, id)),
            ]
        } else {
            [
                filter.to.clone(),
                after.map(|(recorded_at, id, _)| {
                    format!("{}#\u{10FFFF}", audit_feed_prefix(recorded_at, id))
                }),
            ]
        };
        let bounds = bounds.into_iter().flatten().filter(|b| !b.is_empty());
        let start = if forwards { bounds.max() } else { bounds.min() };
        let mut query = self
            .query()
            .index_name(BY_FEED)
            .scan_index_forward(forwards)
            .expression_attribute_names("#feed", FEED)
            .expression_attribute_values(":feed", s(AUDIT_FEED));
        query = match start {
            Some(start) => query
                .key_condition_expression(if forwards {
                    "#feed = :feed AND #key >= :start"
                } else {
                    "#feed = :feed AND #key <= :start"
                })
                .expression_attribute_names("#key", FEED_KEY)
                .expression_attribute_values(":start", s(start)),
            None => query.key_condition_expression("#feed = :feed"),
        };
        // The feed is in `recorded_at` order: past the far end of the range, nothing further
        // can be in it.
        let beyond = |entry: &AuditEntry| {
            if forwards {
                filter
                    .to
                    .as_ref()
                    .is_some_and(|to| entry.recorded_at >= *to)
            } else {
                filter
                    .from
                    .as_ref()
                    .is_some_and(|from| entry.recorded_at < *from)
            }
        };
        let mut pages = Pages::new(query, limit);
        let mut out = Vec::new();
        while let Some(items) = pages.next().await? {
            for item in &items {
                let entry: AuditEntry = json(item, "Entry")?;
                if beyond(&entry) {
                    return Ok(out);
                }
                if audit_accepts(filter, after, &entry) {
                    out.push(entry);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The order of the audit log.
fn audit_order(e: &AuditEntry) -> (&str, &str, u64) {
    (&e.recorded_at, &e.aggregate_id, e.sequence)
}

/// Whether `e` is in the audit log `filter` and `after` ask for: the `WHERE` of
/// `queries::audit_log`.
fn audit_accepts(filter: &AuditFilter, after: Option<(&str, &str, u64)>, e: &AuditEntry) -> bool {
    let beyond = |after| {
        if filter.newest_first {
            audit_order(e) < after
        } else {
            audit_order(e) > after
        }
    };
    filter
        .actor
        .as_ref()
        .is_none_or(|actor| fold_case(&e.actor).contains(&fold_case(actor)))
        && filter
            .aggregate_id
            .as_ref()
            .is_none_or(|id| e.aggregate_id == *id)
        && filter
            .from
            .as_ref()
            .is_none_or(|from| e.recorded_at >= *from)
        && filter.to.as_ref().is_none_or(|to| e.recorded_at < *to)
        && after.is_none_or(beyond)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter<'a>(
        from: Option<&'a str>,
        to: Option<&'a str>,
        before: Option<(&'a str, &'a str)>,
    ) -> ListFilter<'a> {
        ListFilter {
            target: None,
            created_from: from,
            created_to: to,
            search: None,
            include_archived: false,
            before,
        }
    }

    #[test]
    fn created_at_bounds_are_the_tightest_the_key_condition_can_carry() {
        let a = "2026-11-26T10:00:00.000Z";
        let b = "2026-11-27T10:00:00.000Z";
        assert_eq!(
            filter(None, None, None).created_at_bounds(),
            Some((None, None))
        );
        assert_eq!(
            filter(Some(a), Some(b), Some((a, "x"))).created_at_bounds(),
            Some((Some(a), Some(a)))
        );
        assert_eq!(
            filter(Some(""), Some(b), None).created_at_bounds(),
            Some((None, Some(b)))
        );
        assert_eq!(filter(Some(b), Some(a), None).created_at_bounds(), None);
        assert_eq!(filter(None, Some(""), None).created_at_bounds(), None);
        assert_eq!(
            filter(None, None, Some(("", "x"))).created_at_bounds(),
            None
        );
    }

    fn listed(created_at: &str, id: &str) -> Listed {
        let summary: ExperimentSummary = serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "target": "fleet:web", "target_kind": "LOCAL_FLEET",
            "failure_type": "TERMINATE", "dry_run": false, "status": "COMPLETED", "phase": null,
            "archived": false, "outcome": null, "recovery_ms": null, "created_at": created_at,
            "created_by": "alice", "start_at": null, "started_at": null, "ended_at": null,
            "updated_at": created_at, "version": 1
        }))
        .expect("summary");
        Listed {
            created_at: summary.created_at.to_string(),
            summary,
        }
    }

    #[test]
    fn a_status_keeps_every_row_tied_with_the_last_one_a_page_needs() {
        let a = "2026-11-26T10:00:00.000Z";
        let b = "2026-11-26T10:00:01.000Z";
        let wanted = filter(None, None, None);
        let mut newest = Newest::new(&wanted, 2);
        // Newest first, ties in no particular order (here ascending, as DynamoDB may give them).
        for (created_at, id) in [(b, "e-1"), (b, "e-10"), (b, "e-100")] {
            assert!(newest.offer(listed(created_at, id)));
        }
        assert!(
            !newest.offer(listed(a, "e-9")),
            "an older row is never needed"
        );
        let ids: Vec<_> = newest.rows.iter().map(|l| l.summary.id.as_str()).collect();
        assert_eq!(ids, ["e-1", "e-10", "e-100"]);

        let page = page_of(newest.rows, 1);
        assert_eq!(page.items[0].id, "e-100");
        assert_eq!(page.next, Some(format!("{b}|e-100")));
        let rows = vec![listed(a, "x"), listed(b, "e-1"), listed(b, "e-10")];
        let page = page_of(rows, 3);
        let ids: Vec<_> = page.items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["e-10", "e-1", "x"]);
        assert_eq!(page.next, None);
        assert_eq!(page_of(vec![listed(a, "x")], 0).next, None);
    }

    #[test]
    fn every_status_is_listed_once_by_its_attribute_name() {
        let names = status_names();
        assert_eq!(names.len(), 8);
        assert!(names.contains(&"COMPLETED".to_owned()));
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
