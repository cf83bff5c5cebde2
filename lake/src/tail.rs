//! Feeding the lake: for the Lambda on the stream, every decodable record of a batch in one write (a record that
//! does not decode is set aside: logged with its reason and record, as the read model's dead letters are, so that
//! no record can stall the shard); and a tail of the embedded change log that writes every `flush_every` (or at
//! once when `max_batch` changes are waiting), never one file per record.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::OrderChange;
use projector::feed::Decoded;
use projector::stream::Consumed;
use tokio::sync::{Notify, watch};

use crate::Lake;

/// Writes the decodable records of `records` as one batch; each undecodable one is logged and set aside. A
/// failed write takes nothing (the first record is the failure; a retry rewrites the same files).
pub async fn consume(lake: &Lake, records: Vec<Decoded>) -> Consumed {
    let mut changes = Vec::with_capacity(records.len());
    for record in records {
        match record {
            Ok(change) => changes.push(change),
            Err(undecodable) => tracing::error!(
                source = undecodable.position.as_ref().map(|p| p.source.as_str()).unwrap_or("?"),
                sequence = undecodable.position.as_ref().map(|p| p.sequence.as_str()).unwrap_or("?"),
                reason = %undecodable.reason,
                record = %undecodable.record,
                "change set aside: the lake cannot write a record that does not decode"
            ),
        }
    }
    match lake.write(&changes).await {
        Ok(written) => {
            tracing::info!(files = written.files, rows = written.rows, changes = changes.len(), "lake batch written");
            Consumed { applied: changes.len(), failure: None }
        }
        Err(e) => Consumed { applied: 0, failure: Some((0, e.to_string())) },
    }
}

/// How the embedded tail batches.
#[derive(Debug, Clone, Copy)]
pub struct TailSettings {
    /// Write what has arrived at least this often (`LAKE_FLUSH_MS`, default 2 s).
    pub flush_every: Duration,
    /// Write at once when this many changes are waiting.
    pub max_batch: u32,
}

impl Default for TailSettings {
    fn default() -> TailSettings {
        TailSettings { flush_every: Duration::from_secs(2), max_batch: 10_000 }
    }
}

/// Tails the embedded change log (`fetch(after, limit)`) into the lake until `stop` turns true, then writes what
/// is left. Resumes after the position kept in the lake; a failing write is retried with back-off, never skipped.
pub async fn tail_embedded<F, Fut>(
    lake: Lake,
    source: &'static str,
    fetch: F,
    committed: Arc<Notify>,
    settings: TailSettings,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<OrderChange>, String>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut after: Option<u64> = None;
    loop {
        let stopping = *stop.borrow();
        let woken = committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let step: Result<usize, String> = async {
            let from = match after {
                Some(p) => p,
                None => lake.position(source).await.map_err(|e| e.to_string())?.unwrap_or(0),
            };
            after = Some(from);
            let batch = fetch(from, settings.max_batch).await?;
            let Some(last) = batch.last() else { return Ok(0) };
            let next = last.position().sequence.as_str().parse::<u64>().map_err(|e| e.to_string())?;
            let written = lake.write(&batch).await.map_err(|e| e.to_string())?;
            lake.set_position(source, next).await.map_err(|e| e.to_string())?;
            tracing::debug!(from, to = next, files = written.files, rows = written.rows, "lake written");
            after = Some(next);
            Ok(batch.len())
        }
        .await;
        match step {
            Ok(n) if n == settings.max_batch as usize => backoff = Duration::from_millis(100),
            Ok(_) if stopping => return,
            Ok(_) => {
                backoff = Duration::from_millis(100);
                // Wait for a first commit, then let the batch fill for the rest of the interval.
                tokio::select! {
                    () = &mut woken => {
                        tokio::select! {
                            () = tokio::time::sleep(settings.flush_every) => {}
                            _ = stop.changed() => {}
                        }
                    }
                    () = tokio::time::sleep(settings.flush_every) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) if stopping => {
                tracing::error!(%error, position = ?after, "lake write failed while stopping; the changes stay in the log for the next start");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, position = ?after, retry_in = ?backoff, "lake write failed; retrying the same changes");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ChangeKind;
    use domain::testkit::{change, order};

    #[tokio::test]
    async fn given_an_undecodable_record_when_consumed_then_it_is_set_aside_and_the_others_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let a = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":2}]}"#, "2023-01-02T00:00:00Z");
        let b = order(r#"{"orderId":"b","items":[{"itemid":"x","quantity":2}]}"#, "2023-01-02T00:00:00Z");
        let records = vec![
            Ok(change(ChangeKind::Insert, None, Some(&a), "s", 1)),
            Err(projector::feed::Undecodable::reason("bad image")),
            Ok(change(ChangeKind::Insert, None, Some(&b), "s", 3)),
        ];

        let consumed = consume(&lake, records).await;

        assert_eq!((consumed.applied, consumed.failure), (2, None));
        let rows: usize = std::fs::read_dir(dir.path().join(crate::TABLE))
            .unwrap()
            .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
            .map(|file| {
                let file = std::fs::File::open(file.unwrap().path()).unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
                reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum::<usize>()
            })
            .sum();
        assert_eq!(rows, 2, "a line of each decodable order");
    }

    #[tokio::test]
    async fn given_an_unwritable_lake_when_consumed_then_the_first_record_is_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        // A file where the table's directory should be: every write fails.
        std::fs::write(dir.path().join(crate::TABLE), b"not a directory").unwrap();
        let a = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":2}]}"#, "2023-01-02T00:00:00Z");

        let consumed = consume(&lake, vec![Ok(change(ChangeKind::Insert, None, Some(&a), "s", 1))]).await;

        assert_eq!(consumed.applied, 0);
        assert_eq!(consumed.failure.map(|(i, _)| i), Some(0));
    }
}
