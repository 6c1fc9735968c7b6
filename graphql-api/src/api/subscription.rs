//! Live updates over WebSocket (`graphql-transport-ws`, on `/graphql`): one experiment's
//! events, and the platform's activity. Both come from the log through [`crate::feed`]: in
//! order, each once, with no gap, and resumable from a known position.

use async_graphql::{Context, ID, Json, Result, SimpleObject, Subscription};
use cqrs_es::Aggregate;
use domain::experiment::Experiment;
use domain::provenance::Role;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentRecord;
use domain::views::{AnyEvent, Envelope};
use futures::{Stream, StreamExt};

use super::types::{AuditEntryNode, ExperimentNode, failure_of};
use super::{ApiContext, coded, require};
use crate::feed::{FeedError, FeedItem};

/// The root of subscriptions.
#[derive(Debug, Default)]
pub struct Subscription;

/// One event of an experiment, with the experiment's state after it.
#[derive(Debug, Clone, SimpleObject)]
pub struct ExperimentUpdate {
    /// The experiment.
    pub experiment_id: ID,
    /// The event's position in the experiment's stream (from 1, no gaps).
    pub sequence: i64,
    /// Its type (`FailureInjected`, ...).
    pub event_type: String,
    /// What happened, in words.
    pub summary: String,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// The experiment's status after it (`RUNNING`, `COMPLETED`, ...).
    pub status: String,
    /// Its phase while running (`INJECTING`, ...).
    pub phase: Option<String>,
    /// Whether the run has ended with it: no update follows but archiving.
    pub ended: bool,
    /// The event as stored (its payload).
    pub event: Json<serde_json::Value>,
    /// The experiment after this event, as the `experiment` query shows it: the read model's
    /// own fold of the same events, so a page that read the experiment replaces what it shows
    /// with this, field for field.
    pub experiment: ExperimentNode,
    /// Why it failed (`CODE: message`), when it did, as the `experiment` query says.
    pub failure: Option<String>,
    /// Why a stop was requested or tripped, when one was, as the `experiment` query says.
    pub stop_reason: Option<String>,
    /// The event as the experiment's timeline (the audit log) records it.
    pub entry: AuditEntryNode,
}

/// One event anywhere on the platform.
#[derive(Debug, Clone, SimpleObject)]
pub struct ActivityUpdate {
    /// Its position in the log: resume after it with `platformActivity(after: ...)`. Null on
    /// AWS, whose event log has no global order.
    pub position: Option<String>,
    /// `Experiment` or `Platform`.
    pub stream_type: String,
    /// The stream: an experiment id, or `platform`.
    pub stream_id: String,
    /// The event's position in its stream.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// What happened, in words (or why the stored record cannot be read).
    pub summary: String,
    /// When (RFC 3339), if the record can be read.
    pub at: Option<String>,
    /// Who, if the record can be read.
    pub actor: Option<String>,
    /// The outcome this event announces, as notification preferences name them (`COMPLETED`,
    /// `NOT_RECOVERED`, `FAILED`, `STOPPED`, `HALTED`); null for any other event.
    pub announces: Option<String>,
}

fn upper(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
        .to_uppercase()
}

fn activity(item: &FeedItem) -> ActivityUpdate {
    let (summary, at, actor, announces) = match &item.decoded {
        Ok(envelope) => (
            envelope.describe(),
            Some(envelope.at().to_string()),
            Some(envelope.metadata.actor.clone()),
            crate::settings::announces(&envelope.event).map(str::to_owned),
        ),
        Err(why) => (
            format!("the stored record cannot be read: {why}"),
            None,
            None,
            None,
        ),
    };
    ActivityUpdate {
        position: item.position.map(|p| p.to_string()),
        stream_type: item.aggregate_type.clone(),
        stream_id: item.aggregate_id.clone(),
        sequence: item.sequence,
        event_type: item.event_type.clone(),
        summary,
        at,
        actor,
        announces,
    }
}

/// The update of one event, with `record`, the read model's record of the experiment after it
/// (`None` if the stream has no `ExperimentCreated` to fold from: it cannot be shown).
fn update(id: &str, envelope: &Envelope, record: &ExperimentRecord) -> Option<ExperimentUpdate> {
    let event = match &envelope.event {
        AnyEvent::Experiment(e) => serde_json::to_value(e).unwrap_or_default(),
        AnyEvent::Platform(e) => serde_json::to_value(e).unwrap_or_default(),
    };
    let experiment = record.summary()?;
    let state = &record.state;
    Some(ExperimentUpdate {
        experiment_id: ID(id.to_owned()),
        sequence: i64::try_from(envelope.sequence).unwrap_or(i64::MAX),
        event_type: envelope.event_type(),
        summary: envelope.describe(),
        at: envelope.at().to_string(),
        actor: envelope.metadata.actor.clone(),
        status: upper(state.status()),
        phase: state.phase().map(upper),
        ended: state.status().is_terminal(),
        event: Json(event),
        experiment: experiment.into(),
        failure: failure_of(record),
        stop_reason: record.stop_reason.clone(),
        entry: AuditEntry::from_envelope(envelope).into(),
    })
}

/// The update of `envelope`, or why the experiment cannot be shown after it.
fn next_update(
    id: &str,
    envelope: &Envelope,
    record: Option<&ExperimentRecord>,
) -> Result<ExperimentUpdate> {
    record
        .and_then(|record| update(id, envelope, record))
        .ok_or_else(|| {
            unreadable(
                id,
                i64::try_from(envelope.sequence).unwrap_or(i64::MAX),
                "its stream does not begin with ExperimentCreated",
            )
        })
}

/// `record` with `envelope` folded in, as the experiments read model folds it.
fn fold(record: Option<ExperimentRecord>, envelope: &Envelope) -> Option<ExperimentRecord> {
    match &envelope.event {
        AnyEvent::Experiment(e) => Some(ExperimentRecord::apply(record, envelope, e)),
        AnyEvent::Platform(_) => record,
    }
}

/// Why event `sequence` of `id` cannot be delivered.
fn unreadable(id: &str, sequence: i64, why: &str) -> async_graphql::Error {
    coded(
        "CORRUPT",
        format!("event {sequence} of {id} cannot be read: {why}"),
    )
}

#[Subscription]
impl Subscription {
    /// One experiment's events as they are recorded, each with the experiment after it as the
    /// `experiment` query shows it and its timeline entry. With `afterSequence`, the events after that one come first (0: all of them), so a
    /// client that read the experiment at version N misses nothing by subscribing after N.
    /// Ends after the run ends (at once if it had ended and nothing is to be replayed).
    async fn experiment_updates(
        &self,
        ctx: &Context<'_>,
        id: ID,
        after_sequence: Option<i64>,
    ) -> Result<impl Stream<Item = Result<ExperimentUpdate>> + use<>> {
        require(ctx, Role::Viewer)?;
        let api = ctx.data::<ApiContext>()?;
        let feed = api.backend.feed().clone();
        // The stream so far (bounded by design), folded to the current state.
        let stored = feed
            .history(Experiment::TYPE, id.as_str())
            .await
            .map_err(feed_error)?;
        let Some(newest) = stored.last().cloned() else {
            return Err(coded("NOT_FOUND", format!("no experiment {}", id.as_str())));
        };
        let after = after_sequence.unwrap_or(i64::MAX);
        let mut record = None;
        let mut replay = Vec::new();
        for item in stored {
            let envelope = item
                .decoded
                .map_err(|why| unreadable(id.as_str(), item.sequence, &why))?;
            record = fold(record, &envelope);
            if item.sequence > after {
                replay.push(next_update(id.as_str(), &envelope, record.as_ref()));
            }
        }
        let ended = record
            .as_ref()
            .is_some_and(|r| r.state.status().is_terminal());
        tracing::debug!(
            experiment = id.as_str(),
            after = after_sequence,
            stored = newest.sequence,
            position = newest.position,
            replayed = replay.len(),
            ended,
            "experimentUpdates subscribed"
        );
        let experiment_id = id.to_string();
        // Follows the log until the run ends: the update that ends it is the last.
        let live = futures::stream::unfold(
            (
                feed.follow_stream(Experiment::TYPE, id.as_str(), Some(&newest)),
                record,
                ended,
            ),
            move |(mut items, mut record, ended)| {
                let experiment_id = experiment_id.clone();
                async move {
                    if ended {
                        return None;
                    }
                    let next = match items.next().await? {
                        Err(e) => Err(feed_error(e)),
                        Ok(item) => match item.decoded {
                            Err(why) => Err(unreadable(&experiment_id, item.sequence, &why)),
                            Ok(envelope) => {
                                record = fold(record, &envelope);
                                next_update(&experiment_id, &envelope, record.as_ref())
                            }
                        },
                    };
                    let ended = next.as_ref().map_or(true, |update| update.ended);
                    match &next {
                        Ok(update) => tracing::debug!(
                            experiment = experiment_id.as_str(),
                            sequence = update.sequence,
                            ended,
                            "experimentUpdates delivers"
                        ),
                        Err(e) => tracing::debug!(
                            experiment = experiment_id.as_str(),
                            error = e.message.as_str(),
                            "experimentUpdates fails"
                        ),
                    }
                    Some((next, (items, record, ended)))
                }
            },
        );
        Ok(futures::stream::iter(replay).chain(live))
    }

    /// Every event on the platform as it is recorded: experiments' and the platform's own.
    /// With `after` (a `position` from an earlier update, or "0" for the whole log), the
    /// events after it come first (embedded only: on AWS the log has no global order, and
    /// each stream's events come in order).
    async fn platform_activity(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ActivityUpdate>> + use<>> {
        require(ctx, Role::Viewer)?;
        let feed = ctx.data::<ApiContext>()?.backend.feed().clone();
        let items = feed.activity(after.as_deref()).await.map_err(feed_error)?;
        Ok(items.map(|item| item.map(|item| activity(&item)).map_err(feed_error)))
    }
}

/// A feed failure as a coded error.
fn feed_error(e: FeedError) -> async_graphql::Error {
    coded(e.code(), e.to_string())
}
