//! The embedded scheduler against a real SQLite store, at chosen instants: recurring schedules
//! fire once per occurrence (also across a daylight saving change), late occurrences past the
//! grace are skipped, blackout windows and halts skip them, one-shot scheduled starts happen
//! when due or are cancelled with the reason.

use std::sync::{Arc, Mutex};

use command_lambdas::clock::{Clock, UuidV7};
use command_lambdas::scheduler::{Fired, Scheduler, occurrence_id};
use command_lambdas::service::ExperimentService;
use domain::Timestamp;
use domain::experiment::Status;
use domain::platform::PlatformCommand;
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::schedule::BlackoutWindow;
use domain::spec::{BlackoutId, ScheduleId};
use embedded_write::sqlite::repository;
use embedded_write::{SqliteService, SqliteStore};
use test_support::common;

/// A clock the test sets.
#[derive(Debug)]
struct Manual(Mutex<Timestamp>);

impl Clock for Manual {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("lock")
    }
}

fn utc(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339")
}

struct World {
    service: SqliteService,
    clock: Arc<Manual>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, pool) = common::store_at(&dir.path().join("chaos.db")).await;
        let clock = Arc::new(Manual(Mutex::new(utc("2026-01-01T00:00:00Z"))));
        let store = SqliteStore::new(repository(pool), clock.clone(), Arc::new(UuidV7));
        World {
            service: ExperimentService::new(Arc::new(store), clock.clone()),
            clock,
            _dir: dir,
        }
    }

    fn scheduler(&self) -> Scheduler<embedded_write::sqlite::SqliteRepository> {
        Scheduler::new(self.service.clone())
    }

    /// Ticks at `now` (the clock is set to it too).
    async fn tick(&self, now: &str, scheduled: &[&str]) -> Vec<Fired> {
        let now = utc(now);
        *self.clock.0.lock().expect("lock") = now;
        let scheduled: Vec<String> = scheduled.iter().map(|s| (*s).to_owned()).collect();
        self.scheduler().tick(now, &scheduled).await.expect("tick")
    }

    async fn platform(&self, command: PlatformCommand) {
        let ctx = common::context(&uuid::Uuid::now_v7().to_string());
        self.service
            .store()
            .execute_in_ledger::<domain::platform::PlatformBook>(
                command.concern().ledger(),
                command,
                &ctx,
            )
            .await
            .expect("platform command");
    }

    async fn schedule(&self, id: &str, cron: &str, zone: &str) {
        self.platform(PlatformCommand::AddSchedule {
            id: ScheduleId::parse(id).expect("id"),
            cron: cron.into(),
            time_zone: zone.into(),
            spec: common::spec(),
            at: self.clock.now(),
        })
        .await;
    }

    async fn status(&self, id: &str) -> Option<Status> {
        let loaded = self.service.load(id).await.ok()?;
        loaded.aggregate.spec().map(|_| loaded.aggregate.status())
    }
}

fn started(fired: &[Fired]) -> Vec<String> {
    fired
        .iter()
        .filter_map(|f| match f {
            Fired::Started { experiment, .. } => Some(experiment.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_recurring_schedule_fires_once_per_occurrence_within_its_grace() {
    let world = World::new().await;
    world.schedule("hourly", "0 * * * *", "UTC").await;
    assert!(world.tick("2026-11-18T09:59:59Z", &[]).await.is_empty());
    let fired = world.tick("2026-11-18T10:00:30Z", &[]).await;
    assert_eq!(started(&fired), vec!["hourly-20261118T1000Z"]);
    assert_eq!(
        world.status("hourly-20261118T1000Z").await,
        Some(Status::Running)
    );
    // Ticks again, and a second scheduler racing this one, change nothing.
    assert!(world.tick("2026-11-18T10:01:00Z", &[]).await.is_empty());
    assert!(world.tick("2026-11-18T10:04:59Z", &[]).await.is_empty());
    // Down from 10:55 to 11:06: the 11:00 run is past its five minutes of grace, and skipped.
    assert!(world.tick("2026-11-18T11:06:00Z", &[]).await.is_empty());
    assert_eq!(world.status("hourly-20261118T1100Z").await, None);
    // The run it created is attributed to the scheduler.
    let loaded = world
        .service
        .load("hourly-20261118T1000Z")
        .await
        .expect("load");
    assert!(
        loaded
            .events
            .iter()
            .all(|e| e.metadata.actor == "scheduler"
                && e.metadata.source == Source::Schedule.as_str())
    );
}

#[tokio::test]
async fn a_schedule_in_a_time_the_clocks_skip_fires_once_at_the_jump() {
    let world = World::new().await;
    world.schedule("night", "30 2 * * *", "Europe/Berlin").await;
    // 2026-03-29, Berlin: 02:30 does not exist; the run fires at the jump, 03:00 CEST.
    let fired = world.tick("2026-03-29T01:00:10Z", &[]).await;
    assert_eq!(started(&fired), vec!["night-20260329T0100Z"]);
    assert!(world.tick("2026-03-29T01:04:00Z", &[]).await.is_empty());
    // The next night, 02:30 CEST is 00:30 UTC.
    let fired = world.tick("2026-03-30T00:30:05Z", &[]).await;
    assert_eq!(started(&fired), vec!["night-20260330T0030Z"]);
}

#[tokio::test]
async fn blackouts_and_halts_skip_occurrences_and_starts() {
    let world = World::new().await;
    world
        .schedule("nightly", "0 23 * * *", "Europe/Berlin")
        .await;
    world
        .platform(PlatformCommand::AddBlackout {
            id: BlackoutId::parse("nights").expect("id"),
            window: BlackoutWindow::Daily {
                time_zone: "Europe/Berlin".into(),
                start: "22:00".into(),
                end: "06:00".into(),
                days: vec![],
            },
            at: world.clock.now(),
        })
        .await;
    // 23:00 Berlin (22:00 UTC in winter) is inside the 22:00-06:00 window.
    let fired = world.tick("2026-12-01T22:00:10Z", &[]).await;
    assert!(
        matches!(&fired[..], [Fired::Skipped { reason, .. }] if reason.contains("blackout nights")),
        "{fired:?}"
    );
    assert_eq!(world.status("nightly-20261201T2200Z").await, None);

    // A start by hand in the window is refused too.
    let manual = "by-hand";
    world
        .service
        .create(manual, common_input(), &common::context("create-by-hand"))
        .await
        .expect("create");
    let refused = world
        .service
        .start(manual, &common::context("start-by-hand"))
        .await
        .expect_err("refused in a blackout");
    assert!(refused.to_string().contains("blackout nights"), "{refused}");

    // Halted: skipped, with the reason.
    world
        .platform(PlatformCommand::RemoveBlackout {
            id: BlackoutId::parse("nights").expect("id"),
            at: world.clock.now(),
        })
        .await;
    world
        .platform(PlatformCommand::HaltAll {
            reason: "incident 7".into(),
            at: world.clock.now(),
        })
        .await;
    let fired = world.tick("2026-12-02T22:00:10Z", &[]).await;
    assert!(
        matches!(&fired[..], [Fired::Skipped { reason, .. }] if reason.contains("incident 7")),
        "{fired:?}"
    );
}

fn common_input() -> domain::spec::ExperimentSpecInput {
    serde_json::from_value(serde_json::to_value(common::spec()).expect("json")).expect("input")
}

#[tokio::test]
async fn one_shot_starts_happen_when_due_or_are_cancelled_with_the_reason() {
    let world = World::new().await;
    let ctx = |id: &str| {
        CommandContext::new(
            id,
            id,
            Actor {
                id: "alice".into(),
                role: Role::Operator,
            },
            Source::Cli,
        )
        .expect("context")
    };
    *world.clock.0.lock().expect("lock") = utc("2026-11-18T08:00:00Z");
    for id in ["later", "halted"] {
        world
            .service
            .create(id, common_input(), &ctx(&format!("create-{id}")))
            .await
            .expect("create");
        world
            .service
            .schedule(
                id,
                utc("2026-11-18T09:00:00Z"),
                &ctx(&format!("schedule-{id}")),
            )
            .await
            .expect("schedule");
    }
    assert!(
        world
            .tick("2026-11-18T08:59:59Z", &["later"])
            .await
            .is_empty()
    );
    let fired = world.tick("2026-11-18T09:00:01Z", &["later"]).await;
    assert_eq!(started(&fired), vec!["later"]);
    assert_eq!(world.status("later").await, Some(Status::Running));
    assert!(
        world
            .tick("2026-11-18T09:00:02Z", &["later"])
            .await
            .is_empty()
    );

    world
        .platform(PlatformCommand::HaltAll {
            reason: "change freeze".into(),
            at: world.clock.now(),
        })
        .await;
    let fired = world.tick("2026-11-18T09:00:03Z", &["halted"]).await;
    assert!(
        matches!(&fired[..], [Fired::Refused { experiment, reason }] if experiment == "halted" && reason.contains("change freeze")),
        "{fired:?}"
    );
    assert_eq!(world.status("halted").await, Some(Status::Cancelled));
}

#[tokio::test]
async fn a_run_created_but_not_started_before_a_crash_is_started_not_duplicated() {
    let world = World::new().await;
    world.schedule("hourly", "0 * * * *", "UTC").await;
    let id = occurrence_id("hourly", utc("2026-11-18T10:00:00Z"));
    world
        .service
        .create(
            &id,
            common_input(),
            &common::context("created-before-the-crash"),
        )
        .await
        .expect("create");
    let fired = world.tick("2026-11-18T10:00:40Z", &[]).await;
    assert_eq!(started(&fired), vec![id.clone()]);
    let loaded = world.service.load(&id).await.expect("load");
    assert_eq!(loaded.events.len(), 2, "one creation, one start");
}
