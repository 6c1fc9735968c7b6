//! The SAM template (`infrastructure/template.yaml`) against the code it deploys: cfn-lint
//! accepts it; every Lambda binary of the workspace has its function and every function its
//! binary, with the environment the binary reads; no principal may change or remove an event;
//! only the inject task may terminate instances, and only those of groups tagged as chaos
//! targets; the state machine is the one definition with every task substituted; the stream
//! mappings are bounded and keep what fails; housekeeping runs every minute over the index it
//! queries.
//!
//! The template is read as CloudFormation reads it (see `template/mod.rs`).

use std::collections::{BTreeMap, BTreeSet};

use command_lambdas::tasks::Task;
use domain::provenance::Role;
use dynamo_tables::{events, views};
use serde_json::{Value, json};
use template::{lint, root, template, template_path};
use test_support::template;

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"].as_object().expect("Resources")
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

/// A string or a list of strings, as IAM writes actions and resources.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Every inline policy statement a function, state machine or role is given, with its owner
/// (SAM writes `Policies: [{Statement}]`, IAM roles `Policies: [{PolicyDocument: {Statement}}]`).
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (name, resource) in resources(template) {
        for policy in resource["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let listed = [&policy["Statement"], &policy["PolicyDocument"]["Statement"]];
            for statement in listed.into_iter().filter_map(Value::as_array).flatten() {
                all.push((name.clone(), statement.clone()));
            }
        }
    }
    all
}

/// Whether an IAM action pattern (`dynamodb:*`, `dynamodb:Update*`) covers `action`.
fn covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

/// Whether a resource expression refers to `logical` (by Ref, GetAtt or inside a Sub), or is
/// a wildcard that would match it.
fn refers_to(resource: &Value, logical: &str) -> bool {
    match resource {
        Value::String(s) => s == "*" || s.contains(logical),
        other => other.to_string().contains(logical),
    }
}

#[test]
fn cfn_lint_accepts_the_template_and_refuses_a_broken_one() {
    let (ok, says) = lint(&template_path());
    assert!(ok, "cfn-lint: {says}");

    let text = std::fs::read_to_string(template_path()).expect("read the template");
    let broken = text.replacen(
        "BillingMode: PAY_PER_REQUEST",
        "BillingMode: WHEN_IT_SUITS",
        1,
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, broken).expect("write");
    let (ok, says) = lint(&path);
    assert!(!ok, "an unknown billing mode passed: {says}");
}

/// The binaries of a package: `src/bin/*.rs`.
fn binaries(package: &str) -> BTreeSet<String> {
    std::fs::read_dir(root().join(package).join("src/bin"))
        .expect("src/bin")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            Some(name.strip_suffix(".rs")?.to_owned())
        })
        .collect()
}

#[test]
fn every_lambda_binary_has_its_function_with_the_environment_it_reads() {
    let template = template();
    let mut deployed: BTreeMap<(String, String), (String, &Value)> = BTreeMap::new();
    for (name, function) in of_type(&template, "AWS::Serverless::Function") {
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name} is not built with cargo-lambda"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names no binary"))
            .to_owned();
        let package = function["Properties"]["CodeUri"]
            .as_str()
            .and_then(|uri| uri.strip_prefix("../"))
            .unwrap_or_else(|| panic!("{name}: CodeUri is not a package of the workspace"))
            .to_owned();
        let previous = deployed.insert((package.clone(), binary.clone()), (name.clone(), function));
        assert!(previous.is_none(), "{package}/{binary} is deployed twice");
    }
    // The Lambda packages; the `chaos` binary (graphql-api/chaos) is no Lambda.
    let mut built = BTreeSet::new();
    for package in ["command-lambdas", "projection-lambdas"] {
        for binary in binaries(package) {
            built.insert((package.to_owned(), binary));
        }
    }
    let deployed_keys: BTreeSet<(String, String)> = deployed.keys().cloned().collect();
    assert_eq!(deployed_keys, built, "functions and binaries differ");

    let globals: BTreeSet<String> = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .map(|vars| vars.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        template["Globals"]["Function"]["Architectures"],
        json!(["arm64"])
    );
    assert_eq!(
        template["Globals"]["Function"]["Runtime"],
        "provided.al2023"
    );
    let needs = |binary: &str| -> &[&str] {
        match binary {
            "command" => &["EVENTS_TABLE", "STATE_MACHINE_ARN", "VIEWS_TABLE"],
            "housekeeping" => &["EVENTS_TABLE", "STATE_MACHINE_ARN", "VIEWS_TABLE"],
            "project-stream" => &["VIEWS_TABLE"],
            "publish-events" => &["EVENT_BUS_NAME"],
            task if task.starts_with("task-") => &["EVENTS_TABLE", "VIEWS_TABLE"],
            other => panic!("no environment is known for {other}: add it here"),
        }
    };
    for ((_, binary), (name, function)) in &deployed {
        let mut has = globals.clone();
        if let Some(vars) = function["Properties"]["Environment"]["Variables"].as_object() {
            has.extend(vars.keys().cloned());
        }
        for var in needs(binary) {
            assert!(has.contains(*var), "{name} ({binary}) lacks {var}");
        }
    }
}

#[test]
fn no_principal_may_change_or_remove_an_event() {
    let template = template();
    let rewrites = [
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
        "dynamodb:DeleteTable",
    ];
    for (owner, statement) in statements(&template) {
        if statement["Effect"] != "Allow" || !refers_to(&statement["Resource"], "EventsTable") {
            continue;
        }
        for pattern in strings(&statement["Action"]) {
            for rewrite in rewrites {
                assert!(
                    !covers(&pattern, rewrite),
                    "{owner} is allowed {pattern} on the events table"
                );
            }
        }
    }
    let table = &resources(&template)["EventsTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    assert_eq!(
        table["Properties"]["StreamSpecification"]["StreamViewType"],
        "NEW_IMAGE"
    );
    assert_eq!(
        table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["Properties"]["SSESpecification"]["SSEEnabled"], true);
    // The table's own policy refuses every principal, including administrators, whatever
    // their identity policies allow.
    let denied: BTreeSet<String> =
        table["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("the events table has a resource policy")
            .iter()
            .filter(|s| s["Effect"] == "Deny" && s["Principal"] == "*")
            .flat_map(|s| strings(&s["Action"]))
            .collect();
    for rewrite in &rewrites[..5] {
        assert!(denied.contains(*rewrite), "{rewrite} is not denied");
    }
    // The keys dynamo-es reads and writes.
    assert_eq!(
        table["Properties"]["KeySchema"],
        json!([
            {"AttributeName": "AggregateTypeAndId", "KeyType": "HASH"},
            {"AttributeName": "AggregateIdSequence", "KeyType": "RANGE"}
        ])
    );
}

#[test]
fn only_the_inject_task_may_terminate_and_only_chaos_targets() {
    let template = template();
    let destructive = [
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:RebootInstances",
    ];
    let mut granted = Vec::new();
    for (owner, statement) in statements(&template) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let actions = strings(&statement["Action"]);
        if !actions
            .iter()
            .any(|a| destructive.iter().any(|d| covers(a, d)))
        {
            continue;
        }
        granted.push(owner.clone());
        assert_eq!(
            statement["Condition"]["StringEquals"]["autoscaling:ResourceTag/chaos:target"], "true",
            "{owner} may terminate without the chaos:target tag"
        );
    }
    assert_eq!(granted, ["InjectFunction"]);
    let inject = &resources(&template)["InjectFunction"];
    assert_eq!(
        inject["Metadata"]["BuildProperties"]["Binary"],
        "task-inject"
    );
}

#[test]
fn the_state_machine_is_the_definition_with_every_task_substituted() {
    let template = template();
    let machine = &resources(&template)["ExperimentStateMachine"]["Properties"];
    assert_eq!(
        machine["DefinitionUri"],
        "../step-functions/experiment.asl.json"
    );
    let definition =
        std::fs::read_to_string(root().join("step-functions/experiment.asl.json")).expect("read");
    let substitutions = machine["DefinitionSubstitutions"]
        .as_object()
        .expect("DefinitionSubstitutions");
    assert_eq!(substitutions.len(), Task::ALL.len());
    for task in Task::ALL {
        let key = format!("{}FunctionArn", task.name());
        assert!(definition.contains(&format!("${{{key}}}")), "{key} unused");
        let function = format!("{}Function", task.name());
        assert_eq!(
            substitutions[&key],
            json!({"Fn::GetAtt": [function, "Arn"]}),
            "{key}"
        );
        // ... and may invoke exactly those functions.
        assert!(
            machine["Policies"]
                .as_array()
                .expect("Policies")
                .iter()
                .any(|p| p["LambdaInvokePolicy"]["FunctionName"] == json!({"Ref": function})),
            "the workflow may not invoke {function}"
        );
    }
}

#[test]
fn stream_mappings_are_bounded_and_keep_what_fails() {
    let template = template();
    let mut mappings = 0;
    for (name, function) in of_type(&template, "AWS::Serverless::Function") {
        for (event, source) in function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if source["Type"] != "DynamoDB" {
                continue;
            }
            mappings += 1;
            let p = &source["Properties"];
            let at = format!("{name}.{event}");
            assert_eq!(
                p["Stream"],
                json!({"Fn::GetAtt": ["EventsTable", "StreamArn"]}),
                "{at}"
            );
            assert_eq!(
                p["FunctionResponseTypes"],
                json!(["ReportBatchItemFailures"]),
                "{at}"
            );
            assert_eq!(p["BisectBatchOnFunctionError"], true, "{at}");
            assert_eq!(p["ParallelizationFactor"], 1, "{at}");
            let retries = p["MaximumRetryAttempts"].as_i64().expect("bounded retries");
            assert!((0..=10_000).contains(&retries), "{at}");
            let age = p["MaximumRecordAgeInSeconds"]
                .as_i64()
                .expect("bounded age");
            assert!((60..=604_800).contains(&age), "{at}");
            assert_eq!(p["DestinationConfig"]["OnFailure"]["Type"], "SQS", "{at}");
        }
    }
    assert_eq!(mappings, 2, "project-stream and publish-events");
}

#[test]
fn housekeeping_runs_every_minute_over_the_status_index() {
    let template = template();
    let function = &resources(&template)["HousekeepingFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"],
        "housekeeping"
    );
    let schedules: Vec<&Value> = function["Properties"]["Events"]
        .as_object()
        .expect("Events")
        .values()
        .filter(|e| e["Type"] == "Schedule")
        .collect();
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0]["Properties"]["Schedule"], "rate(1 minute)");
    // One round at a time: a round that overruns is never overlapped by the next.
    assert_eq!(function["Properties"]["ReservedConcurrentExecutions"], 1);

    // The metric it publishes is the one the alarm watches, and silence alarms too.
    let alarm = &resources(&template)["RunsPastLimitAlarm"]["Properties"];
    assert_eq!(
        alarm["Namespace"],
        command_lambdas::housekeeping::METRIC_NAMESPACE
    );
    let line: Value = serde_json::from_str(&command_lambdas::housekeeping::metric_line(
        &command_lambdas::housekeeping::Report::default(),
        domain::Timestamp::from_unix_millis(0),
    ))
    .expect("JSON");
    assert_eq!(
        alarm["MetricName"],
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
    );
    assert_eq!(alarm["TreatMissingData"], "breaching");
}

/// The tables the template declares have the keys and indexes every writer and reader uses
/// (`dynamo-tables`, their one definition).
#[test]
fn the_tables_have_the_keys_and_indexes_the_code_uses() {
    let template = template();
    let schema = |hash: &str, range: &str| {
        json!([
            {"AttributeName": hash, "KeyType": "HASH"},
            {"AttributeName": range, "KeyType": "RANGE"}
        ])
    };
    let events_table = &resources(&template)["EventsTable"]["Properties"];
    assert_eq!(
        events_table["KeySchema"],
        schema(events::PARTITION_KEY, events::SORT_KEY)
    );
    let views_table = &resources(&template)["ViewsTable"]["Properties"];
    assert_eq!(views_table["KeySchema"], schema(views::PK, views::SK));
    let indexes: Vec<(Value, Value)> = views_table["GlobalSecondaryIndexes"]
        .as_array()
        .expect("indexes")
        .iter()
        .map(|i| (i["IndexName"].clone(), i["KeySchema"].clone()))
        .collect();
    assert_eq!(
        indexes,
        [
            (
                json!(views::BY_STATUS),
                schema(views::STATUS, views::CREATED_AT)
            ),
            (json!(views::BY_FEED), schema(views::FEED, views::FEED_KEY)),
        ]
    );
}

#[test]
fn cognito_groups_are_the_platforms_roles_and_every_alarm_tells_the_topic() {
    let template = template();
    let mut groups: Vec<(i64, String)> = of_type(&template, "AWS::Cognito::UserPoolGroup")
        .into_iter()
        .map(|(_, g)| {
            (
                g["Properties"]["Precedence"].as_i64().expect("precedence"),
                g["Properties"]["GroupName"]
                    .as_str()
                    .expect("name")
                    .to_owned(),
            )
        })
        .collect();
    groups.sort();
    // The strongest role first: a user in several groups acts with the strongest.
    let roles: Vec<(i64, String)> = [Role::Admin, Role::Operator, Role::Viewer]
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as i64, r.as_str().to_owned()))
        .collect();
    assert_eq!(groups, roles);
    let pool = &resources(&template)["UserPool"]["Properties"];
    assert_eq!(
        pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"],
        true
    );
    let client = &resources(&template)["DashboardClient"]["Properties"];
    assert_eq!(client["GenerateSecret"], false, "a browser keeps no secret");
    assert_eq!(client["EnableTokenRevocation"], true);

    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 3, "{alarms:?}");
    for (name, alarm) in alarms {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([{"Ref": "NotificationTopic"}]),
            "{name} tells no one"
        );
    }
    // Both failure queues are watched.
    for queue in ["StreamFailures", "NotificationFailures"] {
        assert!(
            of_type(&template, "AWS::CloudWatch::Alarm")
                .iter()
                .any(|(_, a)| a["Properties"]["Dimensions"][0]["Value"]
                    == json!({"Fn::GetAtt": [queue, "QueueName"]})),
            "no alarm watches {queue}"
        );
    }
}

#[test]
fn the_api_is_one_service_behind_cloudfront_beside_the_dashboard() {
    let template = template();
    let all = resources(&template);
    // The API's task role is held to the events table's rule like every function.
    assert!(
        statements(&template)
            .iter()
            .any(|(owner, s)| owner == "ApiTaskRole" && refers_to(&s["Resource"], "EventsTable")),
        "the API's role is not among the statements checked"
    );
    let service = &all["ApiService"]["Properties"];
    // One reader of the events table's stream besides the projection's mapping: one task,
    // never two at once during a deployment.
    assert_eq!(service["DesiredCount"], 1);
    assert_eq!(service["DeploymentConfiguration"]["MaximumPercent"], 100);
    let container = &all["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let command = strings(&container["Command"]);
    assert_eq!(&command[..2], ["serve", "--aws"]);
    let environment: BTreeMap<String, Value> = container["Environment"]
        .as_array()
        .expect("environment")
        .iter()
        .map(|e| {
            (
                e["Name"].as_str().expect("name").to_owned(),
                e["Value"].clone(),
            )
        })
        .collect();
    for (name, resource) in [
        ("EVENTS_TABLE", "EventsTable"),
        ("VIEWS_TABLE", "ViewsTable"),
        ("STATE_MACHINE_ARN", "ExperimentStateMachine"),
        ("CHAOS_COGNITO_USER_POOL_ID", "UserPool"),
        ("CHAOS_COGNITO_CLIENT_ID", "DashboardClient"),
    ] {
        assert_eq!(environment[name], json!({"Ref": resource}), "{name}");
    }
    // The stream the server reads for subscriptions, and nothing that rewrites an event.
    let api: Vec<Value> = statements(&template)
        .into_iter()
        .filter(|(owner, _)| owner == "ApiTaskRole")
        .map(|(_, s)| s)
        .collect();
    assert!(api.iter().any(|s| {
        s["Resource"] == json!({"Fn::GetAtt": ["EventsTable", "StreamArn"]})
            && strings(&s["Action"]).contains(&"dynamodb:GetRecords".to_owned())
    }));
    // WebSockets outlive the default idle timeout.
    let attributes = &all["ApiLoadBalancer"]["Properties"]["LoadBalancerAttributes"];
    assert!(
        attributes
            .as_array()
            .expect("attributes")
            .iter()
            .any(|a| a["Key"] == "idle_timeout.timeout_seconds"
                && a["Value"].as_str().and_then(|v| v.parse::<u32>().ok()) >= Some(600)),
        "{attributes}"
    );
    // Only CloudFront reaches the load balancer, and only with the secret header.
    let ingress = &all["ApiLoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"];
    assert_eq!(ingress.as_array().map(Vec::len), Some(1));
    assert_eq!(
        ingress[0]["SourcePrefixListId"],
        json!({"Ref": "CloudFrontPrefixListId"})
    );
    assert_eq!(
        all["ApiListener"]["Properties"]["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"],
        "403"
    );

    // The dashboard's bucket is private and read by CloudFront alone.
    let bucket = &all["DashboardBucket"]["Properties"]["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(bucket[setting], true, "{setting}");
    }
    let distribution = &all["DashboardDistribution"]["Properties"]["DistributionConfig"];
    assert_eq!(
        distribution["DefaultCacheBehavior"]["TargetOriginId"],
        "dashboard"
    );
    assert_eq!(
        distribution["DefaultCacheBehavior"]["ViewerProtocolPolicy"],
        "redirect-to-https"
    );
    // The API under the same address, never cached.
    let graphql = distribution["CacheBehaviors"]
        .as_array()
        .expect("behaviours")
        .iter()
        .find(|b| b["PathPattern"] == "/graphql*")
        .expect("/graphql goes to the API");
    assert_eq!(graphql["TargetOriginId"], "api");
    assert_eq!(
        graphql["CachePolicyId"], "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        "caching disabled"
    );
    // The Content-Security-Policy `chaos serve` sends, with no inline script; the page may
    // call the pool's Cognito endpoint, where people sign in.
    let policy = &all["DashboardHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
        ["ContentSecurityPolicy"]["ContentSecurityPolicy"];
    let csp = policy
        .as_str()
        .or_else(|| policy["Fn::Sub"].as_str())
        .expect("a CSP");
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(
        csp.contains("connect-src 'self' wss: https://cognito-idp.${AWS::Region}.amazonaws.com;"),
        "{csp}"
    );
    let flows = &all["DashboardClient"]["Properties"]["ExplicitAuthFlows"];
    assert!(
        flows
            .as_array()
            .expect("flows")
            .contains(&json!("ALLOW_USER_PASSWORD_AUTH")),
        "the dashboard signs in with USER_PASSWORD_AUTH: {flows}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}
