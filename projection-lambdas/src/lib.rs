//! The read side of the chaos platform.
//!
//! Projections (experiment views, results, analytics, the audit log and the activity feed)
//! are folded from the event log by an ordered, idempotent driver: fed by a local catch-up
//! reader over the SQLite events table in embedded mode, and by DynamoDB Streams Lambdas in
//! AWS. Read models never feed back into decisions except through facts the edge looks up and
//! puts into commands.
//!
//! Nothing here writes events: the write side (`command-lambdas`) is the only writer.
