//! Whole runs on AWS, spoken over the wire to a local moto server: commands through the
//! command entry point into the DynamoDB event store, the workflow's tasks acting on an EC2
//! Auto Scaling group, reading its health and CloudWatch alarms, and Step Functions starting
//! one execution per experiment. The tasks are called in the order the workflow calls them.

use std::sync::Arc;

use aws_sdk_cloudwatch::types::StateValue;
use command_lambdas::adapters::TargetProvider;
use command_lambdas::asg::AsgTargets;
use command_lambdas::clock::{SystemClock, UuidV7};
use command_lambdas::cloudwatch::{AsgHealth, CloudWatchAlarms, HealthMetrics};
use command_lambdas::command::{Request, Response, handle};
use command_lambdas::dynamo::{
    DynamoClaims, DynamoStore, create_events_table, repository, verify_table,
};
use command_lambdas::lambda::{AwsTasks, Task, run_task};
use command_lambdas::service::ExperimentService;
use command_lambdas::sfn::StepFunctions;
use command_lambdas::tasks::{CaughtError, TaskInput, TaskOutput, Tasks};
use domain::experiment::{Experiment, ExperimentEvent, Outcome, Status};
use domain::spec::{Selection, Target, TargetKind};
use fleet::{alarm, instance_states, set_alarm, state_of};
use serde_json::json;
use test_support::{aws, fleet};

type Service = ExperimentService<command_lambdas::dynamo::DynamoRepository>;

struct World {
    service: Service,
    tasks: AwsTasks,
    workflow: StepFunctions,
    sfn: aws_sdk_sfn::Client,
    machine: String,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

async fn world() -> World {
    let dynamodb = aws::dynamodb();
    let table = aws::unique("Events");
    create_events_table(&dynamodb, &table)
        .await
        .expect("events table");
    let store = DynamoStore::new(
        repository(dynamodb.clone(), &table),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    );
    let service = ExperimentService::new(Arc::new(store), Arc::new(SystemClock));
    let autoscaling = aws::client!(aws_sdk_autoscaling);
    let cloudwatch = aws::client!(aws_sdk_cloudwatch);
    let alarms = CloudWatchAlarms::new(cloudwatch.clone());
    let tasks = Tasks::new(
        service.clone(),
        AsgTargets::new(aws::client!(aws_sdk_ec2), autoscaling.clone()),
        AsgHealth::new(
            autoscaling,
            cloudwatch,
            // moto computes no percentiles: latency is read as the window's maximum here.
            HealthMetrics {
                latency_stat: "Maximum".into(),
                ..HealthMetrics::default()
            },
            Arc::new(SystemClock),
        ),
        alarms,
        Arc::new(SystemClock),
    )
    .with_claims(Arc::new(DynamoClaims::new(
        dynamodb.clone(),
        views_table(&dynamodb).await,
    )));
    let (sfn, machine) = fleet::state_machine().await;
    World {
        service,
        tasks,
        workflow: StepFunctions::new(sfn.clone(), machine.clone()),
        sfn,
        machine,
        dynamodb,
        table,
    }
}

impl World {
    async fn send(&self, request: serde_json::Value) -> Response {
        let request: Request = serde_json::from_value(request).expect("a well-formed request");
        handle(&self.tasks, &self.workflow, request).await
    }

    /// Creates a run terminating one instance of `group` (whose traffic nothing measures: its
    /// only stop condition is `alarm`, if any).
    async fn create(&self, id: &str, group: &str, alarm: Option<&str>, dry_run: bool) {
        let stop_conditions: Vec<_> = alarm
            .map(|alarm| json!({"type": "ALARM", "alarm_name": alarm}))
            .into_iter()
            .collect();
        self.create_with(id, group, stop_conditions, dry_run).await;
    }

    async fn create_with(
        &self,
        id: &str,
        group: &str,
        stop_conditions: Vec<serde_json::Value>,
        dry_run: bool,
    ) {
        let response = self
            .send(json!({
                "command": "create",
                "experimentId": id,
                "spec": {
                    "name": "terminate one web instance",
                    "target": {"kind": "AUTO_SCALING_GROUP", "group": group},
                    "selection": {"mode": "COUNT", "value": 1},
                    "max_targets": 2,
                    "failure": {"type": "TERMINATE"},
                    "dry_run": dry_run,
                    "guardrails": {"stop_conditions": stop_conditions, "max_duration_secs": 600},
                    "recovery": {"timeout_secs": 60, "poll_interval_secs": 1, "baseline_samples": 2}
                },
                "commandId": format!("create-{id}"),
                "actor": {"id": "alice", "role": "OPERATOR"},
                "source": "api"
            }))
            .await;
        assert!(response.ok, "{response:?}");
    }

    async fn start(&self, id: &str, command_id: &str) -> Response {
        self.send(json!({
            "command": "start",
            "experimentId": id,
            "commandId": command_id,
            "actor": {"id": "ci", "role": "OPERATOR"},
            "source": "api"
        }))
        .await
    }

    async fn experiment(&self, id: &str) -> Experiment {
        self.service.load(id).await.expect("experiment").aggregate
    }

    async fn events(&self, id: &str) -> Vec<ExperimentEvent> {
        self.service
            .load(id)
            .await
            .expect("experiment")
            .events
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    async fn executions(&self) -> usize {
        self.sfn
            .list_executions()
            .state_machine_arn(&self.machine)
            .send()
            .await
            .expect("executions")
            .executions()
            .len()
    }
}

/// A table shaped like the read-model table (`Pk`/`Sk`), where the tasks keep their claims.
async fn views_table(dynamodb: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = aws::unique("Views");
    let mut create = dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, kind) in [("Pk", KeyType::Hash), ("Sk", KeyType::Range)] {
        create = create
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(kind)
                    .build()
                    .expect("key"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            );
    }
    create.send().await.expect("views table");
    name
}

/// A request of `actor` (`id`, `role`): `command` with its fields.
fn request(command: serde_json::Value, actor: (&str, &str), command_id: &str) -> Request {
    let mut request = command;
    request["commandId"] = json!(command_id);
    request["actor"] = json!({"id": actor.0, "role": actor.1});
    request["source"] = json!("api");
    serde_json::from_value(request).expect("a well-formed request")
}

/// Runs an experiment's steps up to its first health check after the injection.
async fn run_to_observing(w: &World, id: &str) {
    let mut out = w.tasks.resolve_targets(&input(id)).await.expect("resolve");
    while !out.baseline_done {
        out = w.tasks.baseline(&input(id)).await.expect("baseline");
    }
    w.tasks.inject(&input(id)).await.expect("inject");
    let out = w.tasks.check_health(&input(id)).await.expect("check");
    assert!(!out.done && !out.stop, "{out:?}");
}

/// An execution's status once it is no longer RUNNING, or RUNNING after `within`.
async fn execution_status_within(
    w: &World,
    workflow: &StepFunctions,
    id: &str,
    within: std::time::Duration,
) -> String {
    fleet::settled_status(&w.sfn, &workflow.execution_arn(id), within).await
}

async fn execution_status(w: &World, workflow: &StepFunctions, id: &str) -> String {
    execution_status_within(w, workflow, id, std::time::Duration::from_secs(5)).await
}

fn input(id: &str) -> TaskInput {
    TaskInput {
        experiment_id: id.to_owned(),
        error: None,
    }
}

/// Runs the tasks as the workflow does, from resolving targets to the end.
async fn run_to_the_end(w: &World, id: &str) -> TaskOutput {
    let mut out = w.tasks.resolve_targets(&input(id)).await.expect("resolve");
    if out.dry_run && !out.done && !out.stop {
        return w.tasks.finish(&input(id)).await.expect("finish dry run");
    }
    while !out.done && !out.stop && !out.baseline_done {
        out = w.tasks.baseline(&input(id)).await.expect("baseline");
    }
    if !out.done && !out.stop {
        out = w.tasks.inject(&input(id)).await.expect("inject");
    }
    while !out.done && !out.stop && !out.observation_over {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        out = w
            .tasks
            .check_health(&input(id))
            .await
            .expect("check health");
    }
    if out.observation_over {
        out = w.tasks.finish(&input(id)).await.expect("finish");
    }
    if out.stop {
        out = w.tasks.rollback(&input(id)).await.expect("rollback");
    }
    out
}

#[tokio::test]
async fn a_terminated_instance_is_replaced_and_the_run_records_its_recovery_time() {
    let w = world().await;
    let group = fleet::group(3, None).await;
    let ok = alarm(StateValue::Ok).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, Some(&ok), false).await;
    let started = w.start(&id, "ci-start").await;
    assert!(started.ok, "{started:?}");
    assert_eq!(started.execution, Some(w.workflow.execution_arn(&id)));

    let before = AsgTargets::new(aws::client!(aws_sdk_ec2), aws::client!(aws_sdk_autoscaling))
        .candidates(&Target {
            kind: TargetKind::AutoScalingGroup,
            group: group.clone(),
        })
        .await
        .expect("candidates");
    let out = run_to_the_end(&w, &id).await;
    assert!(out.done, "{out:?}");
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.outcome, Some(Outcome::Recovered));

    let experiment = w.experiment(&id).await;
    let chosen = Selection::Count(1).choose(&before, 2, &id);
    assert_eq!(experiment.targets(), Some(chosen.as_slice()));
    assert_eq!(state_of(chosen[0].as_str()).await, "terminated");
    let recovery = experiment.recovery_ms().expect("a recovery time");
    let (injected_at, _) = experiment.injected().expect("injected");
    let observed_at = w
        .events(&id)
        .await
        .into_iter()
        .find_map(|e| match e {
            ExperimentEvent::RecoveryObserved { at, .. } => Some(at),
            _ => None,
        })
        .expect("recovery observed");
    assert_eq!(Some(recovery), observed_at.millis_since(injected_at));
    // Every event is in the chain, and the workflow's commands were each recorded once.
    let report = verify_table(&w.dynamodb, &w.table).await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    // Running the last tasks again changes nothing.
    let version = w.service.load(&id).await.expect("loaded").version;
    assert_eq!(w.tasks.check_health(&input(&id)).await.expect("again"), out);
    assert_eq!(w.tasks.finish(&input(&id)).await.expect("again"), out);
    assert_eq!(w.service.load(&id).await.expect("loaded").version, version);
}

#[tokio::test]
async fn an_alarm_in_alarm_refuses_the_start_and_one_set_during_observation_stops_the_run() {
    let w = world().await;
    let group = fleet::group(3, None).await;
    let tripped = alarm(StateValue::Alarm).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, Some(&tripped), false).await;
    let refused = w.start(&id, "start-1").await;
    assert!(!refused.ok);
    let error = refused.error.expect("an error");
    assert_eq!(error.code, "STOP_CONDITION");
    assert_eq!(
        error.message,
        format!("not started: alarm {tripped} is ALARM")
    );
    assert_eq!(w.experiment(&id).await.status(), Status::Draft);
    assert_eq!(
        w.events(&id).await.len(),
        1,
        "nothing written but the creation"
    );
    assert_eq!(w.executions().await, 0);

    // Back to OK: the run starts; the alarm fires while the group recovers.
    set_alarm(&tripped, StateValue::Ok).await;
    assert!(w.start(&id, "start-2").await.ok);
    let mut out = w.tasks.resolve_targets(&input(&id)).await.expect("resolve");
    while !out.baseline_done {
        out = w.tasks.baseline(&input(&id)).await.expect("baseline");
    }
    w.tasks.inject(&input(&id)).await.expect("inject");
    set_alarm(&tripped, StateValue::Alarm).await;
    let out = w.tasks.check_health(&input(&id)).await.expect("check");
    assert!(out.stop, "{out:?}");
    let out = w.tasks.rollback(&input(&id)).await.expect("rollback");
    assert_eq!(out.status, Status::Stopped);
    let events = w.events(&id).await;
    assert!(events.iter().any(|e| matches!(
        e,
        ExperimentEvent::StopConditionTripped { detail, .. } if *detail == format!("alarm {tripped} is ALARM")
    )));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ExperimentEvent::RollbackPerformed { .. }))
    );
    assert!(matches!(
        events.last(),
        Some(ExperimentEvent::ExperimentStopped { .. })
    ));
}

#[tokio::test]
async fn a_dry_run_names_the_targets_a_real_run_would_hit_and_changes_nothing() {
    let w = world().await;
    let group = fleet::group(3, None).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, None, true).await;
    let before = instance_states(&group).await;
    assert!(w.start(&id, "dry-start").await.ok);
    let out = run_to_the_end(&w, &id).await;
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.outcome, Some(Outcome::DryRun));
    assert_eq!(
        instance_states(&group).await,
        before,
        "every instance as it was"
    );
    let candidates = AsgTargets::new(aws::client!(aws_sdk_ec2), aws::client!(aws_sdk_autoscaling))
        .candidates(&Target {
            kind: TargetKind::AutoScalingGroup,
            group,
        })
        .await
        .expect("candidates");
    let experiment = w.experiment(&id).await;
    assert_eq!(
        experiment.targets(),
        Some(Selection::Count(1).choose(&candidates, 2, &id).as_slice())
    );
}

#[tokio::test]
async fn two_concurrent_starts_record_one_start_and_run_one_execution() {
    let w = world().await;
    let group = fleet::group(2, None).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, None, false).await;
    let (a, b) = tokio::join!(w.start(&id, "click-1"), w.start(&id, "click-2"));
    let oks = [&a, &b].iter().filter(|r| r.ok).count();
    assert_eq!(oks, 1, "{a:?} {b:?}");
    let loser = if a.ok { &b } else { &a };
    assert_eq!(
        loser.error.as_ref().map(|e| e.code.as_str()),
        Some("REJECTED")
    );
    let starts = w
        .events(&id)
        .await
        .iter()
        .filter(|e| matches!(e, ExperimentEvent::ExperimentStarted { .. }))
        .count();
    assert_eq!(starts, 1);
    assert_eq!(w.executions().await, 1);
    // The winner's request sent again (a lost response) is answered, not repeated.
    let winner = if a.ok { "click-1" } else { "click-2" };
    let again = w.start(&id, winner).await;
    assert!(again.ok, "{again:?}");
    assert!(again.outcome.as_ref().is_some_and(|o| o.deduplicated));
    assert_eq!(w.executions().await, 1);
}

#[tokio::test]
async fn an_error_rate_limit_on_a_group_nothing_measures_fails_the_run_before_it_touches_anything()
{
    let w = world().await;
    let limit = vec![json!({"type": "MAX_ERROR_RATE", "percent": 50})];
    let plain = fleet::group(2, None).await;
    let before = instance_states(&plain).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create_with(&id, &plain, limit.clone(), false).await;
    assert!(w.start(&id, "start").await.ok);
    let out = run_to_the_end(&w, &id).await;
    assert_eq!(out.status, Status::Failed, "{out:?}");
    let events = w.events(&id).await;
    assert!(
        matches!(
            events.last(),
            Some(ExperimentEvent::ExperimentFailed { reason, .. })
                if reason.code == domain::experiment::FailureCode::UnobservableStopCondition
                    && reason.message.contains("guardrails.stop_conditions[0]")
                    && reason.message.contains("chaos:load-balancer")
        ),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ExperimentEvent::TargetsResolved { .. })),
        "nothing resolved, nothing touched: {events:?}"
    );
    assert_eq!(instance_states(&plain).await, before);
    // The target is free again: the claim went with the run.
    let next = uuid::Uuid::now_v7().to_string();
    w.create(&next, &plain, None, true).await;
    assert!(w.start(&next, "start").await.ok);
    assert_eq!(run_to_the_end(&w, &next).await.status, Status::Completed);

    // The same limit on a group behind a load balancer is observed, and the run goes on.
    let lb = format!("app/{}/0f1e2d3c4b5a6978", aws::unique("alb"));
    let measured = fleet::group(2, Some(&lb)).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create_with(&id, &measured, limit, false).await;
    assert!(w.start(&id, "start").await.ok);
    w.tasks.resolve_targets(&input(&id)).await.expect("resolve");
    assert!(
        w.events(&id)
            .await
            .iter()
            .any(|e| matches!(e, ExperimentEvent::TargetsResolved { .. }))
    );
}

#[tokio::test]
async fn a_caught_task_error_rolls_back_and_fails_the_run_with_its_cause() {
    let w = world().await;
    let group = fleet::group(1, None).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, None, false).await;
    assert!(w.start(&id, "start").await.ok);
    w.tasks.resolve_targets(&input(&id)).await.expect("resolve");
    let out = w
        .tasks
        .rollback(&TaskInput {
            experiment_id: id.clone(),
            error: Some(CaughtError {
                error: "Chaos.Failed".into(),
                cause: "cloudwatch refused: AccessDenied".into(),
            }),
        })
        .await
        .expect("rollback");
    assert_eq!(out.status, Status::Failed);
    let events = w.events(&id).await;
    assert!(matches!(
        events.last(),
        Some(ExperimentEvent::ExperimentFailed { reason, .. })
            if reason.message == "Chaos.Failed: cloudwatch refused: AccessDenied"
    ));
}

#[tokio::test]
async fn roles_and_malformed_requests_are_refused_with_a_code() {
    let w = world().await;
    let viewer = w
        .send(json!({
            "command": "halt", "reason": "drill", "commandId": "h1",
            "actor": {"id": "vic", "role": "VIEWER"}, "source": "api"
        }))
        .await;
    assert_eq!(viewer.error.map(|e| e.code), Some("FORBIDDEN".into()));
    let operator = w
        .send(json!({
            "command": "halt", "reason": "drill", "commandId": "h2",
            "actor": {"id": "olga", "role": "OPERATOR"}, "source": "api"
        }))
        .await;
    assert_eq!(operator.error.map(|e| e.code), Some("FORBIDDEN".into()));
    let bad_spec = w
        .send(json!({
            "command": "create", "experimentId": "exp-1",
            "spec": {
                "name": "", "target": {"kind": "AUTO_SCALING_GROUP", "group": "web"},
                "selection": {"mode": "COUNT", "value": 1}, "max_targets": 0,
                "failure": {"type": "TERMINATE"},
                "guardrails": {"stop_conditions": [], "max_duration_secs": 600},
                "recovery": {"timeout_secs": 60, "poll_interval_secs": 1, "baseline_samples": 1}
            },
            "commandId": "c1", "actor": {"id": "olga", "role": "OPERATOR"}, "source": "api"
        }))
        .await;
    let error = bad_spec.error.expect("refused");
    assert_eq!(error.code, "INVALID_INPUT");
    assert!(error.message.contains("name"), "{}", error.message);
    assert!(!error.retryable);
    let missing = w.start("no-such-experiment", "s1").await;
    assert_eq!(missing.error.map(|e| e.code), Some("NOT_FOUND".into()));
}

#[tokio::test]
async fn task_errors_reach_the_workflow_named_for_retry_or_catch() {
    let w = world().await;
    let Err(refused) = run_task(&w.tasks, Task::Inject, &input("no-such-experiment")).await else {
        panic!("a task on a missing experiment succeeded");
    };
    assert_eq!(refused.error_type, "Chaos.Failed");
    assert!(
        refused.error_message.contains("not found"),
        "{}",
        refused.error_message
    );

    let group = fleet::group(1, None).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, None, false).await;
    assert!(w.start(&id, "start").await.ok);
    let Err(wrong) = run_task(&w.tasks, Task::Finish, &input(&id)).await else {
        panic!("finishing a run that has not injected succeeded");
    };
    assert_eq!(wrong.error_type, "Chaos.Failed");
    let resolved = run_task(&w.tasks, Task::ResolveTargets, &input(&id))
        .await
        .expect("resolve");
    assert_eq!(resolved.phase, Some(domain::experiment::Phase::Baseline));
}

#[tokio::test]
async fn one_running_experiment_per_group_and_a_claim_left_behind_is_taken_over() {
    let w = world().await;
    let group = fleet::group(2, None).await;
    for id in ["first", "second", "third"] {
        w.create(id, &group, None, false).await;
    }
    assert!(w.start("first", "start-first").await.ok);
    assert!(w.start("second", "start-second").await.ok);
    let first = w
        .tasks
        .resolve_targets(&input("first"))
        .await
        .expect("resolve");
    assert!(!first.done && !first.stop, "{first:?}");

    // The second run on the group fails before it touches anything.
    let second = w
        .tasks
        .resolve_targets(&input("second"))
        .await
        .expect("resolve");
    assert!(second.done, "{second:?}");
    assert_eq!(second.status, Status::Failed);
    let events = w.events("second").await;
    assert!(
        matches!(events.last(), Some(ExperimentEvent::ExperimentFailed { reason, .. })
            if reason.code == domain::experiment::FailureCode::TargetBusy
                && reason.message.contains("first")),
        "{events:?}"
    );
    assert!(w.experiment("second").await.targets().is_none());

    // The first ends without releasing its claim (as if its Lambda died right after): its run
    // is over, so the third takes the claim over.
    w.service
        .experiment(
            "first",
            domain::experiment::ExperimentCommand::FailExperiment {
                reason: domain::experiment::FailureReason {
                    code: domain::experiment::FailureCode::RunnerLost,
                    message: "gone".into(),
                },
                at: domain::Timestamp::from_datetime(chrono::Utc::now()),
            },
            &domain::provenance::CommandContext::new(
                "fail-first",
                "fail-first",
                domain::provenance::Actor {
                    id: "ops".into(),
                    role: domain::provenance::Role::Admin,
                },
                domain::provenance::Source::Cli,
            )
            .expect("context"),
        )
        .await
        .expect("failed");
    assert!(w.start("third", "start-third").await.ok);
    let out = run_to_the_end(&w, "third").await;
    assert_eq!(out.status, Status::Completed, "{out:?}");
}

#[tokio::test]
async fn of_two_runs_claiming_a_target_at_once_exactly_one_wins() {
    use command_lambdas::adapters::TargetClaims;
    let dynamodb = aws::dynamodb();
    let claims = DynamoClaims::new(dynamodb.clone(), views_table(&dynamodb).await);
    for round in 0..5 {
        let target = format!("asg:contested-{round}");
        let (a, b) = tokio::join!(
            claims.claim(&target, "run-a", None),
            claims.claim(&target, "run-b", None)
        );
        let (a, b) = (a.expect("claim a"), b.expect("claim b"));
        match (&a, &b) {
            (None, Some(holder)) => assert_eq!(holder, "run-a"),
            (Some(holder), None) => assert_eq!(holder, "run-b"),
            _ => panic!("round {round}: {a:?} and {b:?}"),
        }
        // Claiming again is fine for the holder; a release by the other changes nothing.
        let winner = if a.is_none() { "run-a" } else { "run-b" };
        let loser = if a.is_none() { "run-b" } else { "run-a" };
        assert_eq!(
            claims.claim(&target, winner, None).await.expect("again"),
            None
        );
        claims.release(&target, loser).await.expect("release");
        assert_eq!(
            claims
                .claim(&target, loser, None)
                .await
                .expect("still held"),
            Some(winner.to_owned())
        );
        claims.release(&target, winner).await.expect("release");
        assert_eq!(
            claims.claim(&target, loser, None).await.expect("free"),
            None
        );
    }
}

/// On AWS a `Wait` cannot be woken, so a halt ends the runs whose executions wait between
/// steps itself: by the time it is answered, each is rolled back and stopped, by the steps its
/// workflow would have taken (the stop, with the halt's reason, then the rollback), and its
/// execution is aborted. Starts are refused until the halt is lifted.
#[tokio::test]
async fn a_halt_ends_the_waiting_runs_before_it_answers_and_blocks_starts() {
    let w = world().await;
    let group = fleet::group(2, None).await;
    let id = uuid::Uuid::now_v7().to_string();
    w.create(&id, &group, None, false).await;
    assert!(w.start(&id, "start").await.ok);
    run_to_observing(&w, &id).await;

    let halted = handle(
        &w.tasks,
        &w.workflow,
        request(
            json!({"command": "halt", "reason": "incident 42"}),
            ("oncall", "ADMIN"),
            "halt-1",
        ),
    )
    .await;
    assert!(halted.ok, "{halted:?}");
    assert_eq!(halted.stopped, [id.as_str()]);
    assert!(halted.stopping.is_empty(), "{halted:?}");

    assert_eq!(w.experiment(&id).await.status(), Status::Stopped);
    let events = w.events(&id).await;
    let tail: Vec<&ExperimentEvent> = events.iter().rev().take(3).rev().collect();
    assert!(
        matches!(
            tail.as_slice(),
            [
                ExperimentEvent::StopRequested { reason, .. },
                ExperimentEvent::RollbackPerformed { .. },
                ExperimentEvent::ExperimentStopped { .. },
            ] if reason == "platform halted: incident 42"
        ),
        "{tail:?}"
    );
    assert_eq!(execution_status(&w, &w.workflow, &id).await, "ABORTED");
    let report = verify_table(&w.dynamodb, &w.table).await.expect("verify");
    assert!(report.is_ok(), "{report:?}");

    // Halted: a start is refused, with nothing written.
    let next = uuid::Uuid::now_v7().to_string();
    w.create(&next, &group, None, false).await;
    let refused = w.start(&next, "start-while-halted").await;
    assert!(!refused.ok);
    assert_eq!(refused.error.expect("an error").code, "REJECTED");
    assert_eq!(w.experiment(&next).await.status(), Status::Draft);
    // Halting again finds nothing left to stop.
    let again = handle(
        &w.tasks,
        &w.workflow,
        request(
            json!({"command": "halt", "reason": "still"}),
            ("oncall", "ADMIN"),
            "halt-2",
        ),
    )
    .await;
    assert!(
        again.stopped.is_empty() && again.stopping.is_empty(),
        "{again:?}"
    );
}

/// A stop never cuts a task short: a run whose execution is in a task (here, one that never
/// ends) is left to its workflow, with the stop pending, and the workflow's next step rolls
/// it back. A run between steps is ended by the stop itself.
#[tokio::test]
async fn a_stop_ends_a_waiting_run_at_once_and_leaves_a_run_in_a_task_to_its_workflow() {
    let w = world().await;
    let stop = |id: &str| {
        request(
            json!({"command": "stop", "experimentId": id, "reason": "enough"}),
            ("alice", "OPERATOR"),
            &format!("stop-{id}"),
        )
    };

    let waiting = uuid::Uuid::now_v7().to_string();
    w.create(&waiting, &fleet::group(2, None).await, None, false)
        .await;
    assert!(w.start(&waiting, "start").await.ok);
    run_to_observing(&w, &waiting).await;
    let stopped = handle(&w.tasks, &w.workflow, stop(&waiting)).await;
    assert!(stopped.ok, "{stopped:?}");
    assert_eq!(stopped.stopped, [waiting.as_str()]);
    assert_eq!(w.experiment(&waiting).await.status(), Status::Stopped);
    assert_eq!(execution_status(&w, &w.workflow, &waiting).await, "ABORTED");

    let (_, machine) = fleet::busy_state_machine().await;
    let busy = StepFunctions::new(w.sfn.clone(), machine);
    let working = uuid::Uuid::now_v7().to_string();
    w.create(&working, &fleet::group(2, None).await, None, false)
        .await;
    let started = handle(
        &w.tasks,
        &busy,
        request(
            json!({"command": "start", "experimentId": working}),
            ("ci", "OPERATOR"),
            "start",
        ),
    )
    .await;
    assert!(started.ok, "{started:?}");
    run_to_observing(&w, &working).await;
    let stopping = handle(&w.tasks, &busy, stop(&working)).await;
    assert!(stopping.ok, "{stopping:?}");
    assert!(stopping.stopped.is_empty(), "{stopping:?}");
    assert_eq!(stopping.stopping, [working.as_str()]);
    let experiment = w.experiment(&working).await;
    assert_eq!(experiment.status(), Status::Running);
    assert!(
        !w.events(&working)
            .await
            .iter()
            .any(|e| matches!(e, ExperimentEvent::RollbackPerformed { .. })),
        "nothing is rolled back behind the task's back"
    );
    assert_eq!(
        execution_status_within(&w, &busy, &working, std::time::Duration::ZERO).await,
        "RUNNING"
    );
    // The task ends; the workflow's next step sees the stop and rolls back.
    let out = w.tasks.check_health(&input(&working)).await.expect("check");
    assert!(out.stop, "{out:?}");
    let out = w.tasks.rollback(&input(&working)).await.expect("rollback");
    assert_eq!(out.status, Status::Stopped);
}
