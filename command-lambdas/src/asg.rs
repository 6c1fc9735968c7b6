//! EC2 Auto Scaling groups as experiment targets.
//!
//! Candidates are the group's members that EC2 knows by the group's `aws:autoscaling:groupName`
//! tag, are `running`, and that Auto Scaling has `InService`: an instance still launching,
//! already terminating, on standby or in a warm pool is never hit. Terminating goes through
//! `TerminateInstanceInAutoScalingGroup` without decrementing the desired capacity, so the group
//! launches a replacement, which is the recovery the experiment measures. Nothing here is
//! called by a dry run except the reads in [`AsgTargets::candidates`].

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use aws_sdk_ec2::types::Filter;
use domain::spec::{FailureType, Target, TargetId, TargetKind};

use crate::adapters::{AdapterError, Injected, TargetProvider};

/// The tag EC2 Auto Scaling puts on every instance it launches.
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// Error codes that mean "not now" rather than "not this way".
const TRANSIENT: [&str; 7] = [
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "ScalingActivityInProgress",
];

/// Maps an error of any AWS SDK client to an [`AdapterError`]: throttling, outages, timeouts
/// and network failures may pass (retryable), anything the service refused will not.
pub(crate) fn sdk_error<E, R>(service: &'static str, e: SdkError<E, R>) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::ServiceError(inner)
            if !inner
                .err()
                .code()
                .is_some_and(|code| TRANSIENT.contains(&code)) =>
        {
            AdapterError::Refused { service, message }
        }
        SdkError::ConstructionFailure(_) => AdapterError::Refused { service, message },
        _ => AdapterError::Unavailable { service, message },
    }
}

/// The Auto Scaling group named `group`, if there is one.
pub(crate) async fn describe_group(
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
) -> Result<Option<AutoScalingGroup>, AdapterError> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| sdk_error("autoscaling", e))?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(group))
        .cloned())
}

/// EC2 Auto Scaling groups, through the EC2 and Auto Scaling APIs.
#[derive(Debug, Clone)]
pub struct AsgTargets {
    ec2: aws_sdk_ec2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
}

impl AsgTargets {
    /// The provider over these clients (built once per process).
    pub fn new(ec2: aws_sdk_ec2::Client, autoscaling: aws_sdk_autoscaling::Client) -> Self {
        Self { ec2, autoscaling }
    }

    fn group<'t>(&self, target: &'t Target) -> Result<&'t str, AdapterError> {
        match target.kind {
            TargetKind::AutoScalingGroup => Ok(&target.group),
            TargetKind::LocalFleet => Err(AdapterError::NoSuchGroup(target.key())),
        }
    }

    /// The group's members Auto Scaling has in service, or `None` when there is no such group.
    async fn in_service(&self, group: &str) -> Result<Option<Vec<String>>, AdapterError> {
        let Some(found) = describe_group(&self.autoscaling, group).await? else {
            return Ok(None);
        };
        Ok(Some(
            found
                .instances()
                .iter()
                .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect(),
        ))
    }

    /// Running EC2 instances tagged as members of the group.
    async fn tagged_running(&self, group: &str) -> Result<Vec<String>, AdapterError> {
        let mut ids = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{GROUP_TAG}"))
                    .values(group)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ec2", e))?;
            for reservation in page.reservations() {
                for instance in reservation.instances() {
                    if let Some(id) = instance.instance_id() {
                        ids.push(id.to_owned());
                    }
                }
            }
        }
        Ok(ids)
    }
}

fn target_id(id: &str) -> Result<TargetId, AdapterError> {
    TargetId::parse(id).map_err(|e| AdapterError::Refused {
        service: "ec2",
        message: format!("instance id {id:?} is not a valid target id: {e}"),
    })
}

impl TargetProvider for AsgTargets {
    async fn candidates(&self, target: &Target) -> Result<Vec<TargetId>, AdapterError> {
        let group = self.group(target)?;
        let Some(in_service) = self.in_service(group).await? else {
            return Err(AdapterError::NoSuchGroup(target.key()));
        };
        let tagged = self.tagged_running(group).await?;
        let mut ids: Vec<TargetId> = tagged
            .iter()
            .filter(|id| in_service.contains(id))
            .map(|id| target_id(id))
            .collect::<Result<_, _>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn inject(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<Injected, AdapterError> {
        self.group(target)?;
        if failure != FailureType::Terminate {
            return Err(AdapterError::Unsupported {
                kind: "EC2 Auto Scaling",
                action: "be paused (only terminated)".into(),
            });
        }
        for id in ids {
            self.autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(id.as_str())
                .should_decrement_desired_capacity(false)
                .send()
                .await
                .map_err(|e| sdk_error("autoscaling", e))?;
        }
        let list: Vec<&str> = ids.iter().map(TargetId::as_str).collect();
        Ok(Injected {
            targets: ids.to_vec(),
            detail: format!(
                "terminated {} in group {} (the group replaces them)",
                list.join(", "),
                target.group
            ),
        })
    }

    async fn rollback(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> Result<String, AdapterError> {
        self.group(target)?;
        Ok(match failure {
            FailureType::Terminate => format!(
                "nothing to undo for {} terminated instance(s): group {} launches replacements",
                ids.len(),
                target.group
            ),
            FailureType::Pause { .. } => "nothing was paused".into(),
        })
    }
}
