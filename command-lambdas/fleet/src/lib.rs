//! The local demo fleet: the target of experiments in embedded mode. Real worker processes
//! serving HTTP behind a load balancer on 127.0.0.1, supervised the way an Auto Scaling group
//! keeps its capacity: a worker that dies is replaced after a delay, and the replacement is in
//! service once it passes a health check.
//!
//! - Workers: `chaos fleet worker` processes ([`worker`]), health-checked every
//!   [`FleetConfig::check_every`]; a worker that does not answer in time (paused, say) is
//!   unhealthy and gets no traffic until it answers again.
//! - The balancer ([`balancer`]) sends each request to the next healthy worker, and keeps a
//!   window of latencies and errors. A light synthetic load
//!   ([`FleetConfig::requests_per_sec`]) keeps that window filled, as real users would.
//! - The fleet keeps its own record ([`FleetEvent`]): workers started, in service, lost,
//!   paused and resumed, with times. That record is what an experiment's measured recovery is
//!   checked against.
//!
//! As a target ([`TargetProvider`]): the candidates are the workers in service; terminate is
//! SIGKILL, pause is SIGSTOP then SIGCONT after the spec's duration (rollback resumes at
//! once). As a health source ([`HealthProbe`]): healthy and desired workers, p95 latency and
//! error rate through the balancer. As an alarm source ([`AlarmSource`]): `<fleet>-errors`
//! (error rate over 10 % in the window), plus alarms set by hand; any other name trips (fail
//! closed).

pub mod balancer;
pub mod worker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::Timestamp;
use domain::experiment::HealthSnapshot;
use domain::spec::{FailureType, StopCondition, Target, TargetId, TargetKind};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use balancer::{Backends, TrafficStats, Window};
use command_lambdas::adapters::{
    AdapterError, AlarmSource, HealthProbe, Injected, TargetProvider, Tripped,
};
use command_lambdas::clock::Clock;

/// How to start a worker: the program and its arguments; the supervisor adds `--id ID`.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The executable.
    pub program: std::path::PathBuf,
    /// Its arguments, before `--id`.
    pub args: Vec<String>,
}

/// How the fleet is run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The fleet's name: the `group` experiments target.
    pub name: String,
    /// Workers it keeps in service.
    pub size: u32,
    /// How long after losing a worker the replacement is started.
    pub replace_after: Duration,
    /// Where the balancer listens (port 0: any free port).
    pub balancer: SocketAddr,
    /// How often every worker is health-checked.
    pub check_every: Duration,
    /// How long a worker has to answer a health check or a request.
    pub answer_within: Duration,
    /// Synthetic requests per second through the balancer (0: none).
    pub requests_per_sec: u32,
    /// The span of the balancer's latency and error window.
    pub window: Duration,
    /// How a worker is started.
    pub worker: WorkerCommand,
}

impl FleetConfig {
    /// A fleet `name` of `size` workers started by `worker`, with the defaults: replaced after
    /// 1 s, checked every 100 ms, 500 ms to answer, 20 requests/s, a 5 s window.
    pub fn new(name: impl Into<String>, size: u32, worker: WorkerCommand) -> Self {
        FleetConfig {
            name: name.into(),
            size,
            replace_after: Duration::from_secs(1),
            balancer: SocketAddr::from(([127, 0, 0, 1], 0)),
            check_every: Duration::from_millis(100),
            answer_within: Duration::from_millis(500),
            requests_per_sec: 20,
            window: Duration::from_secs(5),
            worker,
        }
    }
}

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The balancer's address could not be bound.
    #[error("the fleet's balancer cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A worker could not be started.
    #[error("worker {id} did not start: {reason}")]
    Worker {
        /// The worker.
        id: String,
        /// Why.
        reason: String,
    },
    /// The fleet did not come into service in time.
    #[error("the fleet was not in service within {0:?}")]
    NotInService(Duration),
}

/// What happened to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FleetChange {
    /// Its process was started.
    Started {
        /// Its process id.
        pid: u32,
    },
    /// It passed its first health check.
    InService,
    /// It went: killed, or exited by itself.
    Lost {
        /// How.
        how: String,
    },
    /// It was paused.
    Paused,
    /// It was resumed.
    Resumed,
}

/// One entry of the fleet's own record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetEvent {
    /// When.
    pub at: Timestamp,
    /// Which worker.
    pub worker: String,
    /// What happened.
    #[serde(flatten)]
    pub change: FleetChange,
    /// For a worker started to replace another: that one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// A worker, as the fleet sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// Its process.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// In service (passed a health check, not being terminated).
    pub in_service: bool,
    /// Answering its health checks.
    pub healthy: bool,
    /// Paused by an experiment.
    pub paused: bool,
}

/// The fleet as a whole, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetStatus {
    /// Its name.
    pub name: String,
    /// Where its balancer listens.
    pub balancer: SocketAddr,
    /// Workers it keeps.
    pub desired: u32,
    /// Workers in service and healthy.
    pub healthy: u32,
    /// Its workers.
    pub members: Vec<Member>,
    /// Traffic through the balancer over the window.
    pub traffic: TrafficStats,
    /// Its record, oldest first (the newest [`RECORD_LIMIT`]).
    pub events: Vec<FleetEvent>,
}

/// Entries of the fleet's record kept.
pub const RECORD_LIMIT: usize = 1_000;

#[derive(Debug)]
struct Worker {
    pid: u32,
    addr: SocketAddr,
    in_service: bool,
    healthy: bool,
    terminating: bool,
    paused: bool,
    /// Bumped when the fleet itself pauses or resumes the worker, so a health sample taken
    /// before that cannot overwrite what the fleet knows to be newer.
    epoch: u64,
    /// Closing it tells the worker to exit.
    _stdin: Option<ChildStdin>,
}

#[derive(Debug, Default)]
struct State {
    workers: BTreeMap<String, Worker>,
    next_id: u64,
    record: VecDeque<FleetEvent>,
    alarms: HashMap<String, bool>,
    stopped: bool,
}

#[derive(Debug)]
struct Inner {
    config: FleetConfig,
    balancer: SocketAddr,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    window: Arc<Mutex<Window>>,
    changes: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running demo fleet. Cheap to clone; stopped by [`Fleet::stop`] or when the process ends
/// (its workers exit when their standard input closes).
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl Backends for Inner {
    fn healthy(&self) -> Vec<SocketAddr> {
        self.lock()
            .workers
            .values()
            .filter(|w| w.in_service && w.healthy && !w.terminating)
            .map(|w| w.addr)
            .collect()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note(&self, state: &mut State, worker: &str, change: FleetChange, replaces: Option<String>) {
        tracing::info!(fleet = %self.config.name, worker, change = ?change, "fleet");
        state.record.push_back(FleetEvent {
            at: self.clock.now(),
            worker: worker.to_owned(),
            change,
            replaces,
        });
        while state.record.len() > RECORD_LIMIT {
            state.record.pop_front();
        }
        self.changes.send_modify(|v| *v += 1);
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

fn signal(pid: u32, signal: Signal) -> Result<(), AdapterError> {
    let pid = i32::try_from(pid).map_err(|_| AdapterError::Refused {
        service: "fleet",
        message: format!("pid {pid} out of range"),
    })?;
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(AdapterError::Refused {
            service: "fleet",
            message: format!("{signal} to {pid}: {e}"),
        }),
    }
}

impl Fleet {
    /// Starts the balancer and `config.size` workers; returns once all are in service.
    pub async fn start(config: FleetConfig, clock: Arc<dyn Clock>) -> Result<Fleet, FleetError> {
        let listener =
            TcpListener::bind(config.balancer)
                .await
                .map_err(|source| FleetError::Bind {
                    addr: config.balancer,
                    source,
                })?;
        let balancer = listener.local_addr().map_err(|source| FleetError::Bind {
            addr: config.balancer,
            source,
        })?;
        let inner = Arc::new(Inner {
            window: Arc::new(Mutex::new(Window::new(config.window))),
            config,
            balancer,
            clock,
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            tasks: Mutex::new(Vec::new()),
        });
        let fleet = Fleet { inner };
        let inner = &fleet.inner;
        inner.track(tokio::spawn(balancer::serve(
            listener,
            Arc::clone(inner),
            Arc::clone(&inner.window),
            inner.config.answer_within,
        )));
        for _ in 0..inner.config.size {
            fleet.launch(None).await?;
        }
        inner.track(tokio::spawn(check_health(Arc::clone(inner))));
        let within = Duration::from_secs(10) + inner.config.check_every * 10;
        let mut changes = fleet.changes();
        let ready = tokio::time::timeout(within, async {
            while fleet.status().healthy < fleet.inner.config.size {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        if ready.is_err() {
            fleet.stop();
            return Err(FleetError::NotInService(within));
        }
        // The load begins once the fleet is in service, as users arrive at a deployed service.
        if fleet.inner.config.requests_per_sec > 0 {
            fleet
                .inner
                .track(tokio::spawn(load(Arc::clone(&fleet.inner))));
        }
        Ok(fleet)
    }

    /// Starts one worker (replacing `replaces`, if given) and its supervision. (Boxed: the
    /// supervision it spawns launches the next worker in turn.)
    fn launch(
        &self,
        replaces: Option<String>,
    ) -> futures::future::BoxFuture<'_, Result<(), FleetError>> {
        Box::pin(self.launch_one(replaces))
    }

    async fn launch_one(&self, replaces: Option<String>) -> Result<(), FleetError> {
        let inner = &self.inner;
        let id = {
            let mut state = inner.lock();
            state.next_id += 1;
            format!("{}-{}", inner.config.name, state.next_id)
        };
        let fail = |reason: String| FleetError::Worker {
            id: id.clone(),
            reason,
        };
        let mut child = Command::new(&inner.config.worker.program)
            .args(&inner.config.worker.args)
            .arg("--id")
            .arg(&id)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            // Its own process group: if this process dies while the worker is paused (stopped,
            // so it cannot see its standard input close), the group is orphaned with a stopped
            // member and the kernel sends it SIGHUP then SIGCONT, which ends it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", inner.config.worker.program.display())))?;
        let pid = child.id().ok_or_else(|| fail("exited at once".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| fail("did not say where it listens within 10 s".into()))?
            .map_err(|e| fail(e.to_string()))?
            .unwrap_or_default();
        let addr: SocketAddr = line
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| fail(format!("said {line:?} instead of `listening ADDR`")))?;
        {
            let mut state = inner.lock();
            state.workers.insert(
                id.clone(),
                Worker {
                    pid,
                    addr,
                    in_service: false,
                    healthy: false,
                    terminating: false,
                    paused: false,
                    epoch: 0,
                    _stdin: child.stdin.take(),
                },
            );
            inner.note(&mut state, &id, FleetChange::Started { pid }, replaces);
        }
        inner.track(tokio::spawn(supervise(self.clone(), id, child)));
        Ok(())
    }

    /// Bumped on every change of membership or health.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Where the balancer listens.
    pub fn balancer(&self) -> SocketAddr {
        self.inner.balancer
    }

    /// The fleet now: members, traffic and record.
    pub fn status(&self) -> FleetStatus {
        let traffic = self.traffic();
        let state = self.inner.lock();
        let members: Vec<Member> = state
            .workers
            .iter()
            .map(|(id, w)| Member {
                id: id.clone(),
                pid: w.pid,
                addr: w.addr,
                in_service: w.in_service && !w.terminating,
                healthy: w.healthy,
                paused: w.paused,
            })
            .collect();
        FleetStatus {
            name: self.inner.config.name.clone(),
            balancer: self.inner.balancer,
            desired: self.inner.config.size,
            healthy: u32::try_from(members.iter().filter(|m| m.in_service && m.healthy).count())
                .unwrap_or(u32::MAX),
            members,
            traffic,
            events: state.record.iter().cloned().collect(),
        }
    }

    fn traffic(&self) -> TrafficStats {
        self.inner
            .window
            .lock()
            .map(|mut w| w.stats())
            .unwrap_or_default()
    }

    /// Sets an alarm's state by hand (`true`: in alarm), or clears it (`None`).
    pub fn set_alarm(&self, name: &str, alarm: Option<bool>) {
        let mut state = self.inner.lock();
        match alarm {
            Some(on) => state.alarms.insert(name.to_owned(), on),
            None => state.alarms.remove(name),
        };
    }

    /// Stops the fleet: its workers are killed and nothing is replaced.
    pub fn stop(&self) {
        let pids: Vec<u32> = {
            let mut state = self.inner.lock();
            state.stopped = true;
            state.workers.values().map(|w| w.pid).collect()
        };
        for pid in pids {
            let _ = signal(pid, Signal::SIGKILL);
        }
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
    }

    fn check(&self, target: &Target) -> Result<(), AdapterError> {
        if target.kind == TargetKind::LocalFleet && target.group == self.inner.config.name {
            Ok(())
        } else {
            Err(AdapterError::NoSuchGroup(target.key()))
        }
    }
}

/// Waits for a worker's process to end; records the loss (unless it was being terminated, and
/// so recorded already) and starts its replacement after the configured delay.
async fn supervise(fleet: Fleet, id: String, mut child: Child) {
    let status = child.wait().await;
    let inner = &fleet.inner;
    {
        let mut state = inner.lock();
        let Some(worker) = state.workers.remove(&id) else {
            return;
        };
        if state.stopped {
            return;
        }
        if !worker.terminating {
            let how = match status {
                Ok(s) => format!("exited: {s}"),
                Err(e) => format!("lost: {e}"),
            };
            inner.note(&mut state, &id, FleetChange::Lost { how }, None);
        } else {
            inner.changes.send_modify(|v| *v += 1);
        }
    }
    tokio::time::sleep(inner.config.replace_after).await;
    let mut delay = Duration::from_millis(200);
    while let Err(e) = fleet.launch(Some(id.clone())).await {
        if inner.lock().stopped {
            return;
        }
        tracing::error!(fleet = %inner.config.name, error = %e, "replacement failed; trying again");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Health-checks every worker, every `check_every`.
async fn check_health(inner: Arc<Inner>) {
    let request = balancer::get("/health");
    loop {
        let workers: Vec<(String, SocketAddr, u64)> = inner
            .lock()
            .workers
            .iter()
            .filter(|(_, w)| !w.terminating)
            .map(|(id, w)| (id.clone(), w.addr, w.epoch))
            .collect();
        let results = futures::future::join_all(workers.into_iter().map(|(id, addr, epoch)| {
            let request = &request;
            let within = inner.config.answer_within;
            async move {
                let ok = balancer::exchange(addr, request, within)
                    .await
                    .is_ok_and(|r| balancer::status_of(&r) == Some(200));
                (id, epoch, ok)
            }
        }))
        .await;
        {
            let mut state = inner.lock();
            for (id, epoch, ok) in results {
                let Some(worker) = state.workers.get_mut(&id) else {
                    continue;
                };
                if worker.terminating || worker.epoch != epoch || worker.healthy == ok {
                    continue;
                }
                worker.healthy = ok;
                if ok && !worker.in_service {
                    worker.in_service = true;
                    let replaces = state
                        .record
                        .iter()
                        .rev()
                        .find(|e| e.worker == id && matches!(e.change, FleetChange::Started { .. }))
                        .and_then(|e| e.replaces.clone());
                    inner.note(&mut state, &id, FleetChange::InService, replaces);
                } else {
                    inner.changes.send_modify(|v| *v += 1);
                }
            }
        }
        tokio::time::sleep(inner.config.check_every).await;
    }
}

/// Synthetic requests through the balancer.
async fn load(inner: Arc<Inner>) {
    let every = Duration::from_secs(1) / inner.config.requests_per_sec.max(1);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let request = Arc::new(balancer::get("/"));
    loop {
        ticks.tick().await;
        let request = Arc::clone(&request);
        let addr = inner.balancer;
        let within = inner.config.answer_within * 3;
        tokio::spawn(async move {
            let _ = balancer::exchange(addr, &request, within).await;
        });
    }
}

impl TargetProvider for Fleet {
    async fn candidates(&self, target: &Target) -> Result<Vec<TargetId>, AdapterError> {
        self.check(target)?;
        Ok(self
            .inner
            .lock()
            .workers
            .iter()
            .filter(|(_, w)| w.in_service && !w.terminating)
            .filter_map(|(id, _)| TargetId::parse(id).ok())
            .collect())
    }

    async fn inject(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<Injected, AdapterError> {
        self.check(target)?;
        let mut acted = Vec::new();
        for id in ids {
            let pid = {
                let mut state = self.inner.lock();
                let Some(worker) = state.workers.get_mut(id.as_str()) else {
                    continue;
                };
                if worker.terminating {
                    continue;
                }
                let pid = worker.pid;
                // Out of service before the signal, so no health sample sees it whole.
                let change = match failure {
                    FailureType::Terminate => {
                        worker.terminating = true;
                        FleetChange::Lost {
                            how: "terminated (SIGKILL)".into(),
                        }
                    }
                    FailureType::Pause { .. } => {
                        worker.paused = true;
                        worker.epoch += 1;
                        worker.healthy = false;
                        FleetChange::Paused
                    }
                };
                self.inner.note(&mut state, id.as_str(), change, None);
                pid
            };
            match failure {
                FailureType::Terminate => signal(pid, Signal::SIGKILL)?,
                FailureType::Pause { duration_secs } => {
                    signal(pid, Signal::SIGSTOP)?;
                    let fleet = self.clone();
                    let id = id.as_str().to_owned();
                    self.inner.track(tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(u64::from(duration_secs))).await;
                        let _ = fleet.resume(&id, pid);
                    }));
                }
            }
            acted.push(id.clone());
        }
        let verb = match failure {
            FailureType::Terminate => "terminated".to_owned(),
            FailureType::Pause { duration_secs } => format!("paused for {duration_secs} s"),
        };
        let names: Vec<&str> = acted.iter().map(TargetId::as_str).collect();
        Ok(Injected {
            detail: format!("{verb}: {}", names.join(", ")),
            targets: acted,
        })
    }

    async fn rollback(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<String, AdapterError> {
        self.check(target)?;
        if !failure.is_reversible() {
            return Ok("nothing to undo: the fleet replaces terminated workers".into());
        }
        let mut resumed = Vec::new();
        for id in ids {
            let pid = self.inner.lock().workers.get(id.as_str()).map(|w| w.pid);
            if let Some(pid) = pid
                && self.resume(id.as_str(), pid)?
            {
                resumed.push(id.as_str());
            }
        }
        Ok(if resumed.is_empty() {
            "nothing paused any more".into()
        } else {
            format!("resumed: {}", resumed.join(", "))
        })
    }
}

impl Fleet {
    /// Resumes worker `id` if it is still process `pid` and paused; says whether it did.
    fn resume(&self, id: &str, pid: u32) -> Result<bool, AdapterError> {
        let mut state = self.inner.lock();
        let Some(worker) = state.workers.get_mut(id) else {
            return Ok(false);
        };
        if worker.pid != pid || !worker.paused {
            return Ok(false);
        }
        signal(pid, Signal::SIGCONT)?;
        worker.paused = false;
        worker.epoch += 1;
        self.inner.note(&mut state, id, FleetChange::Resumed, None);
        Ok(true)
    }
}

impl HealthProbe for Fleet {
    async fn measures_traffic(&self, target: &Target) -> Result<bool, AdapterError> {
        // Every request goes through the fleet's balancer, which measures it.
        self.check(target)?;
        Ok(true)
    }

    async fn sample(&self, target: &Target) -> Result<HealthSnapshot, AdapterError> {
        self.check(target)?;
        let status = self.status();
        Ok(HealthSnapshot {
            healthy: status.healthy,
            total: status.desired,
            latency_p95_ms: status.traffic.latency_p95_ms,
            error_rate_bp: status.traffic.error_rate_bp,
        })
    }
}

/// The error rate over which `<fleet>-errors` is in alarm, in basis points.
pub const ERRORS_ALARM_BP: u32 = 1_000;

impl Fleet {
    /// The state of alarm `name` if this fleet knows it: `Some(None)` when OK,
    /// `Some(Some(detail))` when in alarm, `None` when it is not one of this fleet's.
    pub fn alarm(&self, name: &str) -> Option<Option<String>> {
        let traffic = self.traffic();
        let state = self.inner.lock();
        match state.alarms.get(name) {
            Some(true) => Some(Some(format!("alarm {name} is in ALARM (set by hand)"))),
            Some(false) => Some(None),
            None if name == format!("{}-errors", self.inner.config.name) => {
                Some((traffic.error_rate_bp > ERRORS_ALARM_BP).then(|| {
                    format!(
                        "alarm {name} is in ALARM: error rate {} bp over {} requests",
                        traffic.error_rate_bp, traffic.requests
                    )
                }))
            }
            None => None,
        }
    }
}

/// The local fleets of this process (none, one or more), as one target provider, health
/// probe and alarm source: each target goes to the fleet of its name.
#[derive(Debug, Clone, Default)]
pub struct LocalFleets {
    fleets: Arc<Vec<Fleet>>,
}

impl LocalFleets {
    /// Over `fleets`.
    pub fn new(fleets: Vec<Fleet>) -> Self {
        LocalFleets {
            fleets: Arc::new(fleets),
        }
    }

    /// The fleets.
    pub fn fleets(&self) -> &[Fleet] {
        &self.fleets
    }

    fn of(&self, target: &Target) -> Result<&Fleet, AdapterError> {
        self.fleets
            .iter()
            .find(|f| target.kind == TargetKind::LocalFleet && f.name() == target.group)
            .ok_or_else(|| AdapterError::NoSuchGroup(target.key()))
    }
}

impl TargetProvider for LocalFleets {
    async fn candidates(&self, target: &Target) -> Result<Vec<TargetId>, AdapterError> {
        self.of(target)?.candidates(target).await
    }

    async fn inject(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<Injected, AdapterError> {
        self.of(target)?.inject(target, ids, failure).await
    }

    async fn rollback(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<String, AdapterError> {
        self.of(target)?.rollback(target, ids, failure).await
    }
}

impl HealthProbe for LocalFleets {
    async fn sample(&self, target: &Target) -> Result<HealthSnapshot, AdapterError> {
        self.of(target)?.sample(target).await
    }

    async fn measures_traffic(&self, target: &Target) -> Result<bool, AdapterError> {
        self.of(target)?.measures_traffic(target).await
    }
}

impl AlarmSource for LocalFleets {
    async fn first_tripped(
        &self,
        conditions: &[StopCondition],
    ) -> Result<Option<Tripped>, AdapterError> {
        for condition in conditions {
            let StopCondition::Alarm { alarm_name } = condition else {
                continue;
            };
            let detail = match self.fleets.iter().find_map(|f| f.alarm(alarm_name)) {
                Some(state) => state,
                None => Some(format!(
                    "alarm {alarm_name} does not exist (a missing alarm counts as not OK)"
                )),
            };
            if let Some(detail) = detail {
                return Ok(Some(Tripped {
                    condition: condition.clone(),
                    detail,
                }));
            }
        }
        Ok(None)
    }
}
