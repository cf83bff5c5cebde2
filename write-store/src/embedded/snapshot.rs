//! The whole store read as one consistent snapshot: at once (`snapshot`), or streamed in chunks from a thread of its
//! own (`snapshot_stream`, for a rebuild), whose memory does not grow with the number of orders.

use super::*;

/// What a snapshot reflects: the change-log position it was read at and that change's time (none in a store never
/// written), and how many orders it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHead {
    pub position: u64,
    pub changed_at: Option<DateTime<Utc>>,
    pub orders: u64,
}

/// A snapshot being read: its head, then its orders in chunks, all from one read transaction.
pub struct SnapshotStream {
    pub head: SnapshotHead,
    chunks: mpsc::Receiver<Result<Vec<Order>, StoreError>>,
}

impl SnapshotStream {
    /// The next chunk of orders; `None` once all have been read.
    pub async fn next(&mut self) -> Option<Result<Vec<Order>, StoreError>> {
        self.chunks.recv().await
    }
}

/// The head of the snapshot `conn`'s open transaction reads.
fn head(conn: &Connection) -> Result<SnapshotHead, StoreError> {
    let last: Option<(i64, String)> = conn
        .query_row("SELECT position, changed_at FROM order_changes ORDER BY position DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(classify)?;
    let orders: i64 = conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).map_err(classify)?;
    let (position, changed_at) = match last {
        Some((position, at)) => (
            u64::try_from(position).unwrap_or(0),
            Some(domain::order::parse_time(&at).ok_or_else(|| StoreError::Internal(format!("bad change time {at}")))?),
        ),
        None => (0, None),
    };
    Ok(SnapshotHead { position, changed_at, orders: u64::try_from(orders).unwrap_or(0) })
}

/// Sends the orders of `conn`'s snapshot in chunks of `chunk` until all are sent or nobody listens.
fn send_orders(
    conn: &Connection,
    chunk: usize,
    out: &mpsc::Sender<Result<Vec<Order>, StoreError>>,
) -> Result<(), StoreError> {
    let mut st = conn.prepare("SELECT image FROM orders ORDER BY order_id").map_err(classify)?;
    let mut rows = st.query([]).map_err(classify)?;
    let mut orders = Vec::with_capacity(chunk);
    while let Some(row) = rows.next().map_err(classify)? {
        orders.push(from_json(row.get_ref(0).map_err(classify)?.as_str().map_err(|e| classify(e.into()))?)?);
        if orders.len() == chunk
            && out.blocking_send(Ok(std::mem::replace(&mut orders, Vec::with_capacity(chunk)))).is_err()
        {
            return Ok(());
        }
    }
    if !orders.is_empty() {
        let _ = out.blocking_send(Ok(orders));
    }
    Ok(())
}

impl EmbeddedStore {
    /// Every order as stored, with the change-log position they reflect, read as one consistent snapshot.
    pub async fn snapshot(&self) -> Result<(Vec<Order>, u64), StoreError> {
        let mut stream = self.snapshot_stream(10_000).await?;
        let mut orders = Vec::new();
        while let Some(chunk) = stream.next().await {
            orders.extend(chunk?);
        }
        Ok((orders, stream.head.position))
    }

    /// The orders of one consistent snapshot, `chunk` at a time, read on a thread of its own with its own
    /// connection (the writer goes on meanwhile; WAL keeps the snapshot). At most a few chunks wait in memory.
    pub async fn snapshot_stream(&self, chunk: usize) -> Result<SnapshotStream, StoreError> {
        let chunk = chunk.max(1);
        let (head_tx, head_rx) = oneshot::channel();
        let (out, chunks) = mpsc::channel(2);
        let (path, options) = (self.readers.path.clone(), self.readers.options.clone());
        std::thread::Builder::new()
            .name("embedded-snapshot".into())
            .spawn(move || {
                let opened = connect(&path, &options).and_then(|conn| {
                    conn.pragma_update(None, "query_only", true).map_err(classify)?;
                    conn.execute_batch("BEGIN").map_err(classify)?;
                    Ok(conn)
                });
                let conn = match opened.and_then(|conn| head(&conn).map(|h| (conn, h))) {
                    Ok((conn, h)) => {
                        let _ = head_tx.send(Ok(h));
                        conn
                    }
                    Err(e) => {
                        let _ = head_tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = send_orders(&conn, chunk, &out) {
                    let _ = out.blocking_send(Err(e));
                }
                let _ = conn.execute_batch("COMMIT");
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the snapshot reader: {e}")))?;
        let head = head_rx.await.map_err(|_| StoreError::Internal("the snapshot reader stopped".into()))??;
        Ok(SnapshotStream { head, chunks })
    }
}
