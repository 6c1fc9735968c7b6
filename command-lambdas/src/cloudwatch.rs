//! CloudWatch as the health source and the stop-condition alarms of Auto Scaling targets.
//!
//! **Health** ([`AsgHealth`]): the expected count is the group's desired capacity and the
//! healthy count its members that are `InService` and `Healthy`, from Auto Scaling itself.
//! Latency and error rate come from the group's load balancer metrics in CloudWatch over the
//! last [`HealthMetrics::window_secs`]: the group names its Application Load Balancer with a
//! `chaos:load-balancer` tag (the metrics' `LoadBalancer` dimension, `app/<name>/<id>`).
//! Latency is `TargetResponseTime` at [`HealthMetrics::latency_stat`] (p95 by default), the
//! error rate `HTTPCode_Target_5XX_Count` over `RequestCount`. No requests in the window is
//! no errors and no latency; a group without the tag reports counts only.
//!
//! **Stop conditions** ([`CloudWatchAlarms`]): fail closed. An alarm in `ALARM` or
//! `INSUFFICIENT_DATA`, or one that does not exist, holds; only `OK` lets a run go on.

use std::sync::Arc;

use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StateValue};
use domain::experiment::HealthSnapshot;
use domain::spec::{StopCondition, Target, TargetKind};

use crate::adapters::{AdapterError, AlarmSource, HealthProbe, Tripped};
use crate::asg::{describe_group, sdk_error};
use crate::clock::Clock;

/// The Auto Scaling group tag naming its load balancer's metric dimension.
pub const LOAD_BALANCER_TAG: &str = "chaos:load-balancer";

/// Alarm names asked in one `DescribeAlarms` call (its limit).
const ALARMS_PER_CALL: usize = 100;

/// Where and how health metrics are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMetrics {
    /// Metric namespace (`AWS/ApplicationELB`).
    pub namespace: String,
    /// The window each sample covers, in seconds (a multiple of 60).
    pub window_secs: u32,
    /// The statistic of `TargetResponseTime` reported as latency (`p95`).
    pub latency_stat: String,
}

impl Default for HealthMetrics {
    fn default() -> Self {
        Self {
            namespace: "AWS/ApplicationELB".into(),
            window_secs: 60,
            latency_stat: "p95".into(),
        }
    }
}

/// Health of EC2 Auto Scaling groups from Auto Scaling and CloudWatch.
#[derive(Clone)]
pub struct AsgHealth {
    autoscaling: aws_sdk_autoscaling::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    metrics: HealthMetrics,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AsgHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsgHealth")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl AsgHealth {
    /// The probe over these clients; `clock` places the metrics window.
    pub fn new(
        autoscaling: aws_sdk_autoscaling::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        metrics: HealthMetrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            autoscaling,
            cloudwatch,
            metrics,
            clock,
        }
    }

    /// Latency (ms) and error rate (basis points) through the load balancer over the window.
    async fn through_balancer(&self, load_balancer: &str) -> Result<(u32, u32), AdapterError> {
        let window = self.metrics.window_secs.max(60);
        let end_ms = self.clock.now().unix_millis();
        let end = DateTime::from_millis(end_ms);
        let start = DateTime::from_millis(end_ms - i64::from(window) * 1_000);
        let query = |id: &str, name: &str, stat: &str| {
            MetricDataQuery::builder()
                .id(id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(&self.metrics.namespace)
                                .metric_name(name)
                                .dimensions(
                                    Dimension::builder()
                                        .name("LoadBalancer")
                                        .value(load_balancer)
                                        .build(),
                                )
                                .build(),
                        )
                        .period(i32::try_from(window).unwrap_or(60))
                        .stat(stat)
                        .build(),
                )
                .return_data(true)
                .build()
        };
        let out = self
            .cloudwatch
            .get_metric_data()
            .start_time(start)
            .end_time(end)
            .metric_data_queries(query(
                "latency",
                "TargetResponseTime",
                &self.metrics.latency_stat,
            ))
            .metric_data_queries(query("errors", "HTTPCode_Target_5XX_Count", "Sum"))
            .metric_data_queries(query("requests", "RequestCount", "Sum"))
            .send()
            .await
            .map_err(|e| sdk_error("cloudwatch", e))?;
        let mut latency_s = 0.0f64;
        let (mut errors, mut requests) = (0.0f64, 0.0f64);
        for result in out.metric_data_results() {
            let values = result.values();
            match result.id() {
                Some("latency") => latency_s = values.iter().copied().fold(0.0, f64::max),
                Some("errors") => errors = values.iter().sum(),
                Some("requests") => requests = values.iter().sum(),
                _ => {}
            }
        }
        let latency_ms = to_u32((latency_s * 1_000.0).round());
        let error_rate_bp = if requests > 0.0 {
            to_u32(((errors / requests) * 10_000.0).round()).min(10_000)
        } else {
            0
        };
        Ok((latency_ms, error_rate_bp))
    }
}

/// A non-negative float as a `u32`, saturating (metrics are counts and durations).
fn to_u32(value: f64) -> u32 {
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and non-negative: the cast only drops the fraction, already rounded.
        value as u32
    }
}

/// The load balancer dimension a group's tag names, if it names one.
fn load_balancer(group: &AutoScalingGroup) -> Option<&str> {
    group
        .tags()
        .iter()
        .find(|t| t.key() == Some(LOAD_BALANCER_TAG))
        .and_then(|t| t.value())
        .filter(|v| !v.is_empty())
}

impl HealthProbe for AsgHealth {
    async fn measures_traffic(&self, target: &Target) -> Result<bool, AdapterError> {
        if target.kind != TargetKind::AutoScalingGroup {
            return Err(AdapterError::NoSuchGroup(target.key()));
        }
        match describe_group(&self.autoscaling, &target.group).await? {
            Some(group) => Ok(load_balancer(&group).is_some()),
            None => Err(AdapterError::NoSuchGroup(target.key())),
        }
    }

    async fn sample(&self, target: &Target) -> Result<HealthSnapshot, AdapterError> {
        if target.kind != TargetKind::AutoScalingGroup {
            return Err(AdapterError::NoSuchGroup(target.key()));
        }
        let Some(group) = describe_group(&self.autoscaling, &target.group).await? else {
            return Err(AdapterError::NoSuchGroup(target.key()));
        };
        let healthy = group
            .instances()
            .iter()
            .filter(|i| {
                i.lifecycle_state() == Some(&LifecycleState::InService)
                    && i.health_status() == Some("Healthy")
            })
            .count();
        let total = group.desired_capacity().unwrap_or(0).max(0);
        let (latency_p95_ms, error_rate_bp) = match load_balancer(&group) {
            Some(lb) => self.through_balancer(lb).await?,
            None => (0, 0),
        };
        Ok(HealthSnapshot {
            healthy: u32::try_from(healthy).unwrap_or(u32::MAX),
            total: u32::try_from(total).unwrap_or(0),
            latency_p95_ms,
            error_rate_bp,
        })
    }
}

/// Stop-condition alarms in CloudWatch (metric and composite alarms).
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarms {
    /// The source over this client.
    pub fn new(cloudwatch: aws_sdk_cloudwatch::Client) -> Self {
        Self { cloudwatch }
    }

    /// The state of each named alarm that exists.
    async fn states(&self, names: &[&str]) -> Result<Vec<(String, StateValue)>, AdapterError> {
        let mut states = Vec::new();
        for chunk in names.chunks(ALARMS_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .cloudwatch
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.iter().map(|n| (*n).to_owned()).collect()))
                    .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                    .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("cloudwatch", e))?;
                for alarm in out.metric_alarms() {
                    if let (Some(name), Some(state)) = (alarm.alarm_name(), alarm.state_value()) {
                        states.push((name.to_owned(), state.clone()));
                    }
                }
                for alarm in out.composite_alarms() {
                    if let (Some(name), Some(state)) = (alarm.alarm_name(), alarm.state_value()) {
                        states.push((name.to_owned(), state.clone()));
                    }
                }
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(states)
    }
}

impl AlarmSource for CloudWatchAlarms {
    async fn first_tripped(
        &self,
        conditions: &[StopCondition],
    ) -> Result<Option<Tripped>, AdapterError> {
        let names: Vec<&str> = conditions
            .iter()
            .filter_map(|c| match c {
                StopCondition::Alarm { alarm_name } => Some(alarm_name.as_str()),
                StopCondition::MaxErrorRate { .. } => None,
            })
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let states = self.states(&names).await?;
        for condition in conditions {
            let StopCondition::Alarm { alarm_name } = condition else {
                continue;
            };
            let detail = match states.iter().find(|(name, _)| name == alarm_name) {
                Some((_, StateValue::Ok)) => continue,
                Some((_, state)) => format!("alarm {alarm_name} is {}", state.as_str()),
                None => format!("alarm {alarm_name} does not exist (failing closed)"),
            };
            return Ok(Some(Tripped {
                condition: condition.clone(),
                detail,
            }));
        }
        Ok(None)
    }
}
