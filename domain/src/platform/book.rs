//! `PlatformBook`: the aggregate of one book of a platform ledger (see [`crate::ledger`]).
//!
//! Every book of every concern is a stream of aggregate type `Platform`, named after its
//! ledger (`halt-switch.3`, `users.1`). A book decides the commands of its concern on the
//! state it holds: the concern's part of [`Platform`], carried over from the book before by its
//! opening event. The store routes each command to its concern's current book.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{Concern, LEGACY_PLATFORM_ID, Platform, PlatformCommand, PlatformError, PlatformEvent};
use crate::ledger::{BookRef, Ledger};
use crate::limits::MAX_BOOK_EVENTS;
use crate::{BoundedStream, Timestamp};

/// One book of a platform ledger: the state it has folded, and whether it is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformBook {
    state: Platform,
    version: usize,
    continues_in: Option<String>,
}

impl PlatformBook {
    /// The state folded so far (only this book's concern is ever set).
    pub fn state(&self) -> &Platform {
        &self.state
    }

    /// The pure decision: the concern's, unless the book is closed.
    pub fn decide(&self, command: PlatformCommand) -> Result<Vec<PlatformEvent>, PlatformError> {
        if let Some(next) = &self.continues_in {
            return Err(PlatformError::BookClosed { next: next.clone() });
        }
        self.state.decide(command)
    }
}

impl Aggregate for PlatformBook {
    const TYPE: &'static str = "Platform";
    type Command = PlatformCommand;
    type Event = PlatformEvent;
    type Error = PlatformError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        if let PlatformEvent::BookClosed { next, .. } = &event {
            self.continues_in = Some(next.clone());
        }
        self.state.apply(event);
    }
}

impl BoundedStream for PlatformBook {
    const MAX_EVENTS: usize = MAX_BOOK_EVENTS;

    fn version(&self) -> usize {
        self.version
    }
}

impl Ledger for PlatformBook {
    const LEGACY_STREAM: Option<&'static str> = Some(LEGACY_PLATFORM_ID);

    fn open_book(&self, ledger: &str, previous: BookRef, at: Timestamp) -> Option<PlatformEvent> {
        let concern = Concern::of_ledger(ledger)?;
        Some(PlatformEvent::BookOpened {
            previous,
            state: self.state.snapshot(concern),
            at,
        })
    }

    fn close_book(&self, next: &str, at: Timestamp) -> PlatformEvent {
        PlatformEvent::BookClosed {
            next: next.to_owned(),
            at,
        }
    }

    fn continues_in(&self) -> Option<&str> {
        self.continues_in.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Username;

    fn at() -> Timestamp {
        Timestamp::from_unix_millis(1_795_000_000_000)
    }

    fn fold(events: impl IntoIterator<Item = PlatformEvent>) -> PlatformBook {
        let mut book = PlatformBook::default();
        for event in events {
            book.apply(event);
        }
        book
    }

    #[test]
    fn a_new_book_opens_with_its_concern_as_the_old_one_left_it_and_a_closed_one_decides_nothing() {
        let old = fold([
            PlatformEvent::PlatformHalted {
                reason: "incident 7".into(),
                at: at(),
            },
            PlatformEvent::UserAdded {
                username: Username::parse("ada").expect("name"),
                role: crate::provenance::Role::Admin,
                at: at(),
            },
        ]);
        let previous = BookRef {
            stream: "halt-switch.1".into(),
            sequence: 2,
            hash: "ab".repeat(32),
        };
        let opening = old
            .open_book("halt-switch", previous.clone(), at())
            .expect("a ledger of the platform");
        let new = fold([opening.clone()]);
        assert_eq!(new.state().halted(), Some(("incident 7", at())));
        assert!(new.state().users().is_empty(), "only its own concern");
        assert!(old.open_book("platform", previous, at()).is_none());

        let closed = fold([
            PlatformEvent::HaltLifted { at: at() },
            old.close_book("halt-switch.2", at()),
        ]);
        assert_eq!(closed.continues_in(), Some("halt-switch.2"));
        assert_eq!(
            closed.decide(PlatformCommand::HaltAll {
                reason: "x".into(),
                at: at()
            }),
            Err(PlatformError::BookClosed {
                next: "halt-switch.2".into()
            })
        );
    }
}
