//! DynamoDB Streams records, as Lambda delivers them, into `OrderChange`s, and the Lambda batch discipline of any
//! stream consumer (`handle`): each record is decoded on its own, the sink takes them in order, and the first that
//! did not take effect is named in `batchItemFailures` by its sequence number, so that Lambda retries from there.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use domain::change::Sequence;
use domain::{ChangeKind, Order, OrderChange, Position};
use serde_json::Value;
use write_store::codec::{self as image, Attr, lambda_event};

use crate::{Consumed, Decoded, Sink, Undecodable};

/// The feed name used when a record does not say which stream it came from.
pub const DEFAULT_SOURCE: &str = "dynamodb";

/// The parts of a stream record, whichever SDK delivered it, in the domain's attribute type.
pub struct RawRecord<'a> {
    pub event_name: &'a str,
    pub keys: image::Item,
    pub old_image: image::Item,
    pub new_image: image::Item,
    pub sequence_number: Option<&'a str>,
    pub approximate_creation: DateTime<Utc>,
    pub source: String,
}

fn order(image: &image::Item, which: &str) -> Result<Option<Order>, String> {
    if image.is_empty() {
        return Ok(None);
    }
    image::from_item(image).map(|(o, _)| Some(o)).map_err(|e| format!("{which}: {e}"))
}

/// A stream record as a change of an order: kind, images (in `domain::image`'s shape), position, and a key that
/// names the same order as the images.
pub fn decode_parts(r: RawRecord<'_>) -> Result<OrderChange, String> {
    let kind = ChangeKind::parse(r.event_name).ok_or_else(|| format!("unknown eventName {:?}", r.event_name))?;
    let before = order(&r.old_image, "OldImage")?;
    let after = order(&r.new_image, "NewImage")?;
    let sequence = r
        .sequence_number
        .and_then(Sequence::parse)
        .ok_or_else(|| format!("SequenceNumber missing or not a number: {:?}", r.sequence_number))?;
    let decoded =
        OrderChange::new(kind, before, after, Position { source: r.source, sequence }, r.approximate_creation)
            .map_err(|e| e.to_string())?;
    match r.keys.get(image::KEY) {
        Some(Attr::S(key)) if key == decoded.order_id().as_str() => Ok(decoded),
        other => Err(format!("Keys.orderId {other:?} does not match the image's order {}", decoded.order_id())),
    }
}

/// One Lambda stream record as a change of an order.
pub fn decode(record: &EventRecord) -> Result<OrderChange, String> {
    let change = &record.change;
    decode_parts(RawRecord {
        event_name: &record.event_name,
        keys: lambda_event::item(change.keys.inner()),
        old_image: lambda_event::item(change.old_image.inner()),
        new_image: lambda_event::item(change.new_image.inner()),
        sequence_number: change.sequence_number.as_deref(),
        approximate_creation: change.approximate_creation_date_time,
        source: record.event_source_arn.clone().unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
    })
}

/// `eventID` and `dynamodb.SequenceNumber` of a raw record, for reporting even when the rest does not parse.
fn identity(raw: &Value) -> (String, Option<String>) {
    let event_id = raw.get("eventID").and_then(Value::as_str).unwrap_or("<no eventID>").to_owned();
    let sequence = raw.get("dynamodb").and_then(|d| d.get("SequenceNumber")).and_then(Value::as_str).map(str::to_owned);
    (event_id, sequence)
}

/// One raw record of an event, decoded on its own; one that does not decode keeps what can be read of where it
/// sits (its stream and sequence number, when it was written) and itself as delivered.
pub fn decode_raw(raw: &Value) -> Decoded {
    let undecodable = |reason: String| {
        let source = raw.get("eventSourceARN").and_then(Value::as_str).unwrap_or(DEFAULT_SOURCE).to_owned();
        let sequence = identity(raw).1.as_deref().and_then(Sequence::parse);
        let written_at = raw
            .get("dynamodb")
            .and_then(|d| d.get("ApproximateCreationDateTime"))
            .and_then(Value::as_f64)
            .and_then(|secs| DateTime::from_timestamp_millis((secs * 1_000.0) as i64));
        Undecodable {
            reason,
            position: sequence.map(|sequence| Position { source, sequence }),
            written_at,
            record: raw.to_string(),
        }
    };
    let record: EventRecord =
        serde_json::from_value(raw.clone()).map_err(|e| undecodable(format!("not a stream record: {e}")))?;
    decode(&record).map_err(undecodable)
}

/// The Lambda handler of a stream consumer: `sink` takes the event's records in order; the first that did not take
/// effect is named in `batchItemFailures` (ReportBatchItemFailures), so Lambda retries from there. An error (the
/// whole batch is retried) only when that record has no sequence number to name.
pub async fn handle<S: Sink + ?Sized>(sink: &S, event: &Value) -> Result<DynamoDbEventResponse, String> {
    handle_with(event, sink.name(), |records| async move {
        let held = records.clone();
        let consumed = sink.consume(records).await;
        if let Some((index, _)) = &consumed.failure {
            sink.record_backlog(&held, *index).await;
        }
        consumed
    })
    .await
}

/// Decode every record, hand them to `consume` in order, report the first failure by its sequence number.
async fn handle_with<F, Fut>(event: &Value, what: &str, consume: F) -> Result<DynamoDbEventResponse, String>
where
    F: FnOnce(Vec<Decoded>) -> Fut,
    Fut: std::future::Future<Output = Consumed>,
{
    let records = event.get("Records").and_then(Value::as_array).ok_or("not a DynamoDB Streams event: no Records")?;
    let identities: Vec<(String, Option<String>)> = records.iter().map(identity).collect();
    let outcome = consume(records.iter().map(decode_raw).collect()).await;
    let mut response = DynamoDbEventResponse::default();
    tracing::info!(
        received = records.len(),
        applied = outcome.applied,
        set_aside = outcome.set_aside,
        failed = outcome.failure.is_some(),
        "{what} batch"
    );
    if let Some((index, reason)) = outcome.failure {
        let (event_id, sequence) = &identities[index];
        tracing::error!(%event_id, sequence = ?sequence, index, %reason, "record not applied; reported for retry");
        let Some(sequence) = sequence.clone() else {
            return Err(format!("record {event_id} failed ({reason}) and has no SequenceNumber to report"));
        };
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}
