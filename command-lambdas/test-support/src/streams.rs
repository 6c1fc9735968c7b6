//! The events table's stream as Lambda delivers it: the real stream records, read from the
//! local moto server with the DynamoDB Streams API and turned into Lambda event JSON.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use serde_json::{Value, json};

use crate::aws;

fn image(item: &HashMap<String, StreamValue>) -> Value {
    let converted: HashMap<String, serde_dynamo::AttributeValue> = item
        .iter()
        .map(|(k, v)| {
            let v = match v {
                StreamValue::S(s) => serde_dynamo::AttributeValue::S(s.clone()),
                StreamValue::N(n) => serde_dynamo::AttributeValue::N(n.clone()),
                StreamValue::B(b) => serde_dynamo::AttributeValue::B(b.as_ref().to_vec()),
                other => panic!("unexpected attribute {other:?}"),
            };
            (k.clone(), v)
        })
        .collect();
    serde_json::to_value(serde_dynamo::Item::from(converted)).expect("image JSON")
}

/// Every record of the table's stream, read with the Streams API, as Lambda event records.
pub async fn stream_records(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Value> {
    let streams = aws::client!(aws_sdk_dynamodbstreams);
    let arn = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe table")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("stream enabled");
    let description = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("describe stream")
        .stream_description
        .expect("description");
    let mut out = Vec::new();
    for shard in description.shards() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().expect("shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("get records");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let d = r.dynamodb().expect("stream record");
                out.push(json!({
                    "eventID": r.event_id().expect("event id"),
                    "eventName": r.event_name().expect("event name").as_str(),
                    "eventSource": "aws:dynamodb",
                    "eventVersion": "1.1",
                    "awsRegion": "us-east-1",
                    "dynamodb": {
                        "Keys": image(d.keys().expect("keys")),
                        "NewImage": image(d.new_image().expect("new image")),
                        "SequenceNumber": d.sequence_number().expect("sequence number"),
                        "SizeBytes": 100,
                        "StreamViewType": d.stream_view_type().expect("view type").as_str(),
                    },
                }));
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

/// A Lambda event of these records.
pub fn event(records: &[Value]) -> Event {
    serde_json::from_value(json!({ "Records": records })).expect("Lambda event")
}
