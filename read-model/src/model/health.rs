//! What tells whether the projection is keeping up: changes set aside because they could not be applied (dead
//! letters), and what a stream consumer knows is waiting when a batch does not go through (backlog). Read by the
//! query side's `/projection/status` and `/health`, written by the feed (`crate::feed`).

use chrono::{DateTime, Utc};
use domain::change::Sequence;

use super::{ReadModel, Result, Stmt, corrupt, get_opt_time, get_text, get_time};
use crate::db::Tx;
use crate::rowset::RowSet;
use crate::value::{Col, Val};

/// The longest reason kept (the column's size).
const REASON_CHARS: usize = 1_000;

/// A change the projection set aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source: String,
    pub sequence: Sequence,
    /// The order it changed, when the record said (one that did not decode may not).
    pub order_id: Option<String>,
    pub reason: String,
    /// The change as JSON, or the record as delivered when it did not decode.
    pub record: String,
    /// When the change was made in the write model (moves the source's position past it).
    pub changed_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
}

/// What a consumer knew was waiting on one source when a batch did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub source: String,
    /// The newest record it was handed, and when that was written.
    pub head_sequence: Sequence,
    pub head_changed_at: DateTime<Utc>,
    /// When the oldest record not yet applied was written.
    pub pending_since: DateTime<Utc>,
    /// How many records it was handed that are not applied (at least this many wait).
    pub pending: u64,
    pub recorded_at: DateTime<Utc>,
}

/// The dead letters: how many there are, and the newest few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetters {
    pub count: u64,
    pub newest: Vec<DeadLetter>,
}

fn truncated(reason: &str) -> String {
    reason.chars().take(REASON_CHARS).collect()
}

impl ReadModel {
    /// Sets `letter` aside and moves its source's position past it (never back), in one transaction: the feed
    /// goes on after it. Setting the same change aside again keeps the first record of it.
    pub async fn set_aside(&self, letter: &DeadLetter) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.pool.begin_write().await?;
        let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Time, Col::Time]);
        rows.push(vec![
            Val::Text(letter.source.clone()),
            Val::Text(letter.sequence.as_str().to_owned()),
            letter.order_id.clone().map(Val::Text).unwrap_or(Val::Null),
            Val::Text(truncated(&letter.reason)),
            Val::Text(letter.record.clone()),
            Val::Time(letter.changed_at),
            Val::Time(letter.failed_at),
        ]);
        let head =
            "INSERT INTO projection_dead_letters (source, sequence, orderid, reason, record, changed_at, failed_at)";
        self.insert(&mut tx, rows, head, &d.skip_existing(&["source", "sequence"])).await?;
        let position = [(letter.source.as_str(), &letter.sequence, letter.changed_at)];
        self.write_position_rows(&mut tx, &position, letter.failed_at).await?;
        tx.commit().await?;
        tracing::error!(
            source = %letter.source,
            sequence = %letter.sequence.as_str(),
            order = letter.order_id.as_deref().unwrap_or("?"),
            reason = %letter.reason,
            "change set aside: the read model cannot apply it; see `orders dead-letters`"
        );
        Ok(())
    }

    /// How many changes are set aside, and the newest `limit` of them.
    pub async fn dead_letters(&self, limit: usize) -> Result<DeadLetters> {
        let d = self.dialect;
        let mut conn = self.pool.begin_snapshot().await?;
        let count = Stmt::new("SELECT COUNT(*) FROM projection_dead_letters".into()).fetch(&mut conn).await?;
        let count = count.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
        let sql = format!(
            "SELECT source, sequence, orderid, reason, record, {}, {} FROM projection_dead_letters \
             ORDER BY failed_at DESC, source, sequence LIMIT {}",
            d.time_out("changed_at"),
            d.time_out("failed_at"),
            limit.min(10_000)
        );
        let mut newest = Vec::new();
        for r in Stmt::new(sql).fetch(&mut conn).await? {
            let seq = get_text(&r, 1)?;
            newest.push(DeadLetter {
                source: get_text(&r, 0)?,
                sequence: Sequence::parse(&seq).ok_or_else(|| corrupt(format!("sequence {seq:?}")))?,
                order_id: match r.cell(2)? {
                    crate::db::Cell::Null => None,
                    _ => Some(get_text(&r, 2)?),
                },
                reason: get_text(&r, 3)?,
                record: get_text(&r, 4)?,
                changed_at: get_time(&r, 5)?,
                failed_at: get_time(&r, 6)?,
            });
        }
        conn.commit().await?;
        Ok(DeadLetters { count: u64::try_from(count).unwrap_or(0), newest })
    }

    /// Removes the dead letter of `source` at `sequence` (applied again, or given up on); whether there was one.
    pub async fn forget_dead_letter(&self, source: &str, sequence: &Sequence) -> Result<bool> {
        let d = self.dialect;
        let sql = format!(
            "DELETE FROM projection_dead_letters WHERE source = {} AND sequence = {}",
            d.param(1, Col::Text),
            d.param(2, Col::Text)
        );
        let mut tx = self.pool.begin().await?;
        let n = Stmt::new(sql).text(source).text(sequence.as_str()).run(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Records what waits on `backlog.source` (replacing what was recorded before).
    pub async fn record_backlog(&self, backlog: &Backlog) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.pool.begin().await?;
        let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Time, Col::Time, Col::Int, Col::Time]);
        rows.push(vec![
            Val::Text(backlog.source.clone()),
            Val::Text(backlog.head_sequence.as_str().to_owned()),
            Val::Time(backlog.head_changed_at),
            Val::Time(backlog.pending_since),
            Val::Int(i64::try_from(backlog.pending).unwrap_or(i64::MAX)),
            Val::Time(backlog.recorded_at),
        ]);
        let head = "INSERT INTO projection_backlog \
                    (source, head_sequence, head_changed_at, pending_since, pending, recorded_at)";
        let tail =
            d.upsert(&["source"], &["head_sequence", "head_changed_at", "pending_since", "pending", "recorded_at"]);
        self.insert(&mut tx, rows, head, &tail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every recorded backlog (a source whose position has since passed its head is no longer behind).
    pub async fn backlogs(&self) -> Result<Vec<Backlog>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT source, head_sequence, {}, {}, pending, {} FROM projection_backlog ORDER BY source",
            d.time_out("head_changed_at"),
            d.time_out("pending_since"),
            d.time_out("recorded_at")
        );
        let mut conn = self.pool.read().await?;
        Stmt::new(sql)
            .fetch(&mut conn)
            .await?
            .iter()
            .map(|r| {
                let seq = get_text(r, 1)?;
                Ok(Backlog {
                    source: get_text(r, 0)?,
                    head_sequence: Sequence::parse(&seq).ok_or_else(|| corrupt(format!("sequence {seq:?}")))?,
                    head_changed_at: get_time(r, 2)?,
                    pending_since: get_time(r, 3)?,
                    pending: u64::try_from(r.int(4)?).unwrap_or(0),
                    recorded_at: get_opt_time(r, 5)?.ok_or_else(|| corrupt("backlog recorded_at"))?,
                })
            })
            .collect()
    }

    /// Moves each of `positions` (source, sequence, time of that change) forward, never back.
    pub(super) async fn write_position_rows(
        &self,
        conn: &mut Tx,
        positions: &[(&str, &Sequence, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let d = self.dialect;
        if positions.is_empty() {
            return Ok(());
        }
        let sources: Vec<&str> = positions.iter().map(|(s, _, _)| *s).collect();
        let sql = format!(
            "SELECT source, sequence FROM projection_positions WHERE {}{}",
            d.in_list("source", sources.len()),
            d.for_update()
        );
        let mut stored = std::collections::BTreeMap::new();
        for r in self.with_ids(sql, sources.iter().copied()).fetch(conn).await? {
            let seq = get_text(&r, 1)?;
            stored.insert(get_text(&r, 0)?, Sequence::parse(&seq).ok_or_else(|| corrupt(format!("sequence {seq:?}")))?);
        }
        let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Time, Col::Time]);
        for (source, sequence, changed_at) in positions {
            if stored.get(*source).is_none_or(|s| *sequence > s) {
                rows.push(vec![
                    Val::Text((*source).to_owned()),
                    Val::Text(sequence.as_str().to_owned()),
                    Val::Time(*changed_at),
                    Val::Time(now),
                ]);
            }
        }
        let tail = d.upsert(&["source"], &["sequence", "last_changed_at", "applied_at"]);
        self.insert(
            conn,
            rows,
            "INSERT INTO projection_positions (source, sequence, last_changed_at, applied_at)",
            &tail,
        )
        .await
    }
}
