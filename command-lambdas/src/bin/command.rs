//! The command Lambda: one JSON command in, its outcome out (see [`command_lambdas::command`]);
//! configuration in [`command_lambdas::lambda`].
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    command_lambdas::lambda::serve_commands().await
}
