//! Applying a batch: load what is projected for the batch's orders, fold the changes through
//! `domain::projection`, and write orders, lines, tombstones and positions in the same transaction as the totals.

use super::*;

/// What `load` found: the projected state of each order, and which of its rows exist.
pub(super) struct Loaded {
    pub(super) states: BTreeMap<OrderId, Projected>,
    pub(super) stored: Stored,
}

/// The orders that have a row in `orders` (and so lines in `orderitems`), and those with a tombstone. Only
/// these have rows to delete when their state changes.
pub(super) struct Stored {
    pub(super) rows: BTreeSet<OrderId>,
    pub(super) tombstones: BTreeSet<OrderId>,
}

impl ReadModel {
    /// Applies `changes` (in feed order) in one transaction: all of them take effect, or none.
    pub async fn apply(&self, changes: &[OrderChange]) -> Result<Applied> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let now = domain::order::timestamp(Utc::now());
        let mut tx = self.pool.begin_write().await?;
        let ids: Vec<OrderId> =
            changes.iter().map(|c| c.order_id().clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let Loaded { mut states, stored } = self.load(&mut tx, Some(&ids)).await?;
        let mut touched = BTreeSet::new();
        let mut deltas = Deltas::default();
        let mut applied = 0;
        for change in changes {
            let current = states.get(change.order_id());
            if let Some(next) = next_state(current, change) {
                deltas.record(current, Some(&next));
                touched.insert(change.order_id().clone());
                states.insert(change.order_id().clone(), next);
                applied += 1;
            }
        }
        deltas.compact();
        if !touched.is_empty() {
            self.write_orders(&mut tx, &states, &stored, &touched, now).await?;
            self.write_item_totals(&mut tx, &deltas).await?;
            self.write_month_totals(&mut tx, &deltas).await?;
            Stmt::new(EPOCH_BUMP.into()).run(&mut tx).await?;
        }
        self.write_positions(&mut tx, changes, now).await?;
        tx.commit().await?;
        Ok(Applied { received: changes.len(), applied })
    }
    /// What is projected for `ids` (all orders when `None`), and which rows hold it.
    pub(super) async fn load(&self, conn: &mut Tx, ids: Option<&[OrderId]>) -> Result<Loaded> {
        let d = self.dialect;
        // Order rows without their lines yet.
        struct Header {
            status: OrderStatus,
            order_date: DateTime<Utc>,
            version: Version,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }
        let mut headers: BTreeMap<OrderId, Header> = BTreeMap::new();
        let mut lines: BTreeMap<OrderId, Vec<OrderLine>> = BTreeMap::new();
        let mut tombstones: BTreeMap<OrderId, Revision> = BTreeMap::new();
        // Each statement reads the rows of `ids` (or all of them), a chunk of ids at a time.
        let chunked = |ids: Option<&[&OrderId]>, sql: &dyn Fn(&str) -> String| -> Vec<Stmt> {
            match ids {
                Some(ids) => id_chunks(self.dialect, self.mysql_statement_limit, ids)
                    .into_iter()
                    .map(|chunk| {
                        let filter = format!(" WHERE {}", self.dialect.in_list("orderid", chunk.len()));
                        self.with_ids(sql(&filter), chunk.iter().map(|id| id.as_str()))
                    })
                    .collect(),
                None => vec![Stmt::new(sql(""))],
            }
        };
        let all_ids: Option<Vec<&OrderId>> = ids.map(|ids| ids.iter().collect());
        let header_sql = |filter: &str| {
            format!(
                "SELECT orderid, orderstatus, {}, version, {}, {} FROM orders{filter}",
                d.time_out("orderdate"),
                d.time_out("created_at"),
                d.time_out("updated_at"),
            )
        };
        for stmt in chunked(all_ids.as_deref(), &header_sql) {
            for r in stmt.fetch(conn).await? {
                let id = order_id(&get_text(&r, 0)?)?;
                let status = OrderStatus::parse(&get_text(&r, 1)?).ok_or_else(|| corrupt("order status"))?;
                let header = Header {
                    status,
                    order_date: get_time(&r, 2)?,
                    version: version(r.int(3)?)?,
                    created_at: get_time(&r, 4)?,
                    updated_at: get_time(&r, 5)?,
                };
                headers.insert(id, header);
            }
        }
        let tombstone_sql = |filter: &str| {
            format!("SELECT orderid, {}, version FROM order_tombstones{filter}", d.time_out("created_at"))
        };
        for stmt in chunked(all_ids.as_deref(), &tombstone_sql) {
            for r in stmt.fetch(conn).await? {
                tombstones.insert(
                    order_id(&get_text(&r, 0)?)?,
                    Revision { created_at: get_time(&r, 1)?, version: version(r.int(2)?)? },
                );
            }
        }
        // Lines only of the orders that have a row: an order's lines are written and removed with its row.
        let with_row: Option<Vec<&OrderId>> = ids.map(|_| headers.keys().collect());
        let line_sql = |filter: &str| {
            format!(
                "SELECT orderid, itemid, quantity, {} FROM orderitems{filter} ORDER BY orderid, itemid",
                d.decimal_out("unitprice")
            )
        };
        if with_row.as_ref().is_none_or(|ids| !ids.is_empty()) {
            for stmt in chunked(with_row.as_deref(), &line_sql) {
                for r in stmt.fetch(conn).await? {
                    let qty: i64 = r.int(2)?;
                    let price = get_opt_decimal(&r, 3)?
                        .map(|d| UnitPrice::new(d).map_err(|_| corrupt(format!("unit price {d}"))))
                        .transpose()?;
                    lines.entry(order_id(&get_text(&r, 0)?)?).or_default().push(OrderLine {
                        itemid: item_id(&get_text(&r, 1)?)?,
                        quantity: u32::try_from(qty).ok().and_then(Quantity::new).ok_or_else(|| corrupt("quantity"))?,
                        unit_price: price,
                    });
                }
            }
        }
        let stored =
            Stored { rows: headers.keys().cloned().collect(), tombstones: tombstones.keys().cloned().collect() };
        let mut states = BTreeMap::new();
        for (id, h) in headers {
            let order_lines = lines.remove(&id).ok_or_else(|| corrupt(format!("order {id} has no lines")))?;
            let items = Lines::new(order_lines).map_err(|e| corrupt(format!("order {id}: {e}")))?;
            let order = Order {
                order_id: id.clone(),
                items,
                status: h.status,
                order_date: h.order_date,
                version: h.version,
                created_at: h.created_at,
                updated_at: h.updated_at,
            };
            states.insert(id, Projected::Live(order));
        }
        for (id, revision) in tombstones {
            let removed = Projected::Removed { order_id: id.clone(), revision };
            // Both only if a write was interrupted mid-way in an older release; the later one is the truth.
            if states.get(&id).is_none_or(|live| live.rank() < removed.rank()) {
                states.insert(id, removed);
            }
        }
        Ok(Loaded { states, stored })
    }
    pub(super) async fn write_orders(
        &self,
        conn: &mut Tx,
        states: &BTreeMap<OrderId, Projected>,
        stored: &Stored,
        touched: &BTreeSet<OrderId>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let d = self.dialect;
        let mut live: Vec<&Order> = Vec::new();
        let mut removed: Vec<(&OrderId, Revision)> = Vec::new();
        for id in touched {
            match states.get(id) {
                Some(Projected::Live(o)) => live.push(o),
                Some(Projected::Removed { revision, .. }) => removed.push((id, *revision)),
                None => return Err(corrupt(format!("touched order {id} has no state"))),
            }
        }
        // Lines are replaced wholesale: an order's lines are whatever its newest state says. Only orders that
        // had a row have lines to delete (new orders, the bulk of a stream, have none).
        let had_row: Vec<&OrderId> = touched.iter().filter(|id| stored.rows.contains(*id)).collect();
        self.delete_in(conn, "orderitems", &had_row).await?;
        let time = |at: &DateTime<Utc>| Val::Time(*at);
        // Orders with a row are overwritten; the others are plain inserts (an upsert's conflict check cost
        // PostgreSQL ~40 % more per row), which fail if a row appeared meanwhile, and the batch is retried.
        let (existing, new): (Vec<&Order>, Vec<&Order>) = live.iter().partition(|o| stored.rows.contains(&o.order_id));
        let upsert = d.upsert(
            &["orderid"],
            &["orderstatus", "orderdate", "sale_month", "version", "created_at", "updated_at", "projected_at"],
        );
        for (orders, tail) in [(new, ""), (existing, upsert.as_str())] {
            for chunk in orders.chunks(CHUNK) {
                let mut rows = RowSet::new(&[
                    Col::Text,
                    Col::Text,
                    Col::Time,
                    Col::Text,
                    Col::Int,
                    Col::Time,
                    Col::Time,
                    Col::Time,
                ]);
                for o in chunk {
                    rows.push(vec![
                        Val::Text(o.order_id.to_string()),
                        Val::Text(o.status.as_str().to_owned()),
                        time(&o.order_date),
                        Val::Text(SaleMonth::of(o.order_date).as_str().to_owned()),
                        Val::Int(int(o.version.get())),
                        time(&o.created_at),
                        time(&o.updated_at),
                        Val::Time(now),
                    ]);
                }
                let head = "INSERT INTO orders (orderid, orderstatus, orderdate, sale_month, version, created_at, updated_at, projected_at)";
                self.insert(conn, rows, head, tail).await?;
            }
        }
        let all_lines: Vec<(&OrderId, &OrderLine)> =
            live.iter().flat_map(|o| o.items.as_slice().iter().map(move |l| (&o.order_id, l))).collect();
        for chunk in all_lines.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Int, Col::Decimal]);
            for (id, l) in chunk {
                rows.push(vec![
                    Val::Text(id.to_string()),
                    Val::Text(l.itemid.to_string()),
                    Val::Int(i64::from(l.quantity.get())),
                    l.unit_price.map(|p| Val::Decimal(p.get())).unwrap_or(Val::Null),
                ]);
            }
            self.insert(conn, rows, "INSERT INTO orderitems (orderid, itemid, quantity, unitprice)", "").await?;
        }
        let revived: Vec<&OrderId> =
            live.iter().map(|o| &o.order_id).filter(|id| stored.tombstones.contains(*id)).collect();
        self.delete_in(conn, "order_tombstones", &revived).await?;
        let removed_rows: Vec<&OrderId> =
            removed.iter().map(|(id, _)| *id).filter(|id| stored.rows.contains(*id)).collect();
        self.delete_in(conn, "orders", &removed_rows).await?;
        for chunk in removed.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Time, Col::Int, Col::Time]);
            for (id, rev) in chunk {
                rows.push(vec![
                    Val::Text(id.to_string()),
                    time(&rev.created_at),
                    Val::Int(int(rev.version.get())),
                    Val::Time(now),
                ]);
            }
            let tail = d.upsert(&["orderid"], &["created_at", "version", "removed_at"]);
            self.insert(conn, rows, "INSERT INTO order_tombstones (orderid, created_at, version, removed_at)", &tail)
                .await?;
        }
        Ok(())
    }
    /// Moves each source's position forward to the newest change of the batch (never backwards on a replay).
    pub(super) async fn write_positions(
        &self,
        conn: &mut Tx,
        changes: &[OrderChange],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut newest: BTreeMap<&str, &OrderChange> = BTreeMap::new();
        for c in changes {
            let e = newest.entry(c.position().source.as_str()).or_insert(c);
            if c.position().sequence > e.position().sequence {
                *e = c;
            }
        }
        let rows: Vec<(&str, &Sequence, DateTime<Utc>)> =
            newest.into_iter().map(|(source, c)| (source, &c.position().sequence, c.changed_at())).collect();
        self.write_position_rows(conn, &rows, now).await
    }
}
