//! Properties of the batch planner under a hostile feed.
//!
//! Several streams' histories (platform streams alternating halt and lift, experiment streams
//! decided by the aggregate from a realistic run) are delivered in random batches: shuffled,
//! with duplicates, with records withheld (gaps) and delivered later, and with poison records
//! (corrupt payload, metadata or columns) that are repaired after a while. An in-memory
//! applier keeps a checkpoint and the applied envelopes per stream, exactly as a projection
//! would. Every batch is checked against an oracle that looks at one stream at a time.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::Aggregate;
use domain::experiment::Experiment;
use domain::platform::PlatformEvent;
use domain::provenance::EventMetadata;
use domain::views::{AnyEvent, Envelope};
use projection_lambdas::plan::{
    Decoded, FeedRecord, NotApplied, Plan, StreamKey, plan, plan_decoded,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use test_support::common;

type Record = FeedRecord<u64>;

fn metadata(sequence: usize) -> String {
    serde_json::to_string(&EventMetadata {
        event_id: format!("event-{sequence}"),
        command_id: format!("command-{sequence}"),
        correlation_id: "correlation".into(),
        actor: "tester".into(),
        actor_role: "OPERATOR".into(),
        command: None,
        source: "api".into(),
        recorded_at: common::at(i64::try_from(sequence).expect("small")).to_string(),
        prev_hash: "0".repeat(64),
        hash: "1".repeat(64),
    })
    .expect("metadata serializes")
}

fn record(
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: usize,
    event_type: String,
    payload: String,
) -> Record {
    FeedRecord {
        id: 0,
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        sequence: i64::try_from(sequence).expect("small"),
        event_type,
        event_version: "1".into(),
        payload,
        metadata: metadata(sequence),
    }
}

/// `n` platform events: halted, lifted, halted, ...
fn platform_stream(id: &str, n: usize) -> Vec<Record> {
    (1..=n)
        .map(|seq| {
            let at = common::at(i64::try_from(seq).expect("small"));
            let event = if seq % 2 == 1 {
                PlatformEvent::PlatformHalted {
                    reason: format!("drill {seq}"),
                    at,
                }
            } else {
                PlatformEvent::HaltLifted { at }
            };
            let event_type = cqrs_es::DomainEvent::event_type(&event);
            let payload = serde_json::to_string(&event).expect("payload");
            record("Platform", id, seq, event_type, payload)
        })
        .collect()
}

/// A full run of experiment `id` with `checks` samples after the injection, as decided by
/// the aggregate.
fn experiment_stream(id: &str, checks: usize) -> Vec<Record> {
    let mut state = Experiment::default();
    let mut out = Vec::new();
    for command in common::lifecycle(id, checks) {
        for event in state.decide(command).expect("lifecycle is valid") {
            state.apply(event.clone());
            let payload = serde_json::to_string(&event).expect("payload");
            let seq = out.len() + 1;
            out.push(record(
                "Experiment",
                id,
                seq,
                event.type_name().into(),
                payload,
            ));
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Corruption {
    Payload,
    Metadata,
    EventType,
}

fn corrupt(record: &Record, how: Corruption) -> Record {
    let mut r = record.clone();
    match how {
        // Truncated JSON, as a torn write or a bad manual edit would leave it.
        Corruption::Payload => r.payload.truncate(r.payload.len() / 2),
        Corruption::Metadata => r.metadata = "{\"actor\":".into(),
        Corruption::EventType => r.event_type = "SomethingElse".into(),
    }
    r
}

#[derive(Debug, Clone)]
enum StreamSpec {
    Platform(usize),
    Experiment(usize),
}

#[derive(Debug, Clone)]
struct Round {
    /// Which outstanding records are delivered (cycled over them); the rest are withheld.
    keep: Vec<bool>,
    /// Extra copies of records delivered before or in this round.
    dups: Vec<Index>,
    /// Swaps that shuffle the batch.
    swaps: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
struct Scenario {
    streams: Vec<StreamSpec>,
    /// (stream, record, corruption, round from which it is repaired).
    poison: Vec<(Index, Index, Corruption, usize)>,
    rounds: Vec<Round>,
    /// Duplicates in the final delivery of everything still owed.
    final_dups: Vec<Index>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let stream = prop_oneof![
        (1usize..=12).prop_map(StreamSpec::Platform),
        (0usize..=4).prop_map(StreamSpec::Experiment),
    ];
    let corruption = prop_oneof![
        Just(Corruption::Payload),
        Just(Corruption::Metadata),
        Just(Corruption::EventType),
    ];
    let round = (
        prop::collection::vec(any::<bool>(), 1..12),
        prop::collection::vec(any::<Index>(), 0..6),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..24),
    )
        .prop_map(|(keep, dups, swaps)| Round { keep, dups, swaps });
    (
        prop::collection::vec(stream, 1..=5),
        prop::collection::vec(
            (any::<Index>(), any::<Index>(), corruption, 0usize..8),
            0..4,
        ),
        prop::collection::vec(round, 0..8),
        prop::collection::vec(any::<Index>(), 0..3),
    )
        .prop_map(|(streams, poison, rounds, final_dups)| Scenario {
            streams,
            poison,
            rounds,
            final_dups,
        })
}

/// Every stream's records, with unique feed ids, and the poison schedule by feed id.
struct Feed {
    records: Vec<Record>,
    poison: BTreeMap<u64, (Corruption, usize)>,
}

impl Feed {
    fn new(s: &Scenario) -> Self {
        let mut streams: Vec<Vec<Record>> = s
            .streams
            .iter()
            .enumerate()
            .map(|(i, spec)| match spec {
                // Two streams may share an id under different aggregate types.
                StreamSpec::Platform(n) => platform_stream(&format!("s{i}"), *n),
                StreamSpec::Experiment(checks) => experiment_stream(&format!("s{i}"), *checks),
            })
            .collect();
        let mut next_id = 0u64;
        for stream in &mut streams {
            for r in stream.iter_mut() {
                r.id = next_id;
                next_id += 1;
            }
        }
        let mut poison = BTreeMap::new();
        for (stream, rec, how, repaired_from) in &s.poison {
            let stream = &streams[stream.index(streams.len())];
            let r = &stream[rec.index(stream.len())];
            poison.insert(r.id, (*how, *repaired_from));
        }
        Self {
            records: streams.into_iter().flatten().collect(),
            poison,
        }
    }

    /// The record as the feed delivers it in `round` (`None`: everything is repaired).
    fn deliver(&self, id: u64, round: Option<usize>) -> Record {
        let r = &self.records[usize::try_from(id).expect("small")];
        match (self.poison.get(&id), round) {
            (Some((how, repaired_from)), Some(round)) if round < *repaired_from => corrupt(r, *how),
            _ => r.clone(),
        }
    }

    fn is_poison(&self, id: u64, round: Option<usize>) -> bool {
        matches!((self.poison.get(&id), round), (Some((_, from)), Some(round)) if round < *from)
    }
}

/// What one stream should do with the records of one batch, worked out independently of
/// the planner: apply every next sequence that was delivered in a valid form; the first
/// sequence after that which was delivered (poison or beyond a gap) and everything later fail.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    checkpoint: u64,
    failed: Vec<i64>,
    first_reason: Option<FirstReason>,
}

#[derive(Debug, PartialEq, Eq)]
enum FirstReason {
    Poison,
    Gap { expected: u64, found: i64 },
}

fn oracle(delivered: &[(i64, bool)], checkpoint: u64) -> Expected {
    // Every copy of one record has one form within a batch.
    let by_seq: BTreeMap<i64, bool> = delivered.iter().copied().collect();
    let mut k = checkpoint;
    while by_seq.get(&i64::try_from(k + 1).expect("small")) == Some(&true) {
        k += 1;
    }
    let failed: Vec<i64> = by_seq
        .keys()
        .copied()
        .filter(|s| u64::try_from(*s).is_ok_and(|s| s > k))
        .collect();
    let first_reason = failed.first().map(|&first| {
        if u64::try_from(first) == Ok(k + 1) {
            FirstReason::Poison
        } else {
            FirstReason::Gap {
                expected: k + 1,
                found: first,
            }
        }
    });
    Expected {
        checkpoint: k,
        failed,
        first_reason,
    }
}

#[derive(Default)]
struct Applier {
    checkpoints: BTreeMap<StreamKey, u64>,
    log: BTreeMap<StreamKey, Vec<Envelope>>,
}

impl Applier {
    fn checkpoint(&self, key: &StreamKey) -> u64 {
        self.checkpoints.get(key).copied().unwrap_or(0)
    }

    fn apply(&mut self, planned: &Plan<u64>) {
        let mut seen = BTreeSet::new();
        for batch in &planned.batches {
            assert!(seen.insert(batch.key.clone()), "one batch per stream");
            assert!(!batch.events.is_empty(), "no empty batches");
            let at = self.checkpoint(&batch.key);
            assert_eq!(batch.after, at, "batch follows the checkpoint");
            for (i, (_, envelope)) in batch.events.iter().enumerate() {
                assert_eq!(envelope.sequence, at + 1 + i as u64, "contiguous, in order");
                assert_eq!(envelope.aggregate_type, batch.key.aggregate_type);
                assert_eq!(envelope.aggregate_id, batch.key.aggregate_id);
            }
            self.log
                .entry(batch.key.clone())
                .or_default()
                .extend(batch.events.iter().map(|(_, e)| e.clone()));
            self.checkpoints
                .insert(batch.key.clone(), at + batch.events.len() as u64);
        }
    }
}

fn key_of(r: &Record) -> StreamKey {
    r.key()
}

/// Plans one batch, checks it against the oracle and applies it; returns the failed ids.
fn deliver(applier: &mut Applier, feed: &Feed, ids: &[u64], round: Option<usize>) -> BTreeSet<u64> {
    let batch: Vec<Record> = ids.iter().map(|id| feed.deliver(*id, round)).collect();
    let planned = plan(batch.clone(), |k| applier.checkpoint(k));

    // Every delivered record is accounted for exactly once.
    let applied: usize = planned.batches.iter().map(|b| b.events.len()).sum();
    assert_eq!(
        applied + planned.duplicates + planned.failures.len(),
        batch.len(),
        "applied + duplicates + failures = delivered"
    );

    // Per stream, against the oracle, and against planning that stream's records alone.
    let mut by_stream: BTreeMap<StreamKey, Vec<&Record>> = BTreeMap::new();
    for (r, id) in batch.iter().zip(ids) {
        by_stream.entry(key_of(r)).or_default().push(r);
        debug_assert_eq!(r.id, *id);
    }
    for (key, records) in &by_stream {
        let delivered: Vec<(i64, bool)> = records
            .iter()
            .map(|r| (r.sequence, !feed.is_poison(r.id, round)))
            .collect();
        let expected = oracle(&delivered, applier.checkpoint(key));
        let progressed = planned
            .batches
            .iter()
            .find(|b| &b.key == key)
            .map_or(applier.checkpoint(key), |b| b.after + b.events.len() as u64);
        assert_eq!(progressed, expected.checkpoint, "progress of {key:?}");
        let failures: Vec<_> = planned.failures.iter().filter(|f| &f.key == key).collect();
        let failed: Vec<i64> = failures.iter().map(|f| f.sequence).collect();
        assert_eq!(
            failed, expected.failed,
            "failures of {key:?}, each once, in order"
        );
        if let (Some(first), Some(reason)) = (failures.first(), &expected.first_reason) {
            match (reason, &first.reason) {
                (FirstReason::Poison, NotApplied::Poison(_)) => {}
                (
                    FirstReason::Gap { expected, found },
                    NotApplied::Gap {
                        expected: e,
                        found: f,
                    },
                ) => assert_eq!((expected, found), (e, f)),
                (want, got) => panic!("{key:?}: expected {want:?}, got {got:?}"),
            }
            for later in &failures[1..] {
                assert_eq!(
                    later.reason,
                    NotApplied::Blocked(u64::try_from(first.sequence).expect("positive")),
                    "{key:?}"
                );
            }
        }
        // A poison record or gap elsewhere changes nothing for this stream.
        let alone = plan(records.iter().map(|r| (*r).clone()).collect(), |k| {
            applier.checkpoint(k)
        });
        let alone_applied: Vec<u64> = alone
            .batches
            .iter()
            .flat_map(|b| b.events.iter().map(|(_, e)| e.sequence))
            .collect();
        let together_applied: Vec<u64> = planned
            .batches
            .iter()
            .filter(|b| &b.key == key)
            .flat_map(|b| b.events.iter().map(|(_, e)| e.sequence))
            .collect();
        assert_eq!(alone_applied, together_applied, "{key:?} is independent");
        assert_eq!(
            alone
                .failures
                .iter()
                .map(|f| f.sequence)
                .collect::<Vec<_>>(),
            failed
        );
    }

    applier.apply(&planned);
    planned.failures.iter().map(|f| f.id).collect()
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let feed = Feed::new(s);
    let all: Vec<u64> = feed.records.iter().map(|r| r.id).collect();
    let mut outstanding: BTreeSet<u64> = all.iter().copied().collect();
    let mut delivered_before: Vec<u64> = Vec::new();
    let mut applier = Applier::default();

    let rounds = s
        .rounds
        .iter()
        .enumerate()
        .map(|(i, r)| (Some(i), r.clone()))
        // Finally the feed delivers everything it still owes, repaired.
        .chain(std::iter::once((
            None,
            Round {
                keep: vec![true],
                dups: s.final_dups.clone(),
                swaps: Vec::new(),
            },
        )));
    for (round, spec) in rounds {
        let chosen: Vec<u64> = outstanding
            .iter()
            .enumerate()
            .filter(|(i, _)| spec.keep[i % spec.keep.len()])
            .map(|(_, id)| *id)
            .collect();
        let mut ids = chosen.clone();
        let pool: Vec<u64> = delivered_before.iter().chain(&chosen).copied().collect();
        if !pool.is_empty() {
            ids.extend(spec.dups.iter().map(|d| pool[d.index(pool.len())]));
        }
        if !ids.is_empty() {
            for (a, b) in &spec.swaps {
                let (a, b) = (a.index(ids.len()), b.index(ids.len()));
                ids.swap(a, b);
            }
        }
        let failed = deliver(&mut applier, &feed, &ids, round);
        prop_assert!(
            failed.is_subset(&outstanding),
            "only owed records fail: {failed:?}"
        );
        for id in &ids {
            if !failed.contains(id) {
                outstanding.remove(id);
            }
        }
        delivered_before.extend(&chosen);

        // Nothing is lost: a record the feed no longer owes has been applied, and one it
        // still owes has not.
        for r in &feed.records {
            let applied =
                u64::try_from(r.sequence).is_ok_and(|s| s <= applier.checkpoint(&r.key()));
            prop_assert_eq!(applied, !outstanding.contains(&r.id), "{:?}", r.key());
        }
    }
    prop_assert!(outstanding.is_empty(), "everything delivered in the end");

    // Each stream's log is exactly 1..=N, and equals one batch of everything (a rebuild).
    let mut rebuilt = Applier::default();
    let mut everything: Vec<Record> = feed.records.clone();
    everything.reverse();
    let once = plan(everything, |_| 0);
    prop_assert!(once.failures.is_empty());
    rebuilt.apply(&once);
    prop_assert_eq!(&applier.log, &rebuilt.log);
    let mut lengths: BTreeMap<StreamKey, usize> = BTreeMap::new();
    for r in &feed.records {
        *lengths.entry(r.key()).or_default() += 1;
    }
    for (key, n) in lengths {
        let seqs: Vec<u64> = applier.log[&key].iter().map(|e| e.sequence).collect();
        prop_assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    }
    // And the envelopes are the stored events, decoded.
    for r in &feed.records {
        let e = &applier.log[&r.key()][usize::try_from(r.sequence - 1).expect("positive")];
        let payload = match &e.event {
            AnyEvent::Experiment(ev) => serde_json::to_string(ev),
            AnyEvent::Platform(ev) => serde_json::to_string(ev),
        }
        .expect("serializes");
        prop_assert_eq!(&payload, &r.payload);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_delivery_applies_every_stream_exactly_once_in_order(s in scenario()) {
        run(&s)?;
    }
}

/// What a plan decided, in comparable form.
type Decisions = (
    Vec<(StreamKey, u64, Vec<(u64, Envelope)>)>,
    usize,
    Vec<(u64, StreamKey, i64, NotApplied)>,
);

fn decisions(planned: Plan<u64>) -> Decisions {
    (
        planned
            .batches
            .into_iter()
            .map(|b| (b.key, b.after, b.events))
            .collect(),
        planned.duplicates,
        planned
            .failures
            .into_iter()
            .map(|f| (f.id, f.key, f.sequence, f.reason))
            .collect(),
    )
}

/// The embedded rebuild decodes on one thread and plans on another: planning records decoded
/// beforehand, sorted into their streams in delivery order, decides exactly what planning the
/// raw records does, whatever the batch (poisoned, shuffled, duplicated) and the checkpoints.
fn decoded_plans_alike(s: &Scenario, checkpoints: &[Index]) -> Result<(), TestCaseError> {
    let feed = Feed::new(s);
    let spec = s.rounds.first().cloned().unwrap_or(Round {
        keep: vec![true],
        dups: Vec::new(),
        swaps: Vec::new(),
    });
    let all: Vec<u64> = feed.records.iter().map(|r| r.id).collect();
    let mut ids: Vec<u64> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| spec.keep[i % spec.keep.len()])
        .map(|(_, id)| *id)
        .collect();
    ids.extend(spec.dups.iter().map(|d| all[d.index(all.len())]));
    if !ids.is_empty() {
        for (a, b) in &spec.swaps {
            let (a, b) = (a.index(ids.len()), b.index(ids.len()));
            ids.swap(a, b);
        }
    }
    let batch: Vec<Record> = ids.iter().map(|id| feed.deliver(*id, Some(0))).collect();
    let mut lengths: BTreeMap<StreamKey, usize> = BTreeMap::new();
    for r in &feed.records {
        *lengths.entry(r.key()).or_default() += 1;
    }
    let at: BTreeMap<StreamKey, u64> = lengths
        .into_iter()
        .zip(checkpoints.iter().cycle())
        .map(|((key, n), i)| (key, i.index(n + 2) as u64))
        .collect();
    let checkpoint = |k: &StreamKey| at.get(k).copied().unwrap_or(0);

    let mut streams: BTreeMap<StreamKey, Vec<Decoded<u64>>> = BTreeMap::new();
    for r in &batch {
        streams.entry(r.key()).or_default().push(Decoded {
            id: r.id,
            sequence: r.sequence,
            event: Envelope::decode(r.raw()),
        });
    }
    prop_assert_eq!(
        decisions(plan_decoded(streams, checkpoint)),
        decisions(plan(batch, checkpoint))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn records_decoded_beforehand_are_planned_alike(
        s in scenario(),
        checkpoints in prop::collection::vec(any::<Index>(), 1..6),
    ) {
        decoded_plans_alike(&s, &checkpoints)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Worked examples
// ---------------------------------------------------------------------------------------------

fn stream_with_ids(id: &str, n: usize) -> Vec<Record> {
    let mut records = platform_stream(id, n);
    for (i, r) in records.iter_mut().enumerate() {
        r.id = i as u64 + 1;
    }
    records
}

#[test]
fn a_gap_holds_the_stream_and_its_later_records() {
    let r = stream_with_ids("p", 5);
    // 1 and 2 applied earlier; 3 withheld; 4 and 5 delivered, with 5 twice.
    let planned = plan(vec![r[4].clone(), r[3].clone(), r[4].clone()], |_| 2);
    assert!(planned.batches.is_empty());
    let reasons: Vec<_> = planned
        .failures
        .iter()
        .map(|f| (f.sequence, f.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                4,
                NotApplied::Gap {
                    expected: 3,
                    found: 4
                }
            ),
            (5, NotApplied::Blocked(4)),
        ],
        "a record blocked twice is failed once"
    );
    assert_eq!(planned.duplicates, 1, "its second copy is a duplicate");
}

#[test]
fn a_poison_record_fails_once_and_its_copies_are_duplicates() {
    let r = stream_with_ids("p", 3);
    let bad = corrupt(&r[1], Corruption::Payload);
    let planned = plan(vec![bad.clone(), r[0].clone(), bad, r[2].clone()], |_| 0);
    assert_eq!(planned.batches.len(), 1);
    assert_eq!(planned.batches[0].events.len(), 1);
    assert_eq!(planned.duplicates, 1);
    assert_eq!(planned.failures.len(), 2);
    assert!(matches!(planned.failures[0].reason, NotApplied::Poison(_)));
    assert_eq!(planned.failures[1].reason, NotApplied::Blocked(2));
}

#[test]
fn an_unreadable_checkpoint_does_not_panic() {
    // The embedded projector answers u64::MAX when a checkpoint cannot be read (and then
    // reports the error): planning must not overflow.
    let r = stream_with_ids("p", 3);
    let planned = plan(r, |_| u64::MAX);
    assert!(planned.batches.is_empty());
    assert!(planned.failures.is_empty());
    assert_eq!(planned.duplicates, 3);
}
