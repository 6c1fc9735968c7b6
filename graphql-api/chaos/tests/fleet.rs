//! The local demo fleet with real worker processes (`chaos fleet worker`): supervision and
//! replacement, pause and resume, the balancer, the health probe and alarms, and workers that
//! never outlive their supervisor.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use command_lambdas::adapters::{AdapterError, AlarmSource, HealthProbe, TargetProvider};
use command_lambdas::clock::SystemClock;
use demo_fleet::{Fleet, FleetChange, FleetConfig, LocalFleets, WorkerCommand};
use domain::spec::{FailureType, StopCondition, Target, TargetKind};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

fn config(name: &str, size: u32) -> FleetConfig {
    let mut config = FleetConfig::new(
        name,
        size,
        WorkerCommand {
            program: CHAOS.into(),
            args: vec!["fleet".into(), "worker".into()],
        },
    );
    config.replace_after = Duration::from_millis(300);
    config
}

async fn fleet(name: &str, size: u32) -> Fleet {
    Fleet::start(config(name, size), Arc::new(SystemClock))
        .await
        .expect("the fleet starts")
}

fn target(name: &str) -> Target {
    Target {
        kind: TargetKind::LocalFleet,
        group: name.into(),
    }
}

/// GET through `addr`; the status code and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` is running (a zombie waiting to be reaped is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_terminated_worker_is_out_at_once_and_replaced_after_the_delay() {
    let fleet = fleet("kill", 3).await;
    let t = target("kill");
    let before = fleet.candidates(&t).await.expect("candidates");
    assert_eq!(before.len(), 3);
    let victim = before[0].clone();
    let pid = fleet
        .status()
        .members
        .iter()
        .find(|m| m.id == victim.as_str())
        .expect("member")
        .pid;

    let injected = fleet
        .inject(&t, std::slice::from_ref(&victim), FailureType::Terminate)
        .await
        .expect("inject");
    assert_eq!(injected.targets, vec![victim.clone()]);
    // Out of service before anything can sample it whole.
    let health = fleet.sample(&t).await.expect("sample");
    assert_eq!((health.healthy, health.total), (2, 3));
    assert!(
        !fleet
            .candidates(&t)
            .await
            .expect("candidates")
            .contains(&victim)
    );
    until("the process is gone", Duration::from_secs(5), || {
        !alive(pid)
    })
    .await;

    until("a replacement in service", Duration::from_secs(10), || {
        fleet.status().healthy == 3
    })
    .await;
    let events = fleet.status().events;
    let lost = events
        .iter()
        .find(|e| e.worker == victim.as_str() && matches!(e.change, FleetChange::Lost { .. }))
        .expect("the loss is recorded");
    let in_service = events
        .iter()
        .find(|e| {
            e.change == FleetChange::InService && e.replaces.as_deref() == Some(victim.as_str())
        })
        .expect("the replacement is recorded");
    let took = in_service.at.millis_since(lost.at).expect("later");
    assert!(
        took >= 300,
        "replaced after the 300 ms delay, not {took} ms"
    );
    let after = fleet.candidates(&t).await.expect("candidates");
    assert_eq!(after.len(), 3);
    assert!(!after.contains(&victim), "the replacement has a new id");
    assert_eq!(fleet.sample(&t).await.expect("sample").healthy, 3);
    fleet.stop();
}

#[tokio::test]
async fn a_worker_killed_from_outside_is_recorded_lost_and_replaced() {
    let fleet = fleet("outside", 2).await;
    let member = fleet.status().members[0].clone();
    kill(
        Pid::from_raw(i32::try_from(member.pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill");
    until(
        "the loss is noticed and replaced",
        Duration::from_secs(10),
        || {
            let status = fleet.status();
            status.healthy == 2 && !status.members.iter().any(|m| m.id == member.id)
        },
    )
    .await;
    let events = fleet.status().events;
    assert!(events.iter().any(|e| e.worker == member.id
        && matches!(&e.change, FleetChange::Lost { how } if how.contains("signal"))));
    fleet.stop();
}

#[tokio::test]
async fn a_paused_worker_is_unhealthy_and_skipped_until_resumed() {
    let fleet = fleet("pause", 3).await;
    let t = target("pause");
    let victim = fleet.candidates(&t).await.expect("candidates")[0].clone();
    fleet
        .inject(
            &t,
            std::slice::from_ref(&victim),
            FailureType::Pause { duration_secs: 60 },
        )
        .await
        .expect("pause");
    let health = fleet.sample(&t).await.expect("sample");
    assert_eq!(health.healthy, 2);
    // Still a member (paused, not gone), so still a candidate.
    assert!(
        fleet
            .candidates(&t)
            .await
            .expect("candidates")
            .contains(&victim)
    );
    // The balancer sends nothing to it: every request is answered, by the others.
    let addr = fleet.balancer();
    for _ in 0..9 {
        let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/"))
            .await
            .expect("join");
        assert_eq!(status, 200);
        assert!(
            !body.contains(&format!("\"{}\"", victim.as_str())),
            "{body}"
        );
    }
    let said = fleet
        .rollback(
            &t,
            std::slice::from_ref(&victim),
            FailureType::Pause { duration_secs: 60 },
        )
        .await
        .expect("rollback");
    assert!(said.contains(victim.as_str()), "{said}");
    until("healthy again", Duration::from_secs(5), || {
        fleet.status().healthy == 3
    })
    .await;
    let changes: Vec<FleetChange> = fleet
        .status()
        .events
        .into_iter()
        .filter(|e| e.worker == victim.as_str())
        .map(|e| e.change)
        .collect();
    assert!(changes.contains(&FleetChange::Paused) && changes.contains(&FleetChange::Resumed));
    fleet.stop();
}

#[tokio::test]
async fn a_pause_ends_by_itself_after_its_duration() {
    let fleet = fleet("timed", 2).await;
    let t = target("timed");
    let victim = fleet.candidates(&t).await.expect("candidates")[0].clone();
    fleet
        .inject(
            &t,
            std::slice::from_ref(&victim),
            FailureType::Pause { duration_secs: 1 },
        )
        .await
        .expect("pause");
    assert_eq!(fleet.status().healthy, 1);
    until("resumed after 1 s", Duration::from_secs(5), || {
        fleet.status().healthy == 2
    })
    .await;
    fleet.stop();
}

#[tokio::test]
async fn the_balancer_spreads_requests_and_the_probe_reads_its_traffic() {
    let fleet = fleet("spread", 3).await;
    let addr = fleet.balancer();
    let workers = tokio::task::spawn_blocking(move || {
        (0..6)
            .map(|_| {
                let (status, body) = get(addr, "/orders");
                assert_eq!(status, 200);
                let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
                assert_eq!(doc["path"], "/orders");
                doc["worker"].as_str().expect("worker").to_owned()
            })
            .collect::<std::collections::BTreeSet<_>>()
    })
    .await
    .expect("join");
    assert_eq!(
        workers.len(),
        3,
        "round robin reaches every worker: {workers:?}"
    );
    until("the synthetic load shows", Duration::from_secs(5), || {
        fleet.status().traffic.requests > 0
    })
    .await;
    let health = fleet.sample(&target("spread")).await.expect("sample");
    assert_eq!(health.error_rate_bp, 0);
    fleet.stop();
}

#[tokio::test]
async fn unknown_groups_and_alarms_are_refused_or_fail_closed() {
    let fleets = LocalFleets::new(vec![fleet("alarms", 1).await]);
    let other = target("nope");
    assert!(matches!(
        fleets.candidates(&other).await,
        Err(AdapterError::NoSuchGroup(_))
    ));
    let asg = Target {
        kind: TargetKind::AutoScalingGroup,
        group: "alarms".into(),
    };
    assert!(matches!(
        fleets.sample(&asg).await,
        Err(AdapterError::NoSuchGroup(_))
    ));
    let alarm = |name: &str| StopCondition::Alarm {
        alarm_name: name.into(),
    };
    let tripped = fleets
        .first_tripped(&[alarm("alarms-errors"), alarm("missing")])
        .await
        .expect("alarms");
    let tripped = tripped.expect("a missing alarm trips");
    assert_eq!(tripped.condition, alarm("missing"));
    assert!(
        tripped.detail.contains("does not exist"),
        "{}",
        tripped.detail
    );

    let fleet = &fleets.fleets()[0];
    fleet.set_alarm("latency", Some(false));
    assert_eq!(
        fleets
            .first_tripped(&[alarm("latency"), alarm("alarms-errors")])
            .await
            .expect("alarms"),
        None
    );
    fleet.set_alarm("latency", Some(true));
    assert!(
        fleets
            .first_tripped(&[alarm("latency")])
            .await
            .expect("alarms")
            .is_some()
    );
    fleet.stop();
}

#[test]
fn workers_exit_when_their_supervisor_is_killed() {
    let mut up = Command::new(CHAOS)
        .args([
            "fleet",
            "up",
            "--fleet-name",
            "orphans",
            "--fleet-size",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chaos fleet up");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let line = lines.next().expect("a record line").expect("read");
        let event: serde_json::Value = serde_json::from_str(&line).expect("json");
        if event["kind"] == "STARTED" {
            pids.push(u32::try_from(event["pid"].as_u64().expect("pid")).expect("pid"));
        }
    }
    assert!(pids.iter().all(|p| alive(*p)));
    up.kill().expect("SIGKILL the supervisor");
    up.wait().expect("reap");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "workers outlived their supervisor"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `chaos serve --stop-when-stdin-closes` stops, with its whole demo fleet, when whoever holds
/// its standard input dies, even by SIGKILL: what keeps a test's servers from outliving it.
#[test]
fn serve_and_its_fleet_stop_when_the_holder_of_its_stdin_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The holder: a process whose standard output is the server's standard input, and which
    // this test kills as a test runner might be killed.
    let mut holder = Command::new("sleep")
        .arg("600")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sleep");
    let pipe = holder.stdout.take().expect("the holder's output");
    let mut serve = Command::new(CHAOS)
        .arg("--db")
        .arg(dir.path().join("chaos.db"))
        .args(["serve", "--addr", "127.0.0.1:0", "--stop-when-stdin-closes"])
        .args(["--fleet-size", "2"])
        .stdin(Stdio::from(pipe))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos serve");
    let mut lines = BufReader::new(serve.stderr.take().expect("stderr")).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .expect("the server announced its address")
            .expect("read");
        if let Some(addr) = line.strip_prefix("chaos: listening on http://") {
            break addr.parse().expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let (status, body) = get(addr, "/fleet");
    assert_eq!(status, 200, "{body}");
    let fleets: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let pids: Vec<u32> = fleets
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|fleet| fleet["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|member| u32::try_from(member["pid"].as_u64()?).ok())
        .collect();
    assert_eq!(pids.len(), 2, "{fleets}");
    assert!(pids.iter().all(|p| alive(*p)));

    holder.kill().expect("SIGKILL the holder");
    holder.wait().expect("reap the holder");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server outlived the holder of its standard input"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "it stops cleanly: {status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "workers outlived their server");
        std::thread::sleep(Duration::from_millis(50));
    }
}
