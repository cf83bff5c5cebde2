//! The report aggregates, kept by deltas: `item_sales` (added to, or recomputed where a last order date may have
//! moved back) and `item_monthly_sales`.

use super::*;

const ITEM_COLS: [Col; 6] = [Col::Text, Col::Int, Col::Decimal, Col::Int, Col::Int, Col::Time];
const ITEM_HEAD: &str =
    "INSERT INTO item_sales (itemid, totalordered, totalrevenue, pricedordered, ordercount, lastorderdate)";

/// The `item_sales` columns that [`item_totals_of`] decodes, in its order.
pub(super) fn item_totals_columns(d: Dialect) -> String {
    format!(
        "itemid, totalordered, {}, pricedordered, ordercount, {}",
        d.decimal_out("totalrevenue"),
        d.time_out("lastorderdate")
    )
}

/// One row selected with [`item_totals_columns`].
pub(super) fn item_totals_of(r: &DbRow) -> Result<(ItemId, ItemTotals)> {
    let totals = ItemTotals {
        quantity: r.int(1)?,
        revenue: get_decimal(r, 2)?.normalize(),
        priced_quantity: r.int(3)?,
        orders: r.int(4)?,
        last_order_date: get_opt_time(r, 5)?,
    };
    Ok((item_id(&get_text(r, 0)?)?, totals))
}

impl ReadModel {
    /// The per-item totals. Where the backend has exact decimals, each delta is added by one atomic upsert;
    /// otherwise (SQLite, a single writer) rows are read, recomputed here with exact decimals and written back.
    /// Either way, an item whose latest contribution went away gets its last order date recomputed from the lines,
    /// and items no order counts any more are deleted.
    pub(super) async fn write_item_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        if deltas.items.is_empty() {
            return Ok(());
        }
        match self.dialect.add_item_totals() {
            Some(tail) => self.add_item_totals(conn, deltas, tail).await,
            None => self.rewrite_item_totals(conn, deltas).await,
        }
    }
    pub(super) async fn add_item_totals(&self, conn: &mut Tx, deltas: &Deltas, tail: &str) -> Result<()> {
        let recheck: Vec<&ItemId> = deltas.items.iter().filter(|(_, d)| d.recheck_last_date).map(|(i, _)| i).collect();
        let entries: Vec<(&ItemId, &domain::projection::ItemDelta)> = deltas.items.iter().collect();
        for chunk in entries.chunks(CHUNK) {
            let mut rows = RowSet::new(&ITEM_COLS);
            for (item, delta) in chunk {
                rows.push(vec![
                    Val::Text(item.to_string()),
                    Val::Int(delta.quantity),
                    Val::Decimal(delta.revenue.normalize()),
                    Val::Int(delta.priced_quantity),
                    Val::Int(delta.orders),
                    delta.latest_added.map(Val::Time).unwrap_or(Val::Null),
                ]);
            }
            self.insert(conn, rows, ITEM_HEAD, tail).await?;
        }
        if self.dialect == Dialect::MySql {
            // Not InnoDB's UPDATE with a subquery, as PostgreSQL does below: InnoDB reads the lines for it with
            // shared locks while this transaction holds the totals' rows, and a concurrent consumer holding new
            // lines of the same items and waiting for those rows made that a deadlock (the two-consumer test: one
            // small batch in six). A plain read at READ COMMITTED (`Pool::begin_write`) sees every transaction
            // that committed before it; one that has not yet committed lines of these items cannot commit before
            // this one (it waits for the totals' rows held here) and then folds its own dates in.
            let dates = self.latest_order_dates(conn, &recheck).await?;
            // The rows exist (the increments above made them): only their last order date is replaced.
            for chunk in recheck.chunks(CHUNK) {
                let mut rows = RowSet::new(&ITEM_COLS);
                for item in chunk {
                    rows.push(vec![
                        Val::Text(item.to_string()),
                        Val::Int(0),
                        Val::Decimal(Decimal::ZERO),
                        Val::Int(0),
                        Val::Int(0),
                        dates.get(*item).copied().map(Val::Time).unwrap_or(Val::Null),
                    ]);
                }
                self.insert(conn, rows, ITEM_HEAD, &self.dialect.upsert(&["itemid"], &["lastorderdate"])).await?;
            }
        } else {
            // PostgreSQL's subquery reads the statement's snapshot, without locks: the same reasoning holds.
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &recheck) {
                let sql = format!(
                    "UPDATE item_sales SET lastorderdate = (SELECT MAX(o.orderdate) FROM orderitems i \
                     JOIN orders o ON o.orderid = i.orderid WHERE i.itemid = item_sales.itemid \
                     AND o.orderstatus = 'created') WHERE {}",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        // Only where a contribution went away can a total have shrunk, to zero or (corrupt) below.
        if !recheck.is_empty() {
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &recheck) {
                let check = format!(
                    "SELECT itemid, totalordered, ordercount, pricedordered FROM item_sales WHERE {} \
                     AND (ordercount < 0 OR totalordered < 0 OR (ordercount = 0 AND totalordered <> 0) \
                     OR (ordercount <> 0 AND totalordered = 0) OR pricedordered < 0 OR pricedordered > totalordered)",
                    self.dialect.in_list("itemid", chunk.len())
                );
                if let Some(r) = self.with_ids(check, chunk.iter().map(|i| i.as_str())).fetch(conn).await?.first() {
                    let (q, n, p): (i64, i64, i64) = (r.int(1)?, r.int(2)?, r.int(3)?);
                    let item = get_text(r, 0)?;
                    return Err(corrupt(format!("item {item} would reach quantity {q} ({p} priced) over {n} orders")));
                }
                let sql = format!(
                    "DELETE FROM item_sales WHERE {} AND ordercount = 0",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        Ok(())
    }
    /// The latest order date among the counted orders of each of `items`, as now written (an item nothing counts
    /// for any more has none).
    pub(super) async fn latest_order_dates(
        &self,
        conn: &mut Tx,
        items: &[&ItemId],
    ) -> Result<BTreeMap<ItemId, DateTime<Utc>>> {
        let d = self.dialect;
        let mut dates = BTreeMap::new();
        for chunk in id_chunks(self.dialect, self.mysql_statement_limit, items) {
            let sql = format!(
                "SELECT i.itemid, {} FROM orderitems i JOIN orders o ON o.orderid = i.orderid \
                 WHERE {} AND o.orderstatus = 'created' GROUP BY i.itemid",
                d.time_out("MAX(o.orderdate)"),
                d.in_list("i.itemid", chunk.len()),
            );
            for r in self.with_ids(sql, chunk.iter().map(|i| i.as_str())).fetch(conn).await? {
                dates.insert(item_id(&get_text(&r, 0)?)?, get_time(&r, 1)?);
            }
        }
        Ok(dates)
    }
    pub(super) async fn rewrite_item_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        let d = self.dialect;
        let items: Vec<&ItemId> = deltas.items.keys().collect();
        let mut current: BTreeMap<ItemId, ItemTotals> = BTreeMap::new();
        for chunk in items.chunks(CHUNK) {
            let mut zeros = RowSet::new(&ITEM_COLS);
            for i in chunk {
                zeros.push(vec![
                    Val::Text(i.to_string()),
                    Val::Int(0),
                    Val::Decimal(Decimal::ZERO),
                    Val::Int(0),
                    Val::Int(0),
                    Val::Null,
                ]);
            }
            self.insert(conn, zeros, ITEM_HEAD, &d.skip_existing(&["itemid"])).await?;
            let select = format!(
                "SELECT {} FROM item_sales WHERE {} ORDER BY itemid{}",
                item_totals_columns(d),
                self.dialect.in_list("itemid", chunk.len()),
                d.for_update()
            );
            for r in self.with_ids(select, chunk.iter().map(|i| i.as_str())).fetch(conn).await? {
                let (item, totals) = item_totals_of(&r)?;
                current.insert(item, totals);
            }
        }
        // Where an order stopped counting, the last order date is recomputed from the lines as now written.
        let recheck: Vec<&ItemId> = deltas.items.iter().filter(|(_, d)| d.recheck_last_date).map(|(i, _)| i).collect();
        let recomputed = self.latest_order_dates(conn, &recheck).await?;
        let mut rows = RowSet::new(&ITEM_COLS);
        let mut emptied = false;
        for (item, delta) in &deltas.items {
            let old = current.get(item).ok_or_else(|| corrupt(format!("item_sales row for {item} vanished")))?;
            let new = ItemTotals {
                quantity: old.quantity + delta.quantity,
                revenue: old.revenue + delta.revenue,
                priced_quantity: old.priced_quantity + delta.priced_quantity,
                orders: old.orders + delta.orders,
                last_order_date: if delta.recheck_last_date {
                    recomputed.get(item).copied()
                } else {
                    old.last_order_date.max(delta.latest_added)
                },
            };
            if new.orders < 0
                || new.quantity < 0
                || (new.orders == 0) != (new.quantity == 0)
                || !(0..=new.quantity).contains(&new.priced_quantity)
            {
                return Err(corrupt(format!("item {item} would reach {new:?}")));
            }
            emptied |= new.orders == 0;
            rows.push(vec![
                Val::Text(item.to_string()),
                Val::Int(new.quantity),
                Val::Decimal(new.revenue.normalize()),
                Val::Int(new.priced_quantity),
                Val::Int(new.orders),
                new.last_order_date.map(Val::Time).unwrap_or(Val::Null),
            ]);
        }
        let tail =
            d.upsert(&["itemid"], &["totalordered", "totalrevenue", "pricedordered", "ordercount", "lastorderdate"]);
        self.insert(conn, rows, ITEM_HEAD, &tail).await?;
        if emptied {
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &items) {
                let sql = format!(
                    "DELETE FROM item_sales WHERE {} AND ordercount = 0",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        Ok(())
    }
    /// Month totals are integers: each delta is added by an atomic upsert (no read, no lock beyond the rows
    /// written). Where a total shrank it is checked afterwards; a negative one fails the batch. (A CHECK constraint
    /// cannot do this: databases test it on the proposed row, the delta itself, before resolving the conflict.)
    pub(super) async fn write_month_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        let d = self.dialect;
        let months: Vec<(&(ItemId, SaleMonth), &i64)> = deltas.months.iter().collect();
        for chunk in months.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Int]);
            for ((item, month), delta) in chunk {
                rows.push(vec![Val::Text(item.to_string()), Val::Text(month.as_str().to_owned()), Val::Int(**delta)]);
            }
            let tail = d.increment("item_monthly_sales", &["itemid", "sale_month"], "monthlyordered");
            self.insert(conn, rows, "INSERT INTO item_monthly_sales (itemid, sale_month, monthlyordered)", &tail)
                .await?;
        }
        // Months nothing counts in any more are removed, as a GROUP BY would not show them.
        let shrunk: Vec<&ItemId> =
            months.iter().filter(|(_, q)| **q < 0).map(|((i, _), _)| i).collect::<BTreeSet<_>>().into_iter().collect();
        for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &shrunk) {
            let check = format!(
                "SELECT itemid, sale_month, monthlyordered FROM item_monthly_sales WHERE {} AND monthlyordered < 0",
                self.dialect.in_list("itemid", chunk.len())
            );
            if let Some(r) = self.with_ids(check, chunk.iter().map(|i| i.as_str())).fetch(conn).await?.first() {
                let n: i64 = r.int(2)?;
                return Err(corrupt(format!("{} {} would reach {n}", get_text(r, 0)?, get_text(r, 1)?)));
            }
            let sql = format!(
                "DELETE FROM item_monthly_sales WHERE {} AND monthlyordered = 0",
                self.dialect.in_list("itemid", chunk.len())
            );
            self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
        }
        Ok(())
    }
}
