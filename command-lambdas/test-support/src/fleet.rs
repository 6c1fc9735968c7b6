//! EC2 Auto Scaling groups, instances and CloudWatch alarms on the local moto server, for
//! the tests of the AWS adapters and the workflow tasks.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::Tag as AsgTag;
use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use command_lambdas::cloudwatch::LOAD_BALANCER_TAG;

/// An Auto Scaling group of `capacity` instances, tagged with its load balancer's dimension.
pub async fn group(capacity: i32, load_balancer: Option<&str>) -> String {
    let ec2 = crate::aws::client!(aws_sdk_ec2);
    let image = ec2
        .describe_images()
        .send()
        .await
        .expect("images")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("moto lists an image");
    let name = crate::aws::unique("web");
    let autoscaling = crate::aws::client!(aws_sdk_autoscaling);
    autoscaling
        .create_launch_configuration()
        .launch_configuration_name(&name)
        .image_id(image)
        .instance_type("t3.micro")
        .send()
        .await
        .expect("launch configuration");
    let mut create = autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_configuration_name(&name)
        .min_size(capacity)
        .max_size(capacity + 2)
        .desired_capacity(capacity)
        .availability_zones("us-east-1a");
    if let Some(lb) = load_balancer {
        create = create.tags(
            AsgTag::builder()
                .key(LOAD_BALANCER_TAG)
                .value(lb)
                .resource_id(&name)
                .resource_type("auto-scaling-group")
                .propagate_at_launch(false)
                .build(),
        );
    }
    create.send().await.expect("auto scaling group");
    name
}
/// Every instance of the group (terminated ones too) with its state: tests run at once
/// on one server, so the account holds other groups' instances.
pub async fn instance_states(group: &str) -> BTreeMap<String, String> {
    let out = crate::aws::client!(aws_sdk_ec2)
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:aws:autoscaling:groupName")
                .values(group)
                .build(),
        )
        .send()
        .await
        .expect("instances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_owned(),
                i.state()?.name()?.as_str().to_owned(),
            ))
        })
        .collect()
}

/// A CloudWatch alarm on the load balancer's 5xx count, set to `state`.
pub async fn alarm(state: StateValue) -> String {
    let cw = crate::aws::client!(aws_sdk_cloudwatch);
    let name = crate::aws::unique("errors-high");
    cw.put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("alarm");
    set_alarm(&name, state).await;
    name
}

/// Sets an alarm's state (moto never evaluates alarms).
pub async fn set_alarm(name: &str, state: StateValue) {
    crate::aws::client!(aws_sdk_cloudwatch)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .expect("alarm state");
}

/// The state of one instance, however it left its group.
pub async fn state_of(id: &str) -> String {
    crate::aws::client!(aws_sdk_ec2)
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("instance")
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| Some(i.state()?.name()?.as_str().to_owned()))
        .expect("the instance is still described")
}

/// A state machine whose executions wait an hour, as a run between steps looks from outside.
pub async fn state_machine() -> (aws_sdk_sfn::Client, String) {
    machine(serde_json::json!({
        "StartAt": "Wait",
        "States": { "Wait": { "Type": "Wait", "Seconds": 3600, "End": true } }
    }))
    .await
}

/// A state machine whose executions stay in a task: one that waits for a callback that never
/// comes, as a task in flight looks from outside.
pub async fn busy_state_machine() -> (aws_sdk_sfn::Client, String) {
    machine(serde_json::json!({
        "StartAt": "Work",
        "States": { "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:chaos-busy",
                "Payload": { "token.$": "$$.Task.Token" }
            },
            "End": true
        } }
    }))
    .await
}

async fn machine(definition: serde_json::Value) -> (aws_sdk_sfn::Client, String) {
    let client = crate::aws::client!(aws_sdk_sfn);
    let arn = client
        .create_state_machine()
        .name(crate::aws::unique("experiment"))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/chaos-workflow")
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned();
    (client, arn)
}

/// An execution's status once it is no longer RUNNING (a stopped one may take a moment to
/// wind down), or RUNNING after `within`.
pub async fn settled_status(
    client: &aws_sdk_sfn::Client,
    arn: &str,
    within: std::time::Duration,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("described")
            .status()
            .as_str()
            .to_owned();
        if status != "RUNNING" || std::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
