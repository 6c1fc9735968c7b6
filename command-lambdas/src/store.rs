//! The event store layer: every command goes through here, whatever the backend.
//!
//! [`EventStore`] wraps any cqrs-es [`PersistedEventRepository`] (sqlite-es embedded,
//! dynamo-es in AWS) and adds what the plain framework cannot:
//!
//! - **per-event metadata and the hash chain**: each event gets its own UUIDv7, the record
//!   time, the command's provenance, `prev_hash` and `hash` (see `docs/AUDIT.md`). cqrs-es's
//!   `CqrsFramework` stamps one metadata map on every event of a commit, which cannot carry a
//!   chain, so this layer drives the `Aggregate` itself;
//! - **idempotency**: a command whose `command_id` is already in the stream appends nothing and
//!   is answered with the outcome stored the first time;
//! - **optimistic concurrency with bounded retries**: the repository refuses a commit whose
//!   sequence numbers are taken (a primary-key or condition failure); the command is then
//!   retried from a fresh load, at most [`RetryPolicy::max_attempts`] times;
//! - **bounded streams**: nothing is committed past the aggregate's `MAX_EVENTS`.
//!
//! It never writes anything for a refused command.
//!
//! **Stream cache.** Folding a whole stream for every command would cost a full load each time.
//! The store keeps each recently used stream's folded state, version, chain head and command
//! ids in memory, and before every decision catches up from the backend with the events after
//! the cached version (`get_last_events`): a state written by another process is never missed,
//! and a conflicting commit simply catches up and decides again. Commands on one stream are
//! serialized inside the process by the stream's lock; different streams proceed in parallel.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use domain::audit::chain::SealError;
use domain::audit::{EventRecord, GENESIS_HASH, seal};
use domain::provenance::{CommandContext, EventMetadata, command_fingerprint};
use domain::{BoundedStream, Timestamp};
use serde::Serialize;
use serde_json::Value;

use crate::clock::{Clock, IdSource};

mod ledger;

pub use ledger::{LedgerState, StreamHead};

/// A backend the store layer runs on: cqrs-es's repository, and where a stream ends.
pub trait Repository: PersistedEventRepository + StreamHead {}

impl<T: PersistedEventRepository + StreamHead> Repository for T {}

/// Why a command did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum StoreError<E: std::error::Error> {
    /// The aggregate refused the command; nothing was written.
    #[error("{0}")]
    Rejected(E),
    /// Other writers kept winning; nothing was written by this command.
    #[error("gave up after {attempts} attempts: the stream kept changing under concurrent writers")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The stream is at its bound.
    #[error("stream is full: {max} events at most")]
    StreamFull {
        /// The bound.
        max: usize,
    },
    /// A stored event could not be read back.
    #[error("stored event {sequence} of {aggregate_id} is unreadable: {reason}")]
    Corrupt {
        /// Stream id.
        aggregate_id: String,
        /// Position.
        sequence: usize,
        /// What is wrong.
        reason: String,
    },
    /// An event could not be encoded (a value outside the canonical domain).
    #[error("event cannot be encoded: {0}")]
    Encoding(String),
    /// The backend failed.
    #[error("event store unavailable: {0}")]
    Storage(PersistenceError),
    /// The command id was first used for another command; nothing was done.
    #[error(
        "the command id {command_id:?} was already used for another command ({first}): send a new id with a new command"
    )]
    KeyReused {
        /// The command id.
        command_id: String,
        /// The kind of command it was first used for.
        first: String,
    },
}

impl<E: std::error::Error> StoreError<E> {
    /// Whether trying the same command again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Contention { .. } | StoreError::Storage(_))
    }
}

/// How hard to try when other writers win.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt, with full jitter.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_micros(500),
            max_delay: Duration::from_millis(50),
        }
    }
}

/// One appended event, as reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppendedEvent {
    /// Position in the stream.
    pub sequence: usize,
    /// Event type.
    pub event_type: String,
    /// UUIDv7 of the event.
    pub event_id: String,
    /// Chain hash.
    pub hash: String,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOutcome {
    /// Stream id.
    pub aggregate_id: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// Events appended by this command (by its first execution, when deduplicated).
    pub events: Vec<AppendedEvent>,
    /// Stream version after the command (at the time of the answer).
    pub version: usize,
    /// True when the command had already been stored and nothing was appended now.
    pub deduplicated: bool,
}

/// An event read back with its metadata.
#[derive(Debug, Clone)]
pub struct StoredEvent<A: Aggregate> {
    /// Position in the stream.
    pub sequence: usize,
    /// The event.
    pub event: A::Event,
    /// Its metadata.
    pub metadata: EventMetadata,
}

/// A stream loaded and folded.
#[derive(Debug)]
pub struct Loaded<A: Aggregate> {
    /// The state after every event.
    pub aggregate: A,
    /// Number of events.
    pub version: usize,
    /// Hash of the last event (the genesis hash for an empty stream).
    pub head: String,
    /// Events in order, with metadata.
    pub events: Vec<StoredEvent<A>>,
}

/// Events ready to commit, and how they are reported.
type Sealed = (Vec<SerializedEvent>, Vec<AppendedEvent>);

/// What a command id was first used for, and what that command appended.
#[derive(Debug, Clone, Default)]
struct Recorded {
    /// Its fingerprint ([`command_fingerprint`]), when the command recorded one.
    command: Option<String>,
    /// The events it appended.
    events: Vec<AppendedEvent>,
}

impl Recorded {
    /// The stored answer to `command_id` asked again for `asked` (its fingerprint): the first
    /// outcome, unless the id was first used for another command.
    fn answer<E: std::error::Error>(
        &self,
        aggregate_id: &str,
        command_id: &str,
        asked: Option<&str>,
        version: usize,
    ) -> Result<CommandOutcome, StoreError<E>> {
        if let (Some(first), Some(asked)) = (&self.command, asked)
            && first != asked
        {
            return Err(StoreError::KeyReused {
                command_id: command_id.to_owned(),
                first: first.split(':').next().unwrap_or_default().to_owned(),
            });
        }
        Ok(CommandOutcome {
            aggregate_id: aggregate_id.to_owned(),
            command_id: command_id.to_owned(),
            events: self.events.clone(),
            version,
            deduplicated: true,
        })
    }
}

/// A stream's folded state kept between commands.
struct Cached<A: Aggregate> {
    aggregate: A,
    version: usize,
    head: String,
    /// What each command id was used for and appended, for idempotent answers.
    commands: HashMap<String, Recorded>,
}

impl<A: Aggregate> Default for Cached<A> {
    fn default() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
            head: GENESIS_HASH.to_owned(),
            commands: HashMap::new(),
        }
    }
}

impl<A: Aggregate> Cached<A> {
    fn record(&mut self, command_id: &str, command: Option<&str>, appended: AppendedEvent) {
        let recorded = self.commands.entry(command_id.to_owned()).or_default();
        if recorded.command.is_none() {
            recorded.command = command.map(str::to_owned);
        }
        recorded.events.push(appended);
    }

    /// The stored answer to `command_id` (see [`Recorded::answer`]), if it is stored.
    fn outcome_of<E: std::error::Error>(
        &self,
        aggregate_id: &str,
        command_id: &str,
        asked: Option<&str>,
    ) -> Option<Result<CommandOutcome, StoreError<E>>> {
        self.commands
            .get(command_id)
            .map(|recorded| recorded.answer(aggregate_id, command_id, asked, self.version))
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Box<dyn Any + Send>>>>;

/// Per-stream slots holding cached state, bounded in number.
struct StreamCache {
    slots: Mutex<HashMap<(&'static str, String), Slot>>,
    capacity: usize,
}

impl StreamCache {
    fn slot(&self, aggregate_type: &'static str, aggregate_id: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (aggregate_type, aggregate_id.to_owned());
        if let Some(slot) = slots.get(&key) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.capacity {
            // Evict streams nobody is using right now; their state reloads on next use.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = Slot::default();
        slots.insert(key, Arc::clone(&slot));
        slot
    }
}

/// The store layer over a cqrs-es repository; see the module docs.
pub struct EventStore<R> {
    repo: R,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    retry: RetryPolicy,
    cache: StreamCache,
}

/// Streams whose folded state is kept in memory by default.
pub const DEFAULT_CACHED_STREAMS: usize = 4_096;

impl<R> std::fmt::Debug for EventStore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<R: PersistedEventRepository> EventStore<R> {
    /// A store over `repo`, stamping time from `clock` and event ids from `ids`.
    pub fn new(repo: R, clock: Arc<dyn Clock>, ids: Arc<dyn IdSource>) -> Self {
        Self {
            repo,
            clock,
            ids,
            retry: RetryPolicy::default(),
            cache: StreamCache {
                slots: Mutex::new(HashMap::new()),
                capacity: DEFAULT_CACHED_STREAMS,
            },
        }
    }

    /// Sets how many streams' folded state is kept in memory (at least 1).
    pub fn with_cache_capacity(mut self, streams: usize) -> Self {
        self.cache.capacity = streams.max(1);
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The wrapped repository.
    pub fn repository(&self) -> &R {
        &self.repo
    }

    /// Loads and folds one stream.
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Loaded<A>, StoreError<A::Error>> {
        let serialized = self
            .repo
            .get_events::<A>(aggregate_id)
            .await
            .map_err(StoreError::Storage)?;
        let mut aggregate = A::default();
        let mut events = Vec::with_capacity(serialized.len());
        let mut head = GENESIS_HASH.to_owned();
        for (index, stored) in serialized.into_iter().enumerate() {
            let (event, metadata) = decode::<A>(aggregate_id, index + 1, stored)?;
            aggregate.apply(event.clone());
            head.clone_from(&metadata.hash);
            events.push(StoredEvent {
                sequence: index + 1,
                event,
                metadata,
            });
        }
        Ok(Loaded {
            aggregate,
            version: events.len(),
            head,
            events,
        })
    }

    /// Runs `command` against stream `aggregate_id`; see the module docs for the guarantees.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<CommandOutcome, StoreError<A::Error>>
    where
        A: BoundedStream<Services = ()> + Clone + Send + 'static,
        A::Command: Clone + Serialize,
    {
        let slot = self.cache.slot(A::TYPE, aggregate_id);
        let mut guard = slot.lock().await;
        let mut cached: Box<Cached<A>> = guard
            .take()
            .and_then(|state| state.downcast::<Cached<A>>().ok())
            .unwrap_or_default();
        let result = self
            .execute_cached(aggregate_id, command, context, &mut cached)
            .await;
        // Keep the state unless reading the stream failed: then the next command reloads it.
        if !matches!(
            result,
            Err(StoreError::Corrupt { .. } | StoreError::Storage(_))
        ) {
            *guard = Some(cached);
        }
        result
    }

    async fn execute_cached<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        cached: &mut Cached<A>,
    ) -> Result<CommandOutcome, StoreError<A::Error>>
    where
        A: BoundedStream<Services = ()> + Clone,
        A::Command: Clone + Serialize,
    {
        let fingerprint = fingerprint_of(&command, context);
        let attempts = self.retry.max_attempts.max(1);
        for attempt in 1..=attempts {
            self.catch_up(aggregate_id, cached).await?;
            if let Some(stored) =
                cached.outcome_of(aggregate_id, context.command_id(), fingerprint.as_deref())
            {
                tracing::debug!(
                    aggregate_id,
                    command_id = context.command_id(),
                    "duplicate command answered from the log"
                );
                return stored;
            }
            let mut next = cached.aggregate.clone();
            let sink = EventSink::<A>::default();
            next.handle(command.clone(), &(), &sink)
                .await
                .map_err(StoreError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(CommandOutcome {
                    aggregate_id: aggregate_id.to_owned(),
                    command_id: context.command_id().to_owned(),
                    events: Vec::new(),
                    version: cached.version,
                    deduplicated: false,
                });
            }
            if cached.version + events.len() > A::MAX_EVENTS {
                return Err(StoreError::StreamFull { max: A::MAX_EVENTS });
            }
            let (serialized, appended) = self.seal_all::<A>(
                aggregate_id,
                cached.version,
                &cached.head,
                events,
                context,
                fingerprint.as_deref(),
            )?;
            match self.repo.persist::<A>(&serialized, None).await {
                Ok(()) => {
                    cached.aggregate = next;
                    cached.version += appended.len();
                    if let Some(last) = appended.last() {
                        cached.head.clone_from(&last.hash);
                    }
                    for event in &appended {
                        cached.record(context.command_id(), fingerprint.as_deref(), event.clone());
                    }
                    return Ok(CommandOutcome {
                        aggregate_id: aggregate_id.to_owned(),
                        command_id: context.command_id().to_owned(),
                        version: cached.version,
                        events: appended,
                        deduplicated: false,
                    });
                }
                Err(PersistenceError::OptimisticLockError) if attempt < attempts => {
                    tracing::debug!(
                        aggregate_id,
                        attempt,
                        "concurrent write won; catching up and deciding again"
                    );
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(PersistenceError::OptimisticLockError) => {}
                Err(other) => return Err(StoreError::Storage(other)),
            }
        }
        Err(StoreError::Contention { attempts })
    }

    /// Applies the events stored after `cached.version` (by this or any other process);
    /// returns the bytes they take in the store.
    async fn catch_up<A: Aggregate>(
        &self,
        aggregate_id: &str,
        cached: &mut Cached<A>,
    ) -> Result<usize, StoreError<A::Error>> {
        let newer = self
            .repo
            .get_last_events::<A>(aggregate_id, cached.version)
            .await
            .map_err(StoreError::Storage)?;
        let mut bytes = 0;
        for stored in newer {
            bytes += stored_bytes(&stored.payload, &stored.metadata);
            let (event, metadata) = decode::<A>(aggregate_id, cached.version + 1, stored)?;
            cached.aggregate.apply(event.clone());
            cached.version += 1;
            cached.head.clone_from(&metadata.hash);
            cached.record(
                &metadata.command_id,
                metadata.command.as_deref(),
                AppendedEvent {
                    sequence: cached.version,
                    event_type: event.event_type(),
                    event_id: metadata.event_id,
                    hash: metadata.hash,
                },
            );
        }
        Ok(bytes)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry.max_delay);
        let micros = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    fn seal_all<A: Aggregate>(
        &self,
        aggregate_id: &str,
        version: usize,
        head: &str,
        events: Vec<A::Event>,
        context: &CommandContext,
        command: Option<&str>,
    ) -> Result<Sealed, StoreError<A::Error>> {
        let recorded_at: Timestamp = self.clock.now();
        let mut prev = head.to_owned();
        let mut serialized = Vec::with_capacity(events.len());
        let mut appended = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let sequence = version + offset + 1;
            let event_type = event.event_type();
            let event_version = event.event_version();
            let payload: Value =
                serde_json::to_value(&event).map_err(|e| StoreError::Encoding(e.to_string()))?;
            let mut metadata = EventMetadata::unsealed(self.ids.event_id(), context, recorded_at);
            metadata.command = command.map(str::to_owned);
            let hash = seal(
                &EventRecord {
                    aggregate_type: A::TYPE,
                    aggregate_id,
                    sequence: sequence as u64,
                    event_type: &event_type,
                    event_version: &event_version,
                    metadata: &metadata,
                },
                &payload,
                &prev,
            )
            .map_err(|e: SealError| StoreError::Encoding(e.to_string()))?;
            metadata.prev_hash = std::mem::replace(&mut prev, hash.clone());
            metadata.hash = hash.clone();
            appended.push(AppendedEvent {
                sequence,
                event_type: event_type.clone(),
                event_id: metadata.event_id.clone(),
                hash,
            });
            let metadata =
                serde_json::to_value(&metadata).map_err(|e| StoreError::Encoding(e.to_string()))?;
            serialized.push(SerializedEvent::new(
                aggregate_id.to_owned(),
                sequence,
                A::TYPE.to_owned(),
                event_type,
                event_version,
                payload,
                metadata,
            ));
        }
        Ok((serialized, appended))
    }
}

/// The fingerprint `command` binds its id to ([`command_fingerprint`]), when its source binds
/// command ids (people and scripts; not the platform's own workflow and scheduler).
fn fingerprint_of<C: Serialize>(command: &C, context: &CommandContext) -> Option<String> {
    if !context.source().binds_command_ids() {
        return None;
    }
    command_fingerprint(&serde_json::to_value(command).ok()?)
}

/// What one stored event counts against a stream's byte budget besides its payload and
/// metadata: keys and attribute names, as DynamoDB counts an item.
const ITEM_OVERHEAD_BYTES: usize = 128;

/// The bytes a stored event takes, as a DynamoDB item counts them (near enough: the JSON as
/// stored, plus [`ITEM_OVERHEAD_BYTES`]).
fn stored_bytes(payload: &Value, metadata: &Value) -> usize {
    let len = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    len(payload) + len(metadata) + ITEM_OVERHEAD_BYTES
}

/// Decodes one stored event, checking it sits at `expected` and is what its columns say.
fn decode<A: Aggregate>(
    aggregate_id: &str,
    expected: usize,
    stored: SerializedEvent,
) -> Result<(A::Event, EventMetadata), StoreError<A::Error>> {
    let sequence = stored.sequence;
    let corrupt = |reason: String| StoreError::Corrupt {
        aggregate_id: aggregate_id.to_owned(),
        sequence,
        reason,
    };
    if sequence != expected {
        return Err(corrupt(format!("expected sequence {expected}")));
    }
    let metadata: EventMetadata =
        serde_json::from_value(stored.metadata).map_err(|e| corrupt(format!("metadata: {e}")))?;
    let event: A::Event =
        serde_json::from_value(stored.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
    if event.event_type() != stored.event_type || event.event_version() != stored.event_version {
        return Err(corrupt(format!(
            "stored as {} v{}, payload is {} v{}",
            stored.event_type,
            stored.event_version,
            event.event_type(),
            event.event_version()
        )));
    }
    Ok((event, metadata))
}
