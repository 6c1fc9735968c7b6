//! The platform's ledgers over a real SQLite file: the halt switch never runs out of room,
//! books close and continue chained to one another, a cold process finds the current book,
//! a command retried across a closing is answered once, and a store of an earlier release
//! (one `platform` stream) carries on.

use std::sync::Arc;

use command_lambdas::clock::SystemClock;
use common::{at, context, store_at};
use domain::ledger::book_id;
use domain::platform::{Concern, LEGACY_PLATFORM_ID, PlatformBook, PlatformCommand};
use domain::provenance::Role;
use domain::spec::Username;
use embedded_write::SqliteService;
use embedded_write::sqlite::verify_file;
use test_support::common;

fn service(store: embedded_write::SqliteStore) -> SqliteService {
    SqliteService::new(Arc::new(store), Arc::new(SystemClock))
}

fn book_number(book: &str) -> u64 {
    domain::ledger::parse_book_id(book).expect("a book").1
}

/// 100,000 halts and lifts, then a halt: the halt switch's ledger went on through its books,
/// each bounded, the log verifies whole, and a process that starts afresh finds the current
/// book without reading the ones before it.
#[tokio::test]
async fn the_halt_switch_works_after_a_hundred_thousand_cycles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    let platform = service(store);
    for cycle in 0..100_000 {
        platform
            .halt("drill", &context(&format!("halt-{cycle}")))
            .await
            .unwrap_or_else(|e| panic!("halt {cycle} refused: {e}"));
        platform
            .lift_halt(&context(&format!("lift-{cycle}")))
            .await
            .unwrap_or_else(|e| panic!("lift {cycle} refused: {e}"));
    }
    let halted = platform
        .halt("the real thing", &context("final-halt"))
        .await
        .expect("the halt switch still works");
    assert_eq!(halted.events.len(), 1, "{halted:?}");
    let state = platform.platform().await.expect("state");
    assert_eq!(
        state.aggregate.halted().map(|h| h.0),
        Some("the real thing")
    );
    let book = halted.aggregate_id.clone();
    let books = book_number(&book);
    assert!(books > 100, "200,001 events in {books} books");

    // Every book is within its bounds, opens from the one before and closes into the next.
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, MAX(sequence) FROM events WHERE aggregate_type = 'Platform' \
         GROUP BY aggregate_id",
    )
    .fetch_all(&pool)
    .await
    .expect("books");
    assert_eq!(sizes.len() as u64, books);
    for (id, size) in &sizes {
        assert!(
            (1..=domain::limits::MAX_BOOK_EVENTS as i64).contains(size),
            "{id} has {size} events"
        );
    }
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!(report.events, 200_001 + 2 * (books - 1));
    assert_eq!(report.books.len() as u64, books);

    // A process that starts now finds the same book, and halting again changes nothing.
    let (cold, _pool) = store_at(&db).await;
    let cold = service(cold);
    let state = cold
        .platform_of(&[Concern::HaltSwitch])
        .await
        .expect("state");
    assert_eq!(state.books[0].book, book);
    assert!(state.aggregate.halted().is_some());
    let again = cold
        .halt("again", &context("another-halt"))
        .await
        .expect("halt");
    assert!(again.events.is_empty());
    // The first halt's id is still answered with its first outcome, across books.
    let retried = cold
        .halt("drill", &context("halt-99999"))
        .await
        .expect("retried");
    assert!(retried.deduplicated, "{retried:?}");
}

/// A book that closes between a command and its retry: the retry is answered from the book
/// before, with the first outcome, and nothing is appended twice.
#[tokio::test]
async fn a_command_retried_across_a_closing_is_answered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let platform = service(store);
    let mut last = None;
    let mut cycle = 0;
    // Until the first book closes.
    while last
        .as_ref()
        .is_none_or(|outcome: &command_lambdas::CommandOutcome| {
            outcome.aggregate_id == book_id("halt-switch", 1)
        })
    {
        let id = format!("c{cycle}");
        last = Some(if cycle % 2 == 0 {
            platform.halt("drill", &context(&id)).await.expect("halt")
        } else {
            platform.lift_halt(&context(&id)).await.expect("lift")
        });
        cycle += 1;
    }
    let opened = last.expect("an outcome");
    assert_eq!(opened.aggregate_id, "halt-switch.2");
    // The command before the closing, retried from a process that knows nothing.
    let (cold, _pool) = store_at(&db).await;
    let cold = service(cold);
    let before = format!("c{}", cycle - 2);
    let retried = if (cycle - 2) % 2 == 0 {
        cold.halt("drill", &context(&before)).await
    } else {
        cold.lift_halt(&context(&before)).await
    }
    .expect("retried");
    assert!(retried.deduplicated);
    assert_eq!(retried.aggregate_id, "halt-switch.1");
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
}

/// A store of an earlier release keeps everything in one `platform` stream: each ledger's
/// first book opens from it, with its concern's state, and nothing is written to it again.
#[tokio::test]
async fn a_store_of_an_earlier_release_carries_on_from_its_platform_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    // What an earlier release wrote: the one stream, type `Platform`, id `platform`.
    for (i, command) in [
        PlatformCommand::HaltAll {
            reason: "old incident".into(),
            at: at(1),
        },
        PlatformCommand::AddUser {
            username: Username::parse("ada").expect("name"),
            role: Role::Admin,
            at: at(2),
        },
    ]
    .into_iter()
    .enumerate()
    {
        store
            .execute::<PlatformBook>(LEGACY_PLATFORM_ID, command, &context(&format!("old-{i}")))
            .await
            .expect("an earlier release's event");
    }
    let platform = service(store);
    let state = platform.platform().await.expect("state");
    assert_eq!(state.aggregate.halted().map(|h| h.0), Some("old incident"));
    assert!(state.aggregate.user("ada").is_some());
    // Nothing is written until a ledger changes; then its first book opens from the stream.
    let lifted = platform.lift_halt(&context("lift")).await.expect("lift");
    assert_eq!(lifted.aggregate_id, "halt-switch.1");
    assert_eq!(lifted.events[0].sequence, 2, "after the opening");
    let opening: (String, String) = sqlx::query_as(
        "SELECT event_type, payload FROM events WHERE aggregate_id = 'halt-switch.1' AND sequence = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the opening");
    assert_eq!(opening.0, "BookOpened");
    let payload: serde_json::Value = serde_json::from_str(&opening.1).expect("JSON");
    assert_eq!(payload["BookOpened"]["previous"]["stream"], "platform");
    assert_eq!(payload["BookOpened"]["previous"]["sequence"], 2);
    assert!(
        payload["BookOpened"]["state"]["HaltSwitch"]["halted"]["reason"] == "old incident",
        "{payload}"
    );
    let state = platform.platform().await.expect("state");
    assert!(state.aggregate.halted().is_none());
    assert!(
        state.aggregate.user("ada").is_some(),
        "other ledgers still read the old stream"
    );
    let old: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE aggregate_id = 'platform'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(old, 2);
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
}

/// `python3 docs/audit/verify_chain.py DB`: the independent verifier's exit code and output.
fn independent_verdict(db: &std::path::Path) -> (Option<i32>, String) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit/verify_chain.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(db)
        .output()
        .expect("run python3 (cargo xtask test installs it)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Books removed or cut short behind the platform's back, every chain of every remaining
/// stream intact: both verifiers find where the books no longer continue one another.
#[tokio::test]
async fn a_book_removed_or_cut_short_is_found_by_both_verifiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    let platform = service(store);
    let mut cycle = 0;
    while platform
        .platform_of(&[Concern::HaltSwitch])
        .await
        .expect("state")
        .books[0]
        .book
        != "halt-switch.3"
    {
        platform
            .halt("drill", &context(&format!("halt-{cycle}")))
            .await
            .expect("halt");
        platform
            .lift_halt(&context(&format!("lift-{cycle}")))
            .await
            .expect("lift");
        cycle += 1;
    }
    assert!(verify_file(&db, 0, |_| {}).expect("verify").is_ok());
    assert_eq!(independent_verdict(&db).0, Some(0));
    drop(platform);
    let copy = dir.path().join("copy.db");
    sqlx::query("VACUUM INTO ?")
        .bind(copy.to_string_lossy().into_owned())
        .execute(&pool)
        .await
        .expect("copy the store");

    // The closing of the first book removed: book 2 continues a stream that ends elsewhere.
    sqlx::query(
        "DELETE FROM events WHERE aggregate_id = 'halt-switch.1' \
         AND sequence = (SELECT MAX(sequence) FROM events WHERE aggregate_id = 'halt-switch.1')",
    )
    .execute(&pool)
    .await
    .expect("cut");
    pool.close().await;
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    let fault = &report.faults[0];
    assert_eq!(
        (fault.aggregate_id.as_str(), fault.sequence),
        ("halt-switch.2", 1)
    );
    assert!(
        fault.to_string().contains("but that stream ends at"),
        "{fault}"
    );
    let (code, said) = independent_verdict(&db);
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains("Platform/halt-switch.2 at sequence 1: it continues halt-switch.1"),
        "{said}"
    );

    // The whole second book removed: the third continues a stream the log does not hold.
    let (_, pool) = store_at(&copy).await;
    sqlx::query("DELETE FROM events WHERE aggregate_id = 'halt-switch.2'")
        .execute(&pool)
        .await
        .expect("remove");
    pool.close().await;
    let report = verify_file(&copy, 0, |_| {}).expect("verify");
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    assert_eq!(report.faults[0].aggregate_id, "halt-switch.3");
    assert!(
        report.faults[0]
            .to_string()
            .contains("which is not in the log"),
        "{}",
        report.faults[0]
    );
    let (code, said) = independent_verdict(&copy);
    assert_eq!(code, Some(4), "{said}");
    assert!(said.contains("which is not in the log"), "{said}");
}
