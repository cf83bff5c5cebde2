//! Rebuilding the read model in bulk from a snapshot of the write model: the `orders` and `orderitems` rows as one
//! stream (PostgreSQL `COPY ... FROM STDIN` into tables whose keys and index are built after the load; MySQL the
//! largest multi-row statements the connection allows; SQLite one transaction), then the report aggregates, the
//! positions and the epoch set-wise in the database from the loaded rows.
//!
//! A marker row (`projection_rebuild`) is committed before anything is written and deleted in the transaction that
//! completes the model, so an interrupted rebuild is never taken for a finished read model.

use super::*;

/// What a rebuild's target holds before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing projected: a rebuild fills it.
    Empty,
    /// A rebuild from `source` started at `started_at` and did not finish: a rebuild starts it clean.
    Unfinished { source: String, started_at: DateTime<Utc> },
    /// A projection: a rebuild never writes over one.
    Projected,
}

/// What a finished rebuild holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub orders: u64,
    pub lines: u64,
    pub items: u64,
    pub months: u64,
}

/// The position a rebuild's snapshot reflects, per source: the feed continues after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPosition {
    pub source: String,
    pub sequence: Sequence,
    pub changed_at: DateTime<Utc>,
}

/// A rebuild under way: every order of the snapshot goes in once through `load`, in any order and chunking;
/// `finish` computes the rest and completes the model.
pub struct Rebuild<'a> {
    model: &'a ReadModel,
    /// PostgreSQL and SQLite: the one transaction the whole load runs in. MySQL commits each `load`.
    tx: Option<Tx>,
    /// MySQL: the longest statement the connection takes.
    statement_limit: usize,
    /// PostgreSQL and MySQL: the chunk prepared last, sent while the next one is prepared.
    pending: Option<Prepared>,
    /// SQLite keeps decimals as text, and its arithmetic on them is floating point: there, revenue is summed here
    /// with exact decimals as the lines go in.
    revenue: BTreeMap<ItemId, Decimal>,
    now: DateTime<Utc>,
    rebuilt: Rebuilt,
}

/// Every table a projection writes, emptied when a rebuild starts clean.
const PROJECTED_TABLES: [&str; 8] = [
    "orderitems",
    "orders",
    "order_tombstones",
    "item_sales",
    "item_monthly_sales",
    "projection_positions",
    "projection_dead_letters",
    "projection_backlog",
];

/// The per-item totals of the counted (created) orders' lines, grouped in the database: the one definition the
/// rebuild writes and the sample's report recomputation reads. `revenue` is the revenue column's expression.
pub(super) fn item_totals_grouped(revenue: &str) -> String {
    format!(
        "SELECT i.itemid AS itemid, SUM(i.quantity) AS totalordered, {revenue} AS totalrevenue, \
         SUM(CASE WHEN i.unitprice IS NULL THEN 0 ELSE i.quantity END) AS pricedordered, COUNT(*) AS ordercount, \
         MAX(o.orderdate) AS lastorderdate FROM orderitems i JOIN orders o ON o.orderid = i.orderid \
         WHERE o.orderstatus = 'created' GROUP BY i.itemid"
    )
}

/// The revenue of the grouped lines, where the backend has exact decimals; on SQLite, whose arithmetic on its text
/// decimals is floating point, a zero that the caller replaces with an exact sum.
pub(super) fn grouped_revenue(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "'0'",
        _ => "SUM(COALESCE(i.quantity * i.unitprice, 0))",
    }
}

/// The per-item monthly quantities of the counted orders' lines, grouped in the database.
pub(super) const MONTHS_GROUPED: &str = "SELECT i.itemid AS itemid, o.sale_month AS sale_month, \
     SUM(i.quantity) AS monthlyordered FROM orderitems i \
     JOIN orders o ON o.orderid = i.orderid WHERE o.orderstatus = 'created' GROUP BY i.itemid, o.sale_month";

/// The two statements that fill `item_sales` and `item_monthly_sales` from the loaded rows, as a rebuild runs them
/// on `d` (on SQLite the revenue is then set from exact sums). Public for the benchmark's floor, which must group
/// exactly as the rebuild does.
pub fn report_inserts(d: Dialect) -> [String; 2] {
    // MariaDB sorts a GROUP BY's result unless told not to.
    let unsorted = if d == Dialect::MySql { " ORDER BY NULL" } else { "" };
    [
        format!(
            "INSERT INTO item_sales (itemid, totalordered, totalrevenue, pricedordered, ordercount, lastorderdate) \
             {}{unsorted}",
            item_totals_grouped(grouped_revenue(d))
        ),
        format!("INSERT INTO item_monthly_sales (itemid, sale_month, monthlyordered) {MONTHS_GROUPED}{unsorted}"),
    ]
}

const ORDER_COLUMNS: &str =
    "orderid, orderstatus, orderdate, sale_month, version, created_at, updated_at, projected_at";
const LINE_COLUMNS: &str = "orderid, itemid, quantity, unitprice";
const ORDER_COLS: [Col; 8] = [Col::Text, Col::Text, Col::Time, Col::Text, Col::Int, Col::Time, Col::Time, Col::Time];
const LINE_COLS: [Col; 4] = [Col::Text, Col::Text, Col::Int, Col::Decimal];

impl ReadModel {
    /// What the read model holds, as a rebuild's target.
    pub async fn rebuild_target(&self) -> Result<Target> {
        if let Some(unfinished) = self.unfinished_rebuild().await? {
            return Ok(unfinished);
        }
        Ok(if self.is_empty().await? { Target::Empty } else { Target::Projected })
    }

    /// `Target::Unfinished` when a rebuild began and did not finish (one read of the marker).
    pub async fn unfinished_rebuild(&self) -> Result<Option<Target>> {
        let sql = format!("SELECT source, {} FROM projection_rebuild", self.dialect.time_out("started_at"));
        let mut conn = self.pool.read().await?;
        let marker = Stmt::new(sql).fetch(&mut conn).await?;
        marker
            .first()
            .map(|r| Ok(Target::Unfinished { source: get_text(r, 0)?, started_at: get_time(r, 1)? }))
            .transpose()
    }

    /// Starts a rebuild from `source` (a name for people: where the snapshot comes from). The target must be empty
    /// or an unfinished rebuild, which is emptied first: what an interrupted rebuild wrote is never kept.
    pub async fn start_rebuild(&self, source: &str) -> Result<Rebuild<'_>> {
        if self.rebuild_target().await? == Target::Projected {
            return Err(ProjectionError::Config(
                "the read model already holds a projection; a rebuild fills an empty one".into(),
            ));
        }
        let d = self.dialect;
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        for table in PROJECTED_TABLES {
            Stmt::new(format!("DELETE FROM {table}")).run(&mut tx).await?;
        }
        Stmt::new("DELETE FROM projection_rebuild".into()).run(&mut tx).await?;
        let sql = format!(
            "INSERT INTO projection_rebuild (id, source, started_at) VALUES (1, {}, {})",
            d.param(1, Col::Text),
            d.param(2, Col::Time)
        );
        Stmt::with_vals(sql, vec![Val::Text(source.to_owned()), Val::Time(now)], d).run(&mut tx).await?;
        Stmt::new(EPOCH_BUMP.into()).run(&mut tx).await?;
        tx.commit().await?;

        let (tx, statement_limit) = match d {
            Dialect::Postgres => {
                // Keys and the index are built once after the load (sorting once is far cheaper than keeping
                // b-trees of random ids as rows arrive); emptied in this transaction, the tables take frozen rows.
                let mut tx = self.pool.begin().await?;
                for sql in [
                    "SET LOCAL maintenance_work_mem = '256MB'",
                    // The aggregates' join and grouping in memory rather than in temporary files.
                    "SET LOCAL work_mem = '256MB'",
                    "TRUNCATE orderitems, orders",
                    "DROP INDEX orderitems_itemid",
                    "ALTER TABLE orderitems DROP CONSTRAINT orderitems_pkey",
                    "ALTER TABLE orders DROP CONSTRAINT orders_pkey",
                ] {
                    tx.execute_raw(sql).await?;
                }
                (Some(tx), 0)
            }
            Dialect::MySql => {
                // The item index is built once after the load, as on PostgreSQL (InnoDB keeps rows in primary key
                // order, so the key stays). DDL commits at once on MySQL: an interrupted rebuild leaves the index
                // dropped and the model marked unfinished, and the next rebuild builds it again.
                let mut conn = self.pool.read().await?;
                let sql = "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() \
                           AND table_name = 'orderitems' AND index_name = 'orderitems_itemid'";
                let indexed = Stmt::new(sql.into()).fetch(&mut conn).await?.first().map(|r| r.int(0)).transpose()?;
                if indexed.unwrap_or(0) > 0 {
                    conn.execute_raw("ALTER TABLE orderitems DROP INDEX orderitems_itemid").await?;
                }
                drop(conn);
                (None, self.largest_mysql_statement().await?)
            }
            Dialect::Sqlite => (Some(self.pool.begin().await?), 0),
        };
        Ok(Rebuild {
            model: self,
            tx,
            statement_limit,
            pending: None,
            revenue: BTreeMap::new(),
            now,
            rebuilt: Rebuilt::default(),
        })
    }

    /// The longest statement a MySQL connection takes (`max_allowed_packet`, less room for the protocol), at most
    /// 8 MiB: beyond that, larger statements save nothing measurable.
    async fn largest_mysql_statement(&self) -> Result<usize> {
        let mut conn = self.pool.read().await?;
        let rows = Stmt::new("SELECT CAST(@@max_allowed_packet AS SIGNED)".into()).fetch(&mut conn).await?;
        let packet = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
        Ok(usize::try_from(packet).unwrap_or(0).saturating_sub(4_096).clamp(MYSQL_STATEMENT_LIMIT, 8 << 20))
    }
}

impl Rebuild<'_> {
    /// Loads `orders` (each order once over the whole rebuild). On PostgreSQL and MySQL the chunk is prepared (as
    /// COPY input, or as statements) on a blocking thread while the one before it is sent.
    pub async fn load(&mut self, orders: Vec<Order>) -> Result<()> {
        if orders.is_empty() {
            return Ok(());
        }
        self.rebuilt.orders += orders.len() as u64;
        self.rebuilt.lines += orders.iter().map(|o| o.items.as_slice().len() as u64).sum::<u64>();
        let (dialect, now, limit) = (self.model.dialect, self.now, self.statement_limit);
        if dialect == Dialect::Sqlite {
            let mut tx = self.tx.take().ok_or_else(|| corrupt("the rebuild's transaction is gone"))?;
            let inserted = self.insert_sqlite(&mut tx, &orders).await;
            self.tx = Some(tx);
            inserted?;
            for o in orders.iter().filter(|o| o.status == OrderStatus::Created) {
                for l in o.items.as_slice() {
                    if let Some(price) = l.unit_price {
                        *self.revenue.entry(l.itemid.clone()).or_default() +=
                            Decimal::from(l.quantity.get()) * price.get();
                    }
                }
            }
            return Ok(());
        }
        let preparing = tokio::task::spawn_blocking(move || prepare(dialect, &orders, now, limit));
        let sent = self.send_pending().await;
        let prepared = preparing.await.map_err(|e| corrupt(format!("preparing a chunk failed: {e}")))?;
        sent?;
        self.pending = Some(prepared?);
        Ok(())
    }

    /// Sends the chunk prepared last, if any: COPY on PostgreSQL (in the rebuild's transaction), statements in a
    /// transaction of their own on MySQL.
    async fn send_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            None => Ok(()),
            Some(Prepared::Copy { orders, lines }) => {
                let tx = self.tx.as_mut().ok_or_else(|| corrupt("the rebuild's transaction is gone"))?;
                tx.copy_in(&format!("COPY orders ({ORDER_COLUMNS}) FROM STDIN WITH (FORMAT csv, FREEZE)"), orders)
                    .await?;
                tx.copy_in(&format!("COPY orderitems ({LINE_COLUMNS}) FROM STDIN WITH (FORMAT csv, FREEZE)"), lines)
                    .await?;
                Ok(())
            }
            Some(Prepared::Statements(statements)) => {
                let mut tx = self.model.pool.begin_write().await?;
                for sql in statements {
                    Stmt::new(sql).run(&mut tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// SQLite: the orders and their lines as multi-row INSERTs with parameters.
    async fn insert_sqlite(&self, tx: &mut Tx, orders: &[Order]) -> Result<()> {
        for chunk in orders.chunks(CHUNK) {
            let (order_rows, line_rows) = rows(chunk, self.now);
            self.model.insert(tx, order_rows, &format!("INSERT INTO orders ({ORDER_COLUMNS})"), "").await?;
            for lines in line_rows {
                self.model.insert(tx, lines, &format!("INSERT INTO orderitems ({LINE_COLUMNS})"), "").await?;
            }
        }
        Ok(())
    }

    /// Builds what the load left for last (the keys and index on PostgreSQL, in its one transaction; the item index
    /// on MySQL, whose DDL commits by itself), then computes the aggregates set-wise from the loaded rows, writes
    /// `positions`, raises the epoch and removes the marker in one transaction.
    pub async fn finish(mut self, positions: &[SnapshotPosition]) -> Result<Rebuilt> {
        self.send_pending().await?;
        let model = self.model;
        let d = model.dialect;
        if d == Dialect::MySql {
            let mut conn = model.pool.read().await?;
            conn.execute_raw("CREATE INDEX orderitems_itemid ON orderitems (itemid)").await?;
        }
        let mut tx = match self.tx.take() {
            Some(tx) => tx,
            None => model.pool.begin_write().await?,
        };
        if d == Dialect::Postgres {
            for sql in [
                "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (orderid)",
                "ALTER TABLE orderitems ADD CONSTRAINT orderitems_pkey PRIMARY KEY (orderid, itemid)",
                "CREATE INDEX orderitems_itemid ON orderitems (itemid)",
            ] {
                tx.execute_raw(sql).await?;
            }
        }
        if d == Dialect::MySql {
            // Its GROUP BY's temporary table in memory: past 16 MB by default it spills to disk.
            tx.execute_raw("SET SESSION tmp_table_size = 268435456, max_heap_table_size = 268435456").await?;
        }
        let [items, months] = report_inserts(d);
        self.rebuilt.items = Stmt::new(items).run(&mut tx).await?;
        if d == Dialect::Sqlite {
            let sql = format!(
                "UPDATE item_sales SET totalrevenue = {} WHERE itemid = {}",
                d.param(1, Col::Text),
                d.param(2, Col::Text)
            );
            for (item, revenue) in std::mem::take(&mut self.revenue) {
                let values = vec![Val::Decimal(revenue.normalize()), Val::Text(item.to_string())];
                Stmt::with_vals(sql.clone(), values, d).run(&mut tx).await?;
            }
        }
        self.rebuilt.months = Stmt::new(months).run(&mut tx).await?;
        let rows: Vec<(&str, &Sequence, DateTime<Utc>)> =
            positions.iter().map(|p| (p.source.as_str(), &p.sequence, p.changed_at)).collect();
        model.write_position_rows(&mut tx, &rows, Utc::now()).await?;
        Stmt::new(EPOCH_BUMP.into()).run(&mut tx).await?;
        Stmt::new("DELETE FROM projection_rebuild".into()).run(&mut tx).await?;
        tx.commit().await?;
        if d == Dialect::Postgres {
            // Fresh statistics for the report reads' plans (autovacuum would get there later).
            let mut conn = model.pool.read().await?;
            conn.execute_raw("ANALYZE orders, orderitems, item_sales, item_monthly_sales").await?;
        }
        Ok(self.rebuilt)
    }
}

/// One chunk of orders as it goes to the database.
enum Prepared {
    /// PostgreSQL: the `orders` and `orderitems` rows as COPY's CSV.
    Copy { orders: Vec<u8>, lines: Vec<u8> },
    /// MySQL: multi-row INSERTs with the values written in, each within the connection's statement limit.
    Statements(Vec<String>),
}

/// `orders` as rows of `orders` and of `orderitems` (the lines in sets of at most `CHUNK` rows).
fn rows(orders: &[Order], now: DateTime<Utc>) -> (RowSet, Vec<RowSet>) {
    let mut order_rows = RowSet::new(&ORDER_COLS);
    let mut line_sets = vec![RowSet::new(&LINE_COLS)];
    let mut in_set = 0;
    for o in orders {
        order_rows.push(vec![
            Val::Text(o.order_id.to_string()),
            Val::Text(o.status.as_str().to_owned()),
            Val::Time(o.order_date),
            Val::Text(SaleMonth::of(o.order_date).as_str().to_owned()),
            Val::Int(int(o.version.get())),
            Val::Time(o.created_at),
            Val::Time(o.updated_at),
            Val::Time(now),
        ]);
        for l in o.items.as_slice() {
            if in_set == CHUNK {
                line_sets.push(RowSet::new(&LINE_COLS));
                in_set = 0;
            }
            if let Some(set) = line_sets.last_mut() {
                set.push(vec![
                    Val::Text(o.order_id.to_string()),
                    Val::Text(l.itemid.to_string()),
                    Val::Int(i64::from(l.quantity.get())),
                    l.unit_price.map(|p| Val::Decimal(p.get())).unwrap_or(Val::Null),
                ]);
            }
            in_set += 1;
        }
    }
    (order_rows, line_sets)
}

/// `orders` prepared for `dialect` (PostgreSQL or MySQL), the rebuild's time `now` as their projection time.
fn prepare(dialect: Dialect, orders: &[Order], now: DateTime<Utc>, mysql_limit: usize) -> Result<Prepared> {
    if dialect == Dialect::MySql {
        let (order_rows, line_sets) = rows(orders, now);
        let mut statements =
            order_rows.mysql_literal_statements(&format!("INSERT INTO orders ({ORDER_COLUMNS})"), "", mysql_limit);
        for lines in line_sets {
            statements.extend(lines.mysql_literal_statements(
                &format!("INSERT INTO orderitems ({LINE_COLUMNS})"),
                "",
                mysql_limit,
            ));
        }
        return Ok(Prepared::Statements(statements));
    }
    let time = |at: &DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let projected = time(&now);
    let mut order_rows = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let mut line_rows = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for o in orders {
        let version = o.version.get().to_string();
        let month = SaleMonth::of(o.order_date);
        let row = [
            o.order_id.as_str(),
            o.status.as_str(),
            &time(&o.order_date),
            month.as_str(),
            &version,
            &time(&o.created_at),
            &time(&o.updated_at),
            &projected,
        ];
        order_rows.write_record(row).map_err(csv_failed)?;
        for l in o.items.as_slice() {
            let price = l.unit_price.map(|p| p.get().to_string()).unwrap_or_default();
            let quantity = l.quantity.get().to_string();
            line_rows.write_record([o.order_id.as_str(), l.itemid.as_str(), &quantity, &price]).map_err(csv_failed)?;
        }
    }
    let orders = order_rows.into_inner().map_err(|e| corrupt(format!("CSV: {e}")))?;
    let lines = line_rows.into_inner().map_err(|e| corrupt(format!("CSV: {e}")))?;
    Ok(Prepared::Copy { orders, lines })
}

fn csv_failed(e: csv::Error) -> ProjectionError {
    corrupt(format!("CSV: {e}"))
}
