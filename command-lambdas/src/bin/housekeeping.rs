//! The housekeeping Lambda: scheduled starts, recurring schedules, and runs whose execution
//! ended without ending them (`command_lambdas::housekeeping`).
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    command_lambdas::lambda::serve_housekeeping().await
}
