//! The pure core of the chaos platform.
//!
//! Everything here is deterministic: no I/O, no clock reads, no random ids. Time, ids and
//! looked-up facts (is the platform halted? how many targets matched?) arrive inside commands
//! or command metadata, decided at the edge. That is what makes every decision replayable from
//! the event log alone.
//!
//! - [`experiment`]: the `Experiment` aggregate (one run of one failure against one target).
//! - [`platform`]: the platform's state, one ledger per concern (halt switch, caps, webhooks,
//!   schedules, blackouts, API keys, users), each book a `PlatformBook` aggregate.
//! - [`ledger`]: streams that go on for ever, book after book, chained to one another.
//! - [`spec`]: validated value types of an experiment specification.
//! - [`net`]: which addresses the platform's own requests (webhooks) may reach.
//! - [`provenance`]: who did what, from where: actors, roles, sources and stored event metadata.
//! - [`audit`]: canonical encoding and the per-stream SHA-256 hash chain, with a verifier.
//! - [`views`]: read-model reducers (experiments, results, analytics, audit log, activity).

pub mod audit;
pub mod experiment;
pub mod ledger;
pub mod limits;
pub mod net;
pub mod platform;
pub mod provenance;
pub mod schedule;
pub mod spec;
pub mod time;
pub mod views;

pub use time::Timestamp;

/// An aggregate whose stream has a hard upper bound on its number of events.
///
/// DynamoDB returns at most 1 MB per query page and dynamo-es does not paginate its loads, so
/// a stream must stay well below 1 MB: each aggregate declares its bound, `handle` refuses
/// commands that would exceed it, and the store layer checks it again before committing.
pub trait BoundedStream: cqrs_es::Aggregate {
    /// Most events one stream of this aggregate may ever hold.
    const MAX_EVENTS: usize;
    /// Events applied so far (equals the sequence number of the last event).
    fn version(&self) -> usize;
}
