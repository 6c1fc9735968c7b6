//! The AWS adapters against EC2, Auto Scaling, CloudWatch and Step Functions spoken over the
//! wire to a local moto server: targets of a real (emulated) Auto Scaling group, its health,
//! stop-condition alarms failing closed, and at most one workflow execution per experiment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StateValue};
use command_lambdas::adapters::{
    AdapterError, AlarmSource, HealthProbe, Hurried, Started, TargetProvider, WorkflowEngine,
};
use command_lambdas::asg::AsgTargets;
use command_lambdas::clock::SystemClock;
use command_lambdas::cloudwatch::{AsgHealth, CloudWatchAlarms, HealthMetrics};
use command_lambdas::sfn::{StepFunctions, execution_name};
use domain::spec::{FailureType, Selection, StopCondition, Target, TargetId, TargetKind};
use fleet::{group, instance_states, state_of};
use test_support::{aws, fleet};

fn ec2() -> aws_sdk_ec2::Client {
    aws::client!(aws_sdk_ec2)
}

fn autoscaling() -> aws_sdk_autoscaling::Client {
    aws::client!(aws_sdk_autoscaling)
}

fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    aws::client!(aws_sdk_cloudwatch)
}

fn targets() -> AsgTargets {
    AsgTargets::new(ec2(), autoscaling())
}

fn group_target(group: &str) -> Target {
    Target {
        kind: TargetKind::AutoScalingGroup,
        group: group.to_owned(),
    }
}

/// Metrics as moto can answer them: it computes no percentiles, so latency is read as the
/// window's maximum here (p95 in production).
fn moto_metrics() -> HealthMetrics {
    HealthMetrics {
        latency_stat: "Maximum".into(),
        ..HealthMetrics::default()
    }
}

#[tokio::test]
async fn a_terminated_member_is_replaced_and_health_sees_the_group_whole_again() {
    let lb = format!("app/{}/50dc6c495c0c9188", aws::unique("alb"));
    let name = group(3, Some(&lb)).await;
    let target = group_target(&name);
    let provider = targets();

    let before = provider.candidates(&target).await.expect("candidates");
    assert_eq!(before.len(), 3, "{before:?}");
    let chosen = Selection::Count(1).choose(&before, 5, "exp-terminate");
    assert_eq!(chosen.len(), 1);

    let health = AsgHealth::new(
        autoscaling(),
        cloudwatch(),
        moto_metrics(),
        Arc::new(SystemClock),
    );
    let baseline = health.sample(&target).await.expect("baseline");
    assert_eq!((baseline.healthy, baseline.total), (3, 3));

    let injected = provider
        .inject(&target, &chosen, FailureType::Terminate)
        .await
        .expect("terminate");
    assert_eq!(injected.targets, chosen);
    assert!(injected.detail.contains(chosen[0].as_str()));

    let state = state_of(chosen[0].as_str()).await;
    let state = state.as_str();
    assert!(state == "terminated" || state == "shutting-down", "{state}");
    let after = provider.candidates(&target).await.expect("candidates");
    assert_eq!(after.len(), 3, "the group replaced its member: {after:?}");
    assert!(!after.contains(&chosen[0]));
    let recovered = health.sample(&target).await.expect("recovered");
    assert_eq!((recovered.healthy, recovered.total), (3, 3));
    assert_eq!(
        provider
            .rollback(&target, &chosen, FailureType::Terminate)
            .await
            .expect("rollback"),
        format!("nothing to undo for 1 terminated instance(s): group {name} launches replacements")
    );
}

#[tokio::test]
async fn latency_and_error_rate_are_read_through_the_load_balancer_metrics() {
    let lb = format!("app/{}/6d0ecf831eec9f09", aws::unique("alb"));
    let name = group(2, Some(&lb)).await;
    let cw = cloudwatch();
    let datum = |metric: &str, value: f64, unit: StandardUnit| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(Dimension::builder().name("LoadBalancer").value(&lb).build())
            .value(value)
            .unit(unit)
            .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                std::time::SystemTime::now() - Duration::from_secs(5),
            ))
            .build()
    };
    cw.put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("TargetResponseTime", 0.042, StandardUnit::Seconds))
        .metric_data(datum("TargetResponseTime", 0.180, StandardUnit::Seconds))
        .metric_data(datum("RequestCount", 400.0, StandardUnit::Count))
        .metric_data(datum(
            "HTTPCode_Target_5XX_Count",
            10.0,
            StandardUnit::Count,
        ))
        .send()
        .await
        .expect("metrics");
    let health = AsgHealth::new(autoscaling(), cw, moto_metrics(), Arc::new(SystemClock));
    let sample = health.sample(&group_target(&name)).await.expect("sample");
    assert_eq!((sample.healthy, sample.total), (2, 2));
    assert_eq!(sample.latency_p95_ms, 180);
    assert_eq!(sample.error_rate_bp, 250, "10 of 400 requests = 2.5 %");

    assert!(
        health
            .measures_traffic(&group_target(&name))
            .await
            .expect("the group's tags")
    );

    // A group that names no load balancer reports its counts only, and says so.
    let plain = group(1, None).await;
    assert!(
        !health
            .measures_traffic(&group_target(&plain))
            .await
            .expect("the group's tags")
    );
    assert!(matches!(
        health
            .measures_traffic(&group_target("no-such-group"))
            .await,
        Err(AdapterError::NoSuchGroup(_))
    ));
    let sample = health.sample(&group_target(&plain)).await.expect("sample");
    assert_eq!(
        (
            sample.healthy,
            sample.total,
            sample.latency_p95_ms,
            sample.error_rate_bp
        ),
        (1, 1, 0, 0)
    );
}

#[tokio::test]
async fn a_dry_run_resolves_what_a_real_run_would_and_leaves_every_instance_as_it_was() {
    let name = group(4, None).await;
    let target = group_target(&name);
    let provider = targets();
    let before = instance_states(&name).await;
    let dry = Selection::Percent(50).choose(
        &provider.candidates(&target).await.expect("candidates"),
        10,
        "exp-dry",
    );
    assert_eq!(
        instance_states(&name).await,
        before,
        "a dry run changed nothing"
    );
    // The real run of the same experiment picks exactly those, in whatever order EC2 lists.
    let mut listed = provider.candidates(&target).await.expect("candidates");
    listed.reverse();
    assert_eq!(Selection::Percent(50).choose(&listed, 10, "exp-dry"), dry);
    assert_eq!(dry.len(), 2);
}

#[tokio::test]
async fn unknown_and_empty_groups_and_unsupported_failures_are_told_apart() {
    let provider = targets();
    let missing = group_target(&aws::unique("nowhere"));
    assert!(matches!(
        provider.candidates(&missing).await,
        Err(AdapterError::NoSuchGroup(_))
    ));
    let empty = group(0, None).await;
    assert_eq!(
        provider
            .candidates(&group_target(&empty))
            .await
            .expect("candidates"),
        Vec::<TargetId>::new()
    );
    let name = group(1, None).await;
    let target = group_target(&name);
    let ids = provider.candidates(&target).await.expect("candidates");
    let before = instance_states(&name).await;
    let refused = provider
        .inject(&target, &ids, FailureType::Pause { duration_secs: 5 })
        .await
        .expect_err("pausing an EC2 instance is not offered");
    assert!(matches!(refused, AdapterError::Unsupported { .. }));
    assert!(!refused.is_retryable());
    assert_eq!(instance_states(&name).await, before);
    let local = Target {
        kind: TargetKind::LocalFleet,
        group: name,
    };
    assert!(matches!(
        provider.candidates(&local).await,
        Err(AdapterError::NoSuchGroup(_))
    ));
}

#[tokio::test]
async fn stop_condition_alarms_fail_closed() {
    let cw = cloudwatch();
    let alarm = |name: &str| StopCondition::Alarm {
        alarm_name: name.to_owned(),
    };
    let names = [
        fleet::alarm(StateValue::Ok).await,
        fleet::alarm(StateValue::Alarm).await,
        fleet::alarm(StateValue::InsufficientData).await,
    ];
    let (ok, in_alarm, insufficient) = (&names[0], &names[1], &names[2]);
    let alarms = CloudWatchAlarms::new(cw);

    let limit = StopCondition::MaxErrorRate { percent: 5 };
    assert_eq!(
        alarms
            .first_tripped(&[alarm(ok), limit.clone()])
            .await
            .expect("checked"),
        None
    );
    assert_eq!(alarms.first_tripped(&[]).await.expect("checked"), None);
    for (name, expected) in [
        (in_alarm, format!("alarm {in_alarm} is ALARM")),
        (
            insufficient,
            format!("alarm {insufficient} is INSUFFICIENT_DATA"),
        ),
    ] {
        let tripped = alarms
            .first_tripped(&[alarm(ok), alarm(name)])
            .await
            .expect("checked")
            .expect("tripped");
        assert_eq!(tripped.condition, alarm(name));
        assert_eq!(tripped.detail, expected);
    }
    let missing = aws::unique("no-such-alarm");
    let tripped = alarms
        .first_tripped(&[alarm(ok), alarm(&missing)])
        .await
        .expect("checked")
        .expect("a missing alarm trips");
    assert_eq!(
        tripped.detail,
        format!("alarm {missing} does not exist (failing closed)")
    );
}

#[tokio::test]
async fn two_concurrent_starts_make_one_execution_and_a_hurry_stops_it_only_between_steps() {
    let (client, machine) = fleet::state_machine().await;
    let starter = StepFunctions::new(client.clone(), machine.clone());
    let experiment = uuid::Uuid::now_v7().to_string();
    let input = serde_json::json!({ "experimentId": experiment });
    let (a, b) = tokio::join!(
        starter.start(&experiment, &input),
        starter.start(&experiment, &input)
    );
    let (a, b) = (a.expect("first start"), b.expect("second start"));
    // Racing, both may hear "started" (Step Functions answers a start with the same name and
    // input as a running execution with that execution); both name the one execution.
    let execution = |s: &Started| match s {
        Started::New { execution } | Started::Existing { execution } => execution.clone(),
    };
    assert_eq!(execution(&a), starter.execution_arn(&experiment));
    assert_eq!(execution(&b), execution(&a));
    let again = starter
        .start(&experiment, &input)
        .await
        .expect("third start");
    assert_eq!(
        again,
        Started::Existing {
            execution: starter.execution_arn(&experiment)
        }
    );
    let executions = client
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .expect("executions");
    let executions = executions.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0].name(), execution_name(&experiment));
    assert_eq!(
        executions[0].execution_arn(),
        starter.execution_arn(&experiment)
    );

    // Running and waiting (the test machine is one long Wait): a hurry stops it there.
    assert_eq!(
        starter.running().await.expect("running"),
        std::slice::from_ref(&experiment)
    );
    let soon = || Instant::now() + Duration::from_millis(600);
    assert_eq!(
        starter
            .hurry(&experiment, "stop requested by alice", soon())
            .await
            .expect("hurried"),
        Hurried::Stopped
    );
    assert_eq!(
        fleet::settled_status(
            &client,
            &starter.execution_arn(&experiment),
            Duration::from_secs(5)
        )
        .await,
        "ABORTED"
    );
    assert!(starter.running().await.expect("running").is_empty());
    // Hurrying one that ended, or never ran, is not an error.
    for id in [experiment.clone(), uuid::Uuid::now_v7().to_string()] {
        assert_eq!(
            starter
                .hurry(&id, "nothing to stop", soon())
                .await
                .expect("hurried"),
            Hurried::Ended
        );
    }

    // An execution in a task is never stopped: once the deadline passes it is left running.
    let (_, busy_machine) = fleet::busy_state_machine().await;
    let busy = StepFunctions::new(client.clone(), busy_machine);
    let working = "team:web.kill-one";
    busy.start(working, &serde_json::json!({ "experimentId": working }))
        .await
        .expect("started");
    // Its name is not the id; the id is read from the execution's input.
    assert_eq!(busy.running().await.expect("running"), [working]);
    assert_eq!(
        busy.hurry(working, "stop requested by alice", soon())
            .await
            .expect("hurried"),
        Hurried::Busy
    );
    let described = client
        .describe_execution()
        .execution_arn(busy.execution_arn(working))
        .send()
        .await
        .expect("described");
    assert_eq!(described.status().as_str(), "RUNNING");
}
