//! Ledgers in the store: streams that go on for ever, book after book (see
//! [`domain::ledger`]).
//!
//! A command of a ledger is decided in its current book. Before a book would grow past its
//! bounds (its count of events, [`BoundedStream::MAX_EVENTS`], or its stored bytes,
//! [`STREAM_BYTE_BUDGET`], so that it always loads in one DynamoDB page), the store closes it:
//! one commit appends the closing event naming the next book, and the next commit opens that
//! book with the state and a reference to the closing event, together with the command's own
//! event. Both carry the command id `book:<next book>`, so closing and opening are idempotent,
//! and of two writers doing either at once one wins and the other catches up.
//!
//! The current book is found without loading the books before it: a galloping search over
//! their last sequence numbers ([`StreamHead`]), one small read each. A ledger's cache keeps
//! its current book folded, plus the command ids of the book before it, so a command retried
//! across a closing is still answered with its first outcome.

use std::collections::HashMap;

use cqrs_es::DomainEvent;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError};
use domain::audit::GENESIS_HASH;
use domain::ledger::{BookRef, Ledger, book_id};
use domain::limits::STREAM_BYTE_BUDGET;
use domain::provenance::CommandContext;

use super::{AppendedEvent, Cached, CommandOutcome, EventStore, Recorded, StoreError};

/// What the store asks of a backend beyond cqrs-es's repository: where a stream ends, without
/// loading it.
pub trait StreamHead {
    /// The sequence number of the last event of stream `aggregate_id` of type
    /// `aggregate_type` (0 when the stream has none).
    fn last_sequence(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<usize, PersistenceError>> + Send;
}

/// Room kept in every book for its closing event, in bytes.
const CLOSING_BYTES: usize = 4 * 1024;

/// A ledger's state as the store keeps it between commands.
pub(super) struct CachedLedger<A: cqrs_es::Aggregate> {
    /// The number of the current book (0 until it has been found).
    book: u64,
    /// The current book, folded. An empty book that continues another holds the state it
    /// opens with, though its opening event is not stored yet.
    current: Cached<A>,
    /// The stored bytes of the current book.
    bytes: usize,
    /// For an empty current book that continues another stream (the closed book before it,
    /// or the stream of an earlier release): that stream's state and last event.
    carried: Option<(A, BookRef)>,
    /// The command ids of the book before the current one, with the stream they are in.
    earlier: HashMap<String, (String, Recorded)>,
}

impl<A: cqrs_es::Aggregate> Default for CachedLedger<A> {
    fn default() -> Self {
        Self {
            book: 0,
            current: Cached::default(),
            bytes: 0,
            carried: None,
            earlier: HashMap::new(),
        }
    }
}

/// A ledger's current state.
#[derive(Debug, Clone)]
pub struct LedgerState<A> {
    /// The current book's stream.
    pub book: String,
    /// Events stored in the current book.
    pub version: usize,
    /// The state.
    pub aggregate: A,
}

impl<R: PersistedEventRepository + StreamHead> EventStore<R> {
    /// The current state of ledger `name`, caught up with everything stored.
    pub async fn ledger<A>(&self, name: &str) -> Result<LedgerState<A>, StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone + Send + 'static,
    {
        let slot = self.cache.slot(A::TYPE, &ledger_key(name));
        let mut guard = slot.lock().await;
        let mut cached: Box<CachedLedger<A>> = guard
            .take()
            .and_then(|state| state.downcast::<CachedLedger<A>>().ok())
            .unwrap_or_default();
        let result = self
            .catch_up_ledger(name, &mut cached)
            .await
            .map(|()| LedgerState {
                book: book_id(name, cached.book),
                version: cached.current.version,
                aggregate: cached.current.aggregate.clone(),
            });
        if result.is_ok() {
            *guard = Some(cached);
        }
        result
    }

    /// Runs `command` in ledger `name`'s current book, closing the book first when it is
    /// full; otherwise as [`EventStore::execute`].
    pub async fn execute_in_ledger<A>(
        &self,
        name: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<CommandOutcome, StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone + Send + 'static,
        A::Command: Clone + serde::Serialize,
    {
        let slot = self.cache.slot(A::TYPE, &ledger_key(name));
        let mut guard = slot.lock().await;
        let mut cached: Box<CachedLedger<A>> = guard
            .take()
            .and_then(|state| state.downcast::<CachedLedger<A>>().ok())
            .unwrap_or_default();
        let result = self
            .execute_ledger_cached(name, command, context, &mut cached)
            .await;
        if !matches!(
            result,
            Err(StoreError::Corrupt { .. } | StoreError::Storage(_))
        ) {
            *guard = Some(cached);
        }
        result
    }

    /// The loop of [`EventStore::execute_in_ledger`]: catch up, answer a command already
    /// stored, decide, close the book if the outcome does not fit, commit (with the opening of
    /// an empty book that continues another), retry on conflict.
    async fn execute_ledger_cached<A>(
        &self,
        name: &str,
        command: A::Command,
        context: &CommandContext,
        cached: &mut CachedLedger<A>,
    ) -> Result<CommandOutcome, StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
        A::Command: Clone + serde::Serialize,
    {
        let fingerprint = super::fingerprint_of(&command, context);
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            self.catch_up_ledger(name, cached).await?;
            let stream = book_id(name, cached.book);
            if let Some(stored) =
                cached.answer(&stream, context.command_id(), fingerprint.as_deref())
            {
                return stored;
            }
            let mut next = cached.current.aggregate.clone();
            let sink = EventSink::<A>::default();
            next.handle(command.clone(), &(), &sink)
                .await
                .map_err(StoreError::Rejected)?;
            let decided = sink.collect().await;
            if decided.is_empty() {
                return Ok(CommandOutcome {
                    aggregate_id: stream,
                    command_id: context.command_id().to_owned(),
                    events: Vec::new(),
                    version: cached.current.version,
                    deduplicated: false,
                });
            }
            let opening = self.opening(name, cached)?;
            let book_context = book_context(context, &stream)?;
            let (mut serialized, mut appended) = match opening {
                Some(opened) => {
                    self.seal_all::<A>(&stream, 0, GENESIS_HASH, vec![opened], &book_context, None)?
                }
                None => (Vec::new(), Vec::new()),
            };
            let opened = appended.len();
            let head = appended
                .last()
                .map_or_else(|| cached.current.head.clone(), |e| e.hash.clone());
            let (events, reported) = self.seal_all::<A>(
                &stream,
                cached.current.version + opened,
                &head,
                decided,
                context,
                fingerprint.as_deref(),
            )?;
            serialized.extend(events);
            appended.extend(reported);
            let bytes: usize = serialized
                .iter()
                .map(|e| super::stored_bytes(&e.payload, &e.metadata))
                .sum();
            let full = cached.current.version + appended.len() + 1 > A::MAX_EVENTS
                || cached.bytes + bytes + CLOSING_BYTES > STREAM_BYTE_BUDGET;
            if full && cached.current.version > 0 {
                // Closing is no attempt at the command: it does not count against the retries.
                attempt -= 1;
                self.close_book(name, cached, context).await?;
                continue;
            }
            if full {
                // Not even an empty book holds it: the ledger's bounds are wrong.
                return Err(StoreError::StreamFull { max: A::MAX_EVENTS });
            }
            match self.repo.persist::<A>(&serialized, None).await {
                Ok(()) => {
                    cached.current.aggregate = next;
                    for (index, event) in appended.iter().enumerate() {
                        if index < opened {
                            cached
                                .current
                                .record(book_context.command_id(), None, event.clone());
                        } else {
                            cached.current.record(
                                context.command_id(),
                                fingerprint.as_deref(),
                                event.clone(),
                            );
                        }
                    }
                    cached.current.version += appended.len();
                    if let Some(last) = appended.last() {
                        cached.current.head.clone_from(&last.hash);
                    }
                    cached.bytes += bytes;
                    cached.carried = None;
                    return Ok(CommandOutcome {
                        aggregate_id: stream,
                        command_id: context.command_id().to_owned(),
                        version: cached.current.version,
                        events: appended.split_off(opened),
                        deduplicated: false,
                    });
                }
                Err(PersistenceError::OptimisticLockError) if attempt < attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(PersistenceError::OptimisticLockError) => {}
                Err(other) => return Err(StoreError::Storage(other)),
            }
        }
        Err(StoreError::Contention { attempts })
    }

    /// The opening event the current book's first commit must start with: for an empty book
    /// that continues another stream.
    fn opening<A>(
        &self,
        name: &str,
        cached: &CachedLedger<A>,
    ) -> Result<Option<A::Event>, StoreError<A::Error>>
    where
        A: Ledger,
    {
        match &cached.carried {
            Some((state, previous)) if cached.current.version == 0 => state
                .open_book(name, previous.clone(), self.clock.now())
                .map(Some)
                .ok_or_else(|| {
                    StoreError::Encoding(format!("{name} is not a ledger of {}", A::TYPE))
                }),
            _ => Ok(None),
        }
    }

    /// Appends the closing event to the current book. Someone else may close it first: then
    /// catching up finds their closing, and moves on to the next book all the same.
    async fn close_book<A>(
        &self,
        name: &str,
        cached: &CachedLedger<A>,
        context: &CommandContext,
    ) -> Result<(), StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
    {
        let stream = book_id(name, cached.book);
        let next = book_id(name, cached.book + 1);
        let closing = cached.current.aggregate.close_book(&next, self.clock.now());
        let (serialized, _) = self.seal_all::<A>(
            &stream,
            cached.current.version,
            &cached.current.head,
            vec![closing],
            &book_context(context, &next)?,
            None,
        )?;
        tracing::info!(ledger = name, book = %next, "book full: closed and continued");
        match self.repo.persist::<A>(&serialized, None).await {
            Ok(()) | Err(PersistenceError::OptimisticLockError) => Ok(()),
            Err(other) => Err(StoreError::Storage(other)),
        }
    }

    /// Brings the cached ledger up to date: finds its current book if it has not yet, applies
    /// what was stored since, and follows a closed book to the one that continues it.
    async fn catch_up_ledger<A>(
        &self,
        name: &str,
        cached: &mut CachedLedger<A>,
    ) -> Result<(), StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
    {
        if cached.book == 0 {
            let book = self.find_last_book::<A>(name).await?;
            self.enter_book(name, book, cached).await?;
        }
        loop {
            let stream = book_id(name, cached.book);
            let before = cached.current.version;
            if before == 0 && cached.carried.is_some() {
                // Its opening, applied ahead in memory, is not in the store yet.
                let stored = self
                    .repo
                    .last_sequence(A::TYPE, &stream)
                    .await
                    .map_err(StoreError::Storage)?;
                if stored > 0 {
                    cached.current = Cached::default();
                    cached.carried = None;
                }
            }
            cached.bytes += self.catch_up(&stream, &mut cached.current).await?;
            if cached.current.version > before {
                cached.carried = None;
            }
            if cached.current.aggregate.continues_in().is_none() {
                return Ok(());
            }
            // Closed: the next book continues from what this one holds.
            let closed = std::mem::take(&mut cached.current);
            let previous = BookRef {
                stream: stream.clone(),
                sequence: closed.version as u64,
                hash: closed.head.clone(),
            };
            let earlier = closed
                .commands
                .into_iter()
                .map(|(id, events)| (id, (stream.clone(), events)))
                .collect();
            self.continue_in(
                name,
                cached.book + 1,
                closed.aggregate,
                previous,
                earlier,
                cached,
            )?;
        }
    }

    /// Makes `book` the current book, found on a cold start: the book before it (or the
    /// stream of an earlier release, before the first) gives the state an empty book opens
    /// with and the command ids still answered.
    async fn enter_book<A>(
        &self,
        name: &str,
        book: u64,
        cached: &mut CachedLedger<A>,
    ) -> Result<(), StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
    {
        let before = if book > 1 {
            Some(book_id(name, book - 1))
        } else {
            A::LEGACY_STREAM.map(str::to_owned)
        };
        let loaded = match &before {
            Some(before) => Some(self.load::<A>(before).await?),
            None => None,
        };
        match (before, loaded) {
            (Some(before), Some(loaded)) if loaded.version > 0 => {
                let mut earlier: HashMap<String, (String, Recorded)> = HashMap::new();
                for stored in &loaded.events {
                    let (_, recorded) = earlier
                        .entry(stored.metadata.command_id.clone())
                        .or_insert_with(|| (before.clone(), Recorded::default()));
                    if recorded.command.is_none() {
                        recorded.command.clone_from(&stored.metadata.command);
                    }
                    recorded.events.push(AppendedEvent {
                        sequence: stored.sequence,
                        event_type: stored.event.event_type(),
                        event_id: stored.metadata.event_id.clone(),
                        hash: stored.metadata.hash.clone(),
                    });
                }
                let previous = BookRef {
                    stream: before,
                    sequence: loaded.version as u64,
                    hash: loaded.head,
                };
                self.continue_in(name, book, loaded.aggregate, previous, earlier, cached)
            }
            _ => {
                *cached = CachedLedger {
                    book,
                    ..CachedLedger::default()
                };
                Ok(())
            }
        }
    }

    /// Makes `book` the current book, continuing from `state` as of `previous`: until the book
    /// has events, its state is what its opening will carry.
    fn continue_in<A>(
        &self,
        name: &str,
        book: u64,
        state: A,
        previous: BookRef,
        earlier: HashMap<String, (String, Recorded)>,
        cached: &mut CachedLedger<A>,
    ) -> Result<(), StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
    {
        let opening = state
            .open_book(name, previous.clone(), self.clock.now())
            .ok_or_else(|| {
                StoreError::Encoding(format!("{name} is not a ledger of {}", A::TYPE))
            })?;
        let mut opened = A::default();
        opened.apply(opening);
        *cached = CachedLedger {
            book,
            current: Cached {
                aggregate: opened,
                ..Cached::default()
            },
            bytes: 0,
            carried: Some((state, previous)),
            earlier,
        };
        Ok(())
    }

    /// The last book of ledger `name` that has events (1 when none has): a galloping search
    /// over the books' last sequence numbers, one small read each.
    async fn find_last_book<A>(&self, name: &str) -> Result<u64, StoreError<A::Error>>
    where
        A: Ledger<Services = ()> + Clone,
    {
        let exists = |book: u64| async move {
            self.repo
                .last_sequence(A::TYPE, &book_id(name, book))
                .await
                .map(|last| last > 0)
                .map_err(StoreError::Storage)
        };
        if !exists(1).await? {
            return Ok(1);
        }
        // The last book that exists lies in [found, beyond).
        let (mut found, mut beyond) = (1_u64, 2_u64);
        while exists(beyond).await? {
            found = beyond;
            beyond = beyond.saturating_mul(2);
        }
        while beyond - found > 1 {
            let middle = found + (beyond - found) / 2;
            if exists(middle).await? {
                found = middle;
            } else {
                beyond = middle;
            }
        }
        Ok(found)
    }
}

impl<A: cqrs_es::Aggregate> CachedLedger<A> {
    /// The stored answer to `command_id` asked for `asked` (its fingerprint), in the current
    /// book (`stream`) or the one before.
    fn answer<E: std::error::Error>(
        &self,
        stream: &str,
        command_id: &str,
        asked: Option<&str>,
    ) -> Option<Result<CommandOutcome, StoreError<E>>> {
        if let Some(stored) = self.current.outcome_of(stream, command_id, asked) {
            return Some(stored);
        }
        let (earlier, recorded) = self.earlier.get(command_id)?;
        Some(recorded.answer(earlier, command_id, asked, self.current.version))
    }
}

/// The cache key of a ledger (its books share one slot).
fn ledger_key(name: &str) -> String {
    format!("ledger:{name}")
}

/// The context of the events that close and open books: the triggering command's actor and
/// correlation, under the command id `book:<the book opened>`.
fn book_context<E: std::error::Error>(
    context: &CommandContext,
    opened: &str,
) -> Result<CommandContext, StoreError<E>> {
    CommandContext::new(
        format!("book:{opened}"),
        context.correlation_id(),
        context.actor().clone(),
        context.source(),
    )
    .map_err(|e| StoreError::Encoding(e.to_string()))
}
