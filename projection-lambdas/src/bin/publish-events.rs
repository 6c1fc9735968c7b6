//! The event-publisher Lambda on the events table's DynamoDB Stream: builds the EventBridge
//! client once, then hands every batch to [`projection_lambdas::publisher::publish`], which
//! puts each event on the bus and reports the records to retry as batch item failures (the
//! event source mapping must enable `ReportBatchItemFailures`).
//!
//! Configuration: `EVENT_BUS_NAME` names the bus (a name or an ARN); credentials and region
//! come from the Lambda environment. The detail schema is in `docs/EVENTS.md`.
#![recursion_limit = "256"]

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use projection_lambdas::publisher::{EventBus, publish};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let name = std::env::var("EVENT_BUS_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .ok_or("EVENT_BUS_NAME is not set: it must name the EventBridge bus to publish to")?;
    let config = aws_config::load_from_env().await;
    let bus = EventBus::new(aws_sdk_eventbridge::Client::new(&config), name);
    let bus = &bus;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(publish(bus, event.payload).await)
    }))
    .await
}
