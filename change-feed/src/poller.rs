//! `orders project --source dynamodb`: reads the orders table's stream with DescribeStream / GetShardIterator /
//! GetRecords into a sink, as Lambda would hand them to it, for running against DynamoDB without Lambda. Each shard
//! resumes after the sink's stored position; a parent shard is drained before its children; a batch the sink did
//! not wholly take stops its shard (and is retried on the next pass), never skipped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use chrono::{DateTime, Utc};
use domain::Position;
use domain::change::Sequence;
use tokio::sync::watch;
use write_store::codec::streams;

use crate::lambda::{RawRecord, decode_parts};
use crate::{Decoded, Sink, Undecodable};

const PAGE: i32 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("DynamoDB Streams: {0}")]
    Aws(String),
    #[error("table {0} has no stream (it needs StreamSpecification NEW_AND_OLD_IMAGES)")]
    NoStream(String),
    #[error("{0}")]
    Sink(String),
    #[error("record {sequence} of {source_name} was not applied: {reason}")]
    Record { source_name: String, sequence: String, reason: String },
}

fn aws(e: impl std::fmt::Display) -> PollError {
    PollError::Aws(e.to_string())
}

pub fn decode_record(source: &str, r: &Record) -> Decoded {
    let undecodable = |reason: String| {
        let d = r.dynamodb();
        Undecodable {
            reason,
            position: d
                .and_then(|d| d.sequence_number())
                .and_then(Sequence::parse)
                .map(|sequence| Position { source: source.to_owned(), sequence }),
            written_at: d
                .and_then(|d| d.approximate_creation_date_time())
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            record: format!("{r:?}"),
        }
    };
    let d = r.dynamodb().ok_or_else(|| undecodable("record has no dynamodb section".into()))?;
    let at = d
        .approximate_creation_date_time()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now);
    decode_parts(RawRecord {
        event_name: r.event_name().map(|n| n.as_str()).unwrap_or_default(),
        keys: d.keys().map(streams::item).unwrap_or_default(),
        old_image: d.old_image().map(streams::item).unwrap_or_default(),
        new_image: d.new_image().map(streams::item).unwrap_or_default(),
        sequence_number: d.sequence_number(),
        approximate_creation: at,
        source: source.to_owned(),
    })
    .map_err(undecodable)
}

/// What one pass over the stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub records: usize,
    pub applied: usize,
}

pub struct Poller {
    tables: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    sink: Arc<dyn Sink>,
}

impl Poller {
    pub fn new(config: &aws_config::SdkConfig, table: String, sink: Arc<dyn Sink>) -> Poller {
        Poller {
            tables: aws_sdk_dynamodb::Client::new(config),
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            table,
            sink,
        }
    }

    async fn stream_arn(&self) -> Result<String, PollError> {
        let out = self.tables.describe_table().table_name(&self.table).send().await.map_err(aws)?;
        out.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| PollError::NoStream(self.table.clone()))
    }

    async fn shards(&self, arn: &str) -> Result<Vec<Shard>, PollError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(aws)?;
            let Some(desc) = out.stream_description else { break };
            shards.extend(desc.shards.unwrap_or_default());
            start = desc.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        Ok(shards)
    }

    /// Reads `shard` from after its stored position until it has nothing more for now. True when the shard is
    /// closed and fully read (its children may start).
    async fn drain(&self, arn: &str, shard: &Shard, pass: &mut Pass) -> Result<bool, PollError> {
        let shard_id = shard.shard_id().unwrap_or_default();
        let source = format!("{arn}#{shard_id}");
        let stored = self.sink.position(&source).await.map_err(PollError::Sink)?;
        let request = self.streams.get_shard_iterator().stream_arn(arn).shard_id(shard_id);
        let request = match &stored {
            Some(seq) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq.as_str())
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request.send().await.map_err(aws)?.shard_iterator;
        while let Some(it) = iterator {
            let page = self.streams.get_records().shard_iterator(it).limit(PAGE).send().await.map_err(aws)?;
            let records = page.records.unwrap_or_default();
            if !records.is_empty() {
                let decoded: Vec<Decoded> = records.iter().map(|r| decode_record(&source, r)).collect();
                let outcome = self.sink.consume(decoded.clone()).await;
                pass.records += records.len();
                pass.applied += outcome.applied;
                if let Some((index, reason)) = outcome.failure {
                    self.sink.record_backlog(&decoded, index).await;
                    let sequence =
                        records[index].dynamodb().and_then(|d| d.sequence_number()).unwrap_or("?").to_owned();
                    return Err(PollError::Record { source_name: source, sequence, reason });
                }
            }
            match page.next_shard_iterator {
                None => return Ok(true),
                Some(_) if records.is_empty() => return Ok(false),
                next => iterator = next,
            }
        }
        Ok(true)
    }

    /// One pass over every shard, parents before children, each read up to its current end.
    pub async fn catch_up(&self) -> Result<Pass, PollError> {
        let arn = self.stream_arn().await?;
        let shards = self.shards(&arn).await?;
        let known: BTreeSet<&str> = shards.iter().filter_map(Shard::shard_id).collect();
        let mut closed: BTreeSet<String> = BTreeSet::new();
        let mut visited: BTreeSet<String> = BTreeSet::new();
        let mut pass = Pass::default();
        loop {
            let ready: Vec<&Shard> = shards
                .iter()
                .filter(|s| !visited.contains(s.shard_id().unwrap_or_default()))
                .filter(|s| s.parent_shard_id().is_none_or(|p| !known.contains(p) || closed.contains(p)))
                .collect();
            if ready.is_empty() {
                return Ok(pass);
            }
            for shard in ready {
                let id = shard.shard_id().unwrap_or_default().to_owned();
                if self.drain(&arn, shard, &mut pass).await? {
                    closed.insert(id.clone());
                }
                visited.insert(id);
            }
        }
    }

    /// Passes until `stop`, a second apart when idle; failures are logged and retried with back-off.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        while !*stop.borrow() {
            let wait = match self.catch_up().await {
                Ok(pass) => {
                    if pass.records > 0 {
                        tracing::info!(records = pass.records, applied = pass.applied, "stream pass");
                    }
                    backoff = Duration::from_secs(1);
                    Duration::from_secs(1)
                }
                Err(error) => {
                    tracing::error!(%error, retry_in = ?backoff, "stream pass failed; retrying from the stored positions");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
