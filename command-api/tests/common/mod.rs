//! Test helpers: a moto endpoint (which the test command starts), DynamoDB clients and a reader for the table's
//! stream, so the store contract can check what each command put on the feed.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::Utc;
use domain::OrderChange;

/// The moto server to test against. Missing is a failure, not a skip: the suite must run everywhere.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set. These tests need moto: run ./scripts/test (it starts one), or start \
             `moto_server -H 127.0.0.1 -p 5000` and set MOTO_ENDPOINT=http://127.0.0.1:5000"
        ),
    }
}

/// SDK configuration for any endpoint, with a fixed region and dummy credentials.
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = moto_endpoint();
    let config = sdk_config_at(&endpoint).await;
    let probe = aws_sdk_dynamodb::Client::new(&config).list_tables().limit(1).send().await;
    if let Err(e) = probe {
        panic!(
            "moto at MOTO_ENDPOINT={endpoint} does not answer ({e:?}); start it with `moto_server -H 127.0.0.1 -p PORT`"
        );
    }
    config
}

/// A table name no other test (or earlier run against the same moto) uses.
pub fn unique_table(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), Utc::now().timestamp_millis(), N.fetch_add(1, Ordering::Relaxed))
}

/// Every record on the table's stream so far, decoded into the domain's change type.
pub async fn stream_changes(config: &aws_config::SdkConfig, table: &str) -> Vec<OrderChange> {
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let streams = aws_sdk_dynamodbstreams::Client::new(config);
    let arn = ddb.describe_table().table_name(table).send().await.unwrap().table.unwrap().latest_stream_arn.unwrap();
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut out = Vec::new();
    for shard in shards {
        let shard_id = shard.shard_id.unwrap();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams.get_records().shard_iterator(it).send().await.unwrap();
            let records = page.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for r in records {
                out.push(projector::poller::decode_record(&shard_id, &r).expect("the store writes decodable records"));
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}
