//! The workflow's `resolve-targets` task as a Lambda: see [`command_lambdas::tasks`] for what it does and
//! [`command_lambdas::lambda`] for its configuration and error names.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    command_lambdas::lambda::serve_task(command_lambdas::lambda::Task::ResolveTargets).await
}
