//! How the books of a ledger chain to one another, as the verifier checks it (see
//! [`crate::ledger`] and `docs/AUDIT.md`, "Ledgers and books").
//!
//! Within a stream the hash chain holds as for any stream. Across the books of a ledger:
//! - a book is opened only by its first event (`BookOpened`), and every book after the first
//!   of a ledger begins with one;
//! - a book is closed only by its last event (`BookClosed`): nothing follows it;
//! - an opening names the stream it continues, with the sequence and hash of that stream's
//!   last event; that stream (of the same aggregate type) must end exactly there, and, when it
//!   is a book, its closing must name the opening's stream.
//!
//! The first two are checked row by row ([`Facts::observe`]); the links once every stream has
//! been read ([`resolve`]). A stream an opening names that is not in the log at all is a fault
//! only when the whole log was read (a check of one stream sees no other).

use std::collections::HashMap;

use serde_json::Value;

use super::verify::{Fault, FaultKind, StoredRow, StreamHead};
use crate::ledger::{BookRef, parse_book_id};
use crate::platform::{Concern, PlatformBook};

/// What a stream says of the books it continues and is continued in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookFacts {
    /// Aggregate type of the stream.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Where its opening says it continues from.
    pub opens_from: Option<BookRef>,
    /// The sequence of its closing and the book it names.
    pub closed_into: Option<(u64, String)>,
}

/// Per-stream state kept while rows are read.
#[derive(Debug, Default)]
pub(super) struct Facts {
    opens_from: Option<BookRef>,
    closed_into: Option<(u64, String)>,
}

/// Whether `aggregate_id` of `aggregate_type` is a book after the first of a platform ledger
/// (which must begin with its opening).
fn continuing_book(aggregate_type: &str, aggregate_id: &str) -> bool {
    use cqrs_es::Aggregate;
    aggregate_type == PlatformBook::TYPE
        && parse_book_id(aggregate_id)
            .is_some_and(|(ledger, number)| number > 1 && Concern::of_ledger(ledger).is_some())
}

impl Facts {
    /// Checks a row that verified at `sequence` for what books demand, and records an opening
    /// or closing it makes.
    pub(super) fn observe(&mut self, row: &StoredRow<'_>, sequence: u64) -> Result<(), FaultKind> {
        if let Some((closed_at, next)) = &self.closed_into {
            return Err(FaultKind::Book(format!(
                "the book was closed at sequence {closed_at} (continued in {next}): nothing may follow"
            )));
        }
        match row.event_type {
            "BookOpened" if sequence != 1 => Err(FaultKind::Book(
                "a book is opened only by its first event".to_owned(),
            )),
            "BookOpened" => {
                let previous = payload_field(row.payload, "BookOpened", "previous")
                    .and_then(|v| serde_json::from_value::<BookRef>(v).ok())
                    .ok_or_else(|| {
                        FaultKind::Book("the opening names no stream it continues".to_owned())
                    })?;
                self.opens_from = Some(previous);
                Ok(())
            }
            "BookClosed" => {
                let next = payload_field(row.payload, "BookClosed", "next")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        FaultKind::Book("the closing names no book that continues it".to_owned())
                    })?;
                self.closed_into = Some((sequence, next));
                Ok(())
            }
            first if sequence == 1 && continuing_book(row.aggregate_type, row.aggregate_id) => {
                Err(FaultKind::Book(format!(
                    "a book after the first of its ledger begins with its opening, not {first}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The facts of the stream, if it opens or closes a book.
    pub(super) fn into_facts(self, aggregate_type: &str, aggregate_id: &str) -> Option<BookFacts> {
        (self.opens_from.is_some() || self.closed_into.is_some()).then(|| BookFacts {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            opens_from: self.opens_from,
            closed_into: self.closed_into,
        })
    }
}

fn payload_field(payload: &str, variant: &str, field: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(payload).ok()?;
    Some(value.get_mut(variant)?.get_mut(field)?.take())
}

/// What checking the links found.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    /// Streams whose opening does not match what it continues.
    pub faults: Vec<Fault>,
    /// Streams whose opening names a stream that was not read.
    pub dangling: Vec<Fault>,
}

/// Checks every opening among `books` against the heads of the intact streams (`heads`) and
/// the closings it names; `broken` says whether a stream was read but did not verify.
pub(super) fn resolve(
    books: &[BookFacts],
    heads: &[StreamHead],
    broken: impl Fn(&str, &str) -> bool,
) -> Resolved {
    let heads: HashMap<(&str, &str), &StreamHead> = heads
        .iter()
        .map(|h| ((h.aggregate_type.as_str(), h.aggregate_id.as_str()), h))
        .collect();
    let closings: HashMap<(&str, &str), &(u64, String)> = books
        .iter()
        .filter_map(|b| {
            b.closed_into
                .as_ref()
                .map(|c| ((b.aggregate_type.as_str(), b.aggregate_id.as_str()), c))
        })
        .collect();
    let mut resolved = Resolved::default();
    for book in books {
        let Some(previous) = &book.opens_from else {
            continue;
        };
        let key = (book.aggregate_type.as_str(), previous.stream.as_str());
        if !heads.contains_key(&(book.aggregate_type.as_str(), book.aggregate_id.as_str())) {
            // The opening stream is broken itself: already reported.
            continue;
        }
        let fault = |why: String| Fault {
            aggregate_type: book.aggregate_type.clone(),
            aggregate_id: book.aggregate_id.clone(),
            sequence: 1,
            kind: FaultKind::Book(why),
        };
        match heads.get(&key) {
            Some(head) if head.sequence != previous.sequence || head.hash != previous.hash => {
                resolved.faults.push(fault(format!(
                    "it continues {} after sequence {} (hash {}), but that stream ends at sequence {} (hash {})",
                    previous.stream, previous.sequence, previous.hash, head.sequence, head.hash
                )));
            }
            Some(_) => {
                let is_book = parse_book_id(&previous.stream).is_some();
                let closing = closings.get(&key);
                if is_book && closing.is_none_or(|(_, next)| *next != book.aggregate_id) {
                    resolved.faults.push(fault(match closing {
                        Some((_, next)) => format!(
                            "it continues {}, whose closing names {next}",
                            previous.stream
                        ),
                        None => format!("it continues {}, which is not closed", previous.stream),
                    }));
                }
            }
            None if broken(key.0, key.1) => {}
            None => resolved.dangling.push(fault(format!(
                "it continues {}, which is not in the log",
                previous.stream
            ))),
        }
    }
    // A closing names the book that continues it; if that book is there, it must say so.
    let openings: HashMap<(&str, &str), &BookRef> = books
        .iter()
        .filter_map(|b| {
            b.opens_from
                .as_ref()
                .map(|o| ((b.aggregate_type.as_str(), b.aggregate_id.as_str()), o))
        })
        .collect();
    for book in books {
        let Some((closed_at, next)) = &book.closed_into else {
            continue;
        };
        let key = (book.aggregate_type.as_str(), next.as_str());
        let present = heads.contains_key(&key) || broken(key.0, key.1);
        let continues = openings
            .get(&key)
            .is_some_and(|previous| previous.stream == book.aggregate_id);
        if present && !continues && heads.contains_key(&key) {
            resolved.faults.push(Fault {
                aggregate_type: book.aggregate_type.clone(),
                aggregate_id: book.aggregate_id.clone(),
                sequence: *closed_at,
                kind: FaultKind::Book(format!(
                    "its closing names {next}, which does not continue it"
                )),
            });
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(id: &'a str, event_type: &'a str, payload: &'a str) -> StoredRow<'a> {
        StoredRow {
            aggregate_type: "Platform",
            aggregate_id: id,
            sequence: 0,
            event_type,
            event_version: "1",
            payload,
            metadata: "{}",
        }
    }

    const OPENING: &str = r#"{"BookOpened":{"at":"2026-12-07T10:00:00.000Z","previous":{"hash":"ab","sequence":9,"stream":"users.1"},"state":{"Users":{"users":{}}}}}"#;
    const CLOSING: &str = r#"{"BookClosed":{"at":"2026-12-07T10:00:00.000Z","next":"users.3"}}"#;
    const HALT: &str = r#"{"HaltLifted":{"at":"2026-12-07T10:00:00.000Z"}}"#;

    #[test]
    fn books_open_first_close_last_and_later_books_begin_with_their_opening() {
        let mut facts = Facts::default();
        assert_eq!(
            facts.observe(&row("users.2", "BookOpened", OPENING), 1),
            Ok(())
        );
        assert_eq!(
            facts.observe(&row("users.2", "HaltLifted", HALT), 2),
            Ok(())
        );
        assert_eq!(
            facts.observe(&row("users.2", "BookClosed", CLOSING), 3),
            Ok(())
        );
        assert!(matches!(
            facts.observe(&row("users.2", "HaltLifted", HALT), 4),
            Err(FaultKind::Book(why)) if why.contains("closed at sequence 3")
        ));
        let facts = {
            let mut f = Facts::default();
            f.observe(&row("users.2", "BookOpened", OPENING), 1)
                .expect("first");
            f.into_facts("Platform", "users.2").expect("facts")
        };
        assert_eq!(
            facts.opens_from.map(|p| (p.stream, p.sequence)),
            Some(("users.1".into(), 9))
        );

        let mut late = Facts::default();
        late.observe(&row("users.2", "HaltLifted", HALT), 1)
            .expect_err("a second book begins with its opening");
        let mut first = Facts::default();
        assert_eq!(
            first.observe(&row("users.1", "HaltLifted", HALT), 1),
            Ok(())
        );
        assert!(
            first
                .observe(&row("users.1", "BookOpened", OPENING), 2)
                .is_err()
        );
        // An experiment named like a book is no book.
        let mut experiment = Facts::default();
        let mut named = row("users.2", "HaltLifted", HALT);
        named.aggregate_type = "Experiment";
        assert_eq!(experiment.observe(&named, 1), Ok(()));
    }
}
