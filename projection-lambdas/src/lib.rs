//! The read side of the chaos platform.
//!
//! Projections (experiment views, results, analytics, the audit log and the activity feed)
//! are folded from the event log. The reducers themselves are pure and live in
//! `domain::views`; this crate delivers events to them in order, exactly once per read model:
//!
//! - [`plan`]: the ordering and idempotency rules for any feed (duplicates skipped, streams
//!   applied in sequence order, gaps and poison records held back while other streams go on);
//! - [`reads`]: what a read of the read models asks and answers, in either store;
//! - [`dynamo_stream`]: the AWS projection Lambda over the events table's DynamoDB Stream, with
//!   read models and conditional per-projection checkpoints in one DynamoDB table;
//! - [`dynamo_queries`]: what the API reads from those;
//! - [`publisher`]: the AWS Lambda that puts every event on an EventBridge bus (schema in
//!   `docs/EVENTS.md`), at least once.
//!
//! The embedded read side (read models in the SQLite store file, their queries, and webhook
//! deliveries from an outbox there) is the `embedded-read` crate (`projection-lambdas/embedded`),
//! so no Lambda links SQLite.
//!
//! Nothing here writes events: the write side (`command-lambdas`) is the only writer.

pub mod dynamo_queries;
pub mod dynamo_stream;
pub mod plan;
pub mod publisher;
pub mod reads;
