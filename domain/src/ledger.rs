//! Ledgers: streams that go on forever in bounded books.
//!
//! A stream must stay small enough to load whole (see [`crate::limits`]), yet some state lives
//! as long as the platform: the halt switch, its credentials, its users. A **ledger** keeps such
//! state in a series of streams, its **books**: book `n` of ledger `name` is the stream
//! `<name>.<n>` (see [`book_id`]). When a book is full, its last event closes it, naming the
//! book that follows; that book's first event opens it with a snapshot of the state and a
//! reference to the closed book's last event (its stream, sequence and chain hash), so the
//! hash chain of each book stays whole and the books chain to one another: an auditor checks
//! that every opening names the closing event of the book before it (`docs/AUDIT.md`).
//!
//! Nothing here does I/O: the store layer decides when a book closes (by its size) and writes
//! the closing and opening events; the ledger's aggregate only says what they hold.

use serde::{Deserialize, Serialize};

use crate::{BoundedStream, Timestamp};

/// The last event of a stream a book continues from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookRef {
    /// The stream (its aggregate id; the aggregate type is the ledger's).
    pub stream: String,
    /// The sequence number of its last event.
    pub sequence: u64,
    /// That event's chain hash.
    pub hash: String,
}

/// The stream id of book `number` (counted from 1) of ledger `name`.
pub fn book_id(name: &str, number: u64) -> String {
    format!("{name}.{number}")
}

/// The ledger and book number of a stream id made by [`book_id`].
pub fn parse_book_id(stream: &str) -> Option<(&str, u64)> {
    let (name, number) = stream.rsplit_once('.')?;
    let number: u64 = number.parse().ok()?;
    (number >= 1 && !name.is_empty() && number.to_string().len() == stream.len() - name.len() - 1)
        .then_some((name, number))
}

/// An aggregate whose streams are the books of ledgers. Every command of a ledger appends at
/// most one event, so a book never needs more than one place for its closing event.
pub trait Ledger: BoundedStream {
    /// The stream an earlier release kept this state in, which the first book of each ledger
    /// continues from when it exists.
    const LEGACY_STREAM: Option<&'static str>;

    /// The first event of a new book of ledger `ledger`: the state now (which applying it to
    /// an empty aggregate restores), continuing from `previous`; none for a ledger name this
    /// aggregate does not keep.
    fn open_book(&self, ledger: &str, previous: BookRef, at: Timestamp) -> Option<Self::Event>;

    /// The last event of a full book, naming the book that follows.
    fn close_book(&self, next: &str, at: Timestamp) -> Self::Event;

    /// The book this one continues in, once its closing event has been applied.
    fn continues_in(&self) -> Option<&str>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_ids_name_the_ledger_and_the_number() {
        assert_eq!(book_id("halt-switch", 1), "halt-switch.1");
        assert_eq!(parse_book_id("halt-switch.12"), Some(("halt-switch", 12)));
        assert_eq!(parse_book_id("a.b.3"), Some(("a.b", 3)));
        for not_a_book in [
            "platform",
            "halt-switch.0",
            "halt-switch.",
            ".3",
            "x.03",
            "x.+3",
        ] {
            assert_eq!(parse_book_id(not_a_book), None, "{not_a_book}");
        }
    }
}
