//! A reader for the table's stream on moto, so the store contract can check what each command put on the feed.
#![allow(dead_code)]

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use domain::OrderChange;

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
                out.push(
                    change_feed::poller::decode_record(&shard_id, &r).expect("the store writes decodable records"),
                );
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}
