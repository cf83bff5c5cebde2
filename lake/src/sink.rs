//! The lake as a sink of the change feed: the decodable records of a batch in one write (one file per UTC order
//! date), then the source's position. A record that does not decode is set aside: logged with its reason and record,
//! as the read model's dead letters are, so that no record can stall the feed.

use async_trait::async_trait;
use change_feed::{Consumed, Decoded, Sink};
use domain::change::Sequence;

use crate::Lake;

/// The lake as the feed's sink. With `positions`, it keeps the position of each source (the embedded change log's,
/// whose sequences are counters) beside the table, to resume after; on Lambda the stream keeps them.
#[derive(Clone)]
pub struct LakeSink {
    pub lake: Lake,
    pub positions: bool,
}

#[async_trait]
impl Sink for LakeSink {
    fn name(&self) -> &'static str {
        "lake"
    }

    async fn position(&self, source: &str) -> Result<Option<Sequence>, String> {
        Ok(self.lake.position(source).await.map_err(|e| e.to_string())?.map(Sequence::from))
    }

    async fn consume(&self, records: Vec<Decoded>) -> Consumed {
        let last: Option<(String, String)> = records
            .iter()
            .rev()
            .find_map(|r| r.as_ref().ok())
            .map(|c| (c.position().source.clone(), c.position().sequence.as_str().to_owned()));
        let consumed = consume(&self.lake, records).await;
        if let (true, None, Some((source, sequence))) = (self.positions, &consumed.failure, last) {
            let kept = match sequence.parse::<u64>() {
                Ok(n) => self.lake.set_position(&source, n).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("position {sequence:?} of {source} is not a counter: {e}")),
            };
            if let Err(reason) = kept {
                return Consumed { applied: 0, set_aside: 0, failure: Some((0, reason)) };
            }
        }
        consumed
    }
}

/// Writes the decodable records of `records` as one batch; each undecodable one is logged and set aside. A failed
/// write takes nothing (the first record is the failure; a retry rewrites the same files).
pub async fn consume(lake: &Lake, records: Vec<Decoded>) -> Consumed {
    let mut changes = Vec::with_capacity(records.len());
    let mut set_aside = 0;
    for record in records {
        match record {
            Ok(change) => changes.push(change),
            Err(undecodable) => {
                set_aside += 1;
                tracing::error!(
                source = undecodable.position.as_ref().map(|p| p.source.as_str()).unwrap_or("?"),
                sequence = undecodable.position.as_ref().map(|p| p.sequence.as_str()).unwrap_or("?"),
                reason = %undecodable.reason,
                record = %undecodable.record,
                    "change set aside: the lake cannot write a record that does not decode"
                );
            }
        }
    }
    match lake.write(&changes).await {
        Ok(written) => {
            tracing::info!(files = written.files, rows = written.rows, changes = changes.len(), "lake batch written");
            Consumed { applied: changes.len(), set_aside, failure: None }
        }
        Err(e) => Consumed { applied: 0, set_aside: 0, failure: Some((0, e.to_string())) },
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
            Err(change_feed::Undecodable::reason("bad image")),
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
