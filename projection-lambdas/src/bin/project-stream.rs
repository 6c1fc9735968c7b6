//! The projection Lambda for the events table's DynamoDB Stream: builds the DynamoDB client
//! once, then hands every batch to [`projection_lambdas::dynamo_stream::handle`], which
//! reports the records to retry as batch item failures (the event source mapping must enable
//! `ReportBatchItemFailures`).
//!
//! Configuration: `VIEWS_TABLE` names the read-model table; credentials and region come from
//! the Lambda environment.
#![recursion_limit = "256"]

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use projection_lambdas::dynamo_stream::{ViewStore, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = std::env::var("VIEWS_TABLE")
        .map_err(|_| "VIEWS_TABLE is not set: it must name the read-model table")?;
    let config = aws_config::load_from_env().await;
    let store = ViewStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(handle(store, event.payload).await)
    }))
    .await
}
