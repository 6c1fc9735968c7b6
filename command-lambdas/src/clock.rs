//! Time and identity sources: the only places the write side reads a clock or makes an id.

use std::fmt::Debug;

use domain::Timestamp;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }
}

/// Where event ids come from.
pub trait IdSource: Send + Sync + Debug {
    /// A new, unique, time-ordered event id.
    fn event_id(&self) -> String;
}

/// UUIDv7 ids (time-ordered, random tail).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7;

impl IdSource for UuidV7 {
    fn event_id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

/// A new UUIDv7 as text, for ids minted at the edge (experiment ids, command ids).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
