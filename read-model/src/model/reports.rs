//! The reports, read from the aggregates the projector maintains (never by grouping the lines per request), each
//! in one read-only snapshot together with the projection positions it reflects.

use super::*;

impl ReadModel {
    /// The read model's epoch, as one value.
    const EPOCH: &'static str = "(SELECT epoch FROM projection_epoch WHERE id = 1)";

    /// The positions as one text: `source=sequence` pairs in source order (MySQL: a JSON array, put in order when
    /// read), aggregated over `projection_positions`.
    fn positions_agg(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "string_agg(source || '=' || sequence, ', ' ORDER BY source COLLATE \"C\")",
            // GROUP_CONCAT would cut the list at group_concat_max_len (1,024 bytes by default on MySQL); a JSON
            // array has no such limit.
            Dialect::MySql => "CAST(JSON_ARRAYAGG(JSON_ARRAY(source, sequence)) AS CHAR)",
            Dialect::Sqlite => "group_concat(source || '=' || sequence, ', ' ORDER BY source)",
        }
    }

    /// `FROM (one row: the positions as one text, and the epoch) p`, to be LEFT JOINed with a report's rows so that
    /// one statement reads both, and the positions come back even with no row to report.
    fn positions_row(&self) -> String {
        format!("(SELECT {} AS pos, {} AS epoch FROM projection_positions) p", self.positions_agg(), Self::EPOCH)
    }

    /// The positions and the epoch as two more columns of a report's rows: scalar subqueries, read once per
    /// statement. Cheaper than `positions_row`'s join, which puts every row through a nested loop and a sort
    /// instead of reading them in index order, but only usable when there is a row.
    fn positions_columns(&self) -> String {
        format!("(SELECT {} FROM projection_positions) AS pos, {} AS epoch", self.positions_agg(), Self::EPOCH)
    }

    /// A report's rows, each mapped by `map`, and what they were read at, in one statement (one snapshot): `columns`
    /// and the positions from `table` (with its alias) where `conditions` hold, in `order_and_limit`; the positions
    /// are read from the first row only. With no row to carry them, read again (again one statement) as the
    /// positions' row LEFT JOINed with `table` on the same conditions, whose report rows are those with a non-NULL
    /// first column.
    async fn report_rows<T>(
        &self,
        columns: &str,
        table: &str,
        conditions: &str,
        order_and_limit: &str,
        args: Vec<Val>,
        mut map: impl FnMut(&RowRef<'_>) -> Result<T> + Send,
    ) -> Result<(Vec<T>, ReadAt)> {
        let mut conn = self.pool.read().await?;
        let mut read_at = None;
        let sql =
            format!("SELECT {columns}, {} FROM {table} WHERE {conditions} {order_and_limit}", self.positions_columns());
        let rows = Stmt::with_vals(sql, args.clone(), self.dialect)
            .fetch_map(&mut conn, |row| {
                if read_at.is_none() {
                    read_at = Some(self.read_at_of(&row)?);
                }
                map(&row)
            })
            .await?;
        if let Some(read_at) = read_at {
            return Ok((rows, read_at));
        }
        let sql = format!(
            "SELECT {columns}, p.pos, p.epoch FROM {} LEFT JOIN {table} ON {conditions} {order_and_limit}",
            self.positions_row()
        );
        let rows = Stmt::with_vals(sql, args, self.dialect)
            .fetch_map(&mut conn, |row| {
                if read_at.is_none() {
                    read_at = Some(self.read_at_of(&row)?);
                }
                match row.cell(0)? {
                    Cell::Null => Ok(None),
                    _ => map(&row).map(Some),
                }
            })
            .await?;
        let read_at = read_at.ok_or_else(|| corrupt("a report read returned no positions row"))?;
        Ok((rows.into_iter().flatten().collect(), read_at))
    }

    /// The positions and epoch columns (the last two) of a report's row.
    fn read_at_of(&self, row: &RowRef<'_>) -> Result<ReadAt> {
        let last = row.len().checked_sub(1).filter(|l| *l > 0).ok_or_else(|| corrupt("a report row too short"))?;
        let epoch = Epoch(int_of(&row.cell(last)?)?);
        let positions = match row.cell(last - 1)? {
            Cell::Null => "none".to_owned(),
            Cell::Text(text) if self.dialect == Dialect::MySql => {
                let mut pairs: Vec<(String, String)> =
                    serde_json::from_str(&text).map_err(|e| corrupt(format!("positions {text:?}: {e}")))?;
                pairs.sort();
                pairs.iter().map(|(s, q)| format!("{s}={q}")).collect::<Vec<_>>().join(", ")
            }
            Cell::Text(text) => text,
            other => return Err(corrupt(format!("positions {other:?}"))),
        };
        Ok(ReadAt { positions, epoch })
    }

    /// A read-only transaction whose reads all see one snapshot.
    async fn read_snapshot(&self) -> Result<Tx> {
        Ok(self.pool.begin_snapshot().await?)
    }

    async fn read_positions(&self, tx: &mut Tx) -> Result<Vec<PositionRow>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT source, sequence, {}, {} FROM projection_positions ORDER BY source",
            d.time_out("last_changed_at"),
            d.time_out("applied_at")
        );
        Stmt::new(sql)
            .fetch(tx)
            .await?
            .iter()
            .map(|r| {
                let seq = get_text(r, 1)?;
                Ok(PositionRow {
                    source: get_text(r, 0)?,
                    sequence: Sequence::parse(&seq).ok_or_else(|| corrupt(format!("sequence {seq:?}")))?,
                    last_changed_at: get_time(r, 2)?,
                    applied_at: get_time(r, 3)?,
                })
            })
            .collect()
    }

    /// What the read model is at now (positions and epoch), in one small statement: for revalidating an answer
    /// without recomputing it.
    pub async fn read_at(&self) -> Result<ReadAt> {
        let mut conn = self.pool.read().await?;
        let sql = format!("SELECT p.pos, p.epoch FROM {}", self.positions_row());
        let mut rows = Stmt::new(sql).fetch_map(&mut conn, |row| self.read_at_of(&row)).await?;
        rows.pop().ok_or_else(|| corrupt("the positions read returned no row"))
    }

    /// Every source's position.
    pub async fn positions(&self) -> Result<Vec<PositionRow>> {
        let mut tx = self.pool.read().await?;
        self.read_positions(&mut tx).await
    }

    /// The newest version projected for `order`, whether it is live or removed; `None` if nothing is.
    pub async fn projected_version(&self, order: &OrderId) -> Result<Option<ProjectedVersion>> {
        let d = self.dialect;
        let mut tx = self.pool.begin().await?;
        let mut newest = None;
        for table in ["orders", "order_tombstones"] {
            let sql = format!("SELECT version FROM {table} WHERE orderid = {}", d.param(1, Col::Text));
            for r in Stmt::new(sql).text(order.as_str()).fetch(&mut tx).await? {
                newest = newest.max(Some(version(r.int(0)?)?));
            }
        }
        tx.commit().await?;
        Ok(newest.map(ProjectedVersion))
    }

    /// The item report, or one page of it.
    pub async fn item_report(&self, query: &ItemQuery) -> Result<ItemPage> {
        let d = self.dialect;
        // The sort as (expression, parameter type) keys; itemid last, compared bytewise on every backend. Keys are
        // qualified: an ORDER BY name would otherwise mean the selected column of that name (text on PostgreSQL).
        let itemid_key = match d {
            Dialect::Postgres => "s.itemid COLLATE \"C\"",
            Dialect::MySql | Dialect::Sqlite => "s.itemid",
        };
        let mut keys: Vec<(&str, Col)> = match query.sort {
            ItemSort::ItemId => vec![],
            ItemSort::TotalOrdered => vec![("s.totalordered", Col::Int)],
            ItemSort::OrderCount => vec![("s.ordercount", Col::Int)],
            ItemSort::LastOrderDate => vec![("s.lastorderdate", Col::Time)],
            // SQLite keeps decimals as canonical text: exact order is (digits before the point, then the text).
            ItemSort::TotalRevenue if d == Dialect::Sqlite => {
                vec![("instr(s.totalrevenue || '.', '.')", Col::Int), ("s.totalrevenue", Col::Text)]
            }
            ItemSort::TotalRevenue => vec![("s.totalrevenue", Col::Decimal)],
        };
        keys.push((itemid_key, Col::Text));
        let mut stmt_args: Vec<Val> = Vec::new();
        let mut filter = String::new();
        if let Some(after) = &query.after {
            let mut values: Vec<Val> = match (&after.value, query.sort) {
                (CursorValue::None, _) => vec![],
                (CursorValue::Int(i), _) => vec![Val::Int(*i)],
                (CursorValue::Time(t), _) => vec![Val::Text(d.time_value(t))],
                (CursorValue::Decimal(v), _) if d == Dialect::Sqlite => {
                    let text = v.normalize().to_string();
                    let digits = text.find('.').unwrap_or(text.len()) + 1;
                    vec![Val::Int(digits as i64), Val::Text(text)]
                }
                (CursorValue::Decimal(v), _) => vec![Val::Text(v.normalize().to_string())],
            };
            values.push(Val::Text(after.itemid.to_string()));
            if values.len() != keys.len() {
                return Err(corrupt("a cursor that does not fit its sort"));
            }
            // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... ; `<` when descending.
            let cmp = if query.descending { "<" } else { ">" };
            let mut ors = Vec::new();
            for n in 0..keys.len() {
                let mut ands = Vec::new();
                for (i, (expr, col)) in keys.iter().enumerate().take(n + 1) {
                    let op = if i == n { cmp } else { "=" };
                    stmt_args.push(values[i].clone());
                    ands.push(format!("{expr} {op} {}", d.param(stmt_args.len(), *col)));
                }
                ors.push(format!("({})", ands.join(" AND ")));
            }
            filter = format!(" AND ({})", ors.join(" OR "));
        }
        let dir = if query.descending { "DESC" } else { "ASC" };
        let order: Vec<String> = keys.iter().map(|(e, _)| format!("{e} {dir}")).collect();
        let limit = query.limit.map(|n| format!(" LIMIT {}", n + 1)).unwrap_or_default();
        let columns = format!(
            "s.itemid, s.totalordered, {}, s.pricedordered, s.ordercount, {}",
            d.decimal_out("s.totalrevenue"),
            d.time_out("s.lastorderdate")
        );
        let order = format!("ORDER BY {}{limit}", order.join(", "));
        let conditions = format!("s.ordercount > 0{filter}");
        let (mut rows, read_at) = self
            .report_rows(&columns, "item_sales s", &conditions, &order, stmt_args, |r| {
                Ok(ItemRow {
                    itemid: item_id_of(r.cell(0)?)?,
                    totalordered: int_of(&r.cell(1)?)?,
                    totalrevenue: decimal_of(&r.cell(2)?)?.normalize(),
                    pricedordered: int_of(&r.cell(3)?)?,
                    ordercount: int_of(&r.cell(4)?)?,
                    lastorderdate: opt_time_of(&r.cell(5)?)?,
                })
            })
            .await?;
        let next = match query.limit {
            Some(n) if rows.len() > n => {
                rows.truncate(n);
                rows.last().map(|last| Cursor::after(query.sort, last))
            }
            _ => None,
        };
        Ok(ItemPage { rows, next, read_at })
    }

    /// Quantity per UTC month for `item`, newest month first; empty for an item nothing counts.
    pub async fn monthly_report(&self, item: &ItemId) -> Result<(Vec<MonthRow>, ReadAt)> {
        self.report_rows(
            "m.sale_month, m.monthlyordered",
            "item_monthly_sales m",
            &format!("m.itemid = {} AND m.monthlyordered > 0", self.dialect.param(1, Col::Text)),
            "ORDER BY m.sale_month DESC",
            vec![Val::Text(item.as_str().to_owned())],
            |r| {
                let raw = text_of(r.cell(0)?)?;
                let month = SaleMonth::parse(raw.trim()).ok_or_else(|| corrupt(format!("sale month {raw:?}")))?;
                Ok(MonthRow { month, monthlyordered: int_of(&r.cell(1)?)? })
            },
        )
        .await
    }
}

/// The reports recomputed by grouping every counted line, the way the sample answered each request: what
/// the aggregates replace. For tests (the aggregates must equal it) and the benchmark (what they save).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grouped {
    pub items: Vec<ItemRow>,
    pub months: BTreeMap<(ItemId, SaleMonth), i64>,
}

impl ReadModel {
    pub async fn reports_by_grouping(&self) -> Result<Grouped> {
        let d = self.dialect;
        let int = |e: &str| match d {
            Dialect::Postgres => format!("CAST({e} AS BIGINT)"),
            Dialect::MySql => format!("CAST({e} AS SIGNED)"),
            Dialect::Sqlite => format!("CAST({e} AS INTEGER)"),
        };
        // SQLite keeps prices as text, and its arithmetic on them would be floating point: there, revenue is
        // summed here from the priced lines with exact decimals instead.
        let sql = format!(
            "SELECT itemid, {}, {}, {}, {}, {} FROM ({}) g",
            int("totalordered"),
            d.decimal_out("totalrevenue"),
            int("pricedordered"),
            int("ordercount"),
            d.time_out("lastorderdate"),
            item_totals_grouped(grouped_revenue(d))
        );
        let mut tx = self.read_snapshot().await?;
        let mut items: BTreeMap<ItemId, ItemRow> = BTreeMap::new();
        for r in Stmt::new(sql).fetch(&mut tx).await? {
            let row = ItemRow {
                itemid: item_id(&get_text(&r, 0)?)?,
                totalordered: r.int(1)?,
                totalrevenue: get_decimal(&r, 2)?.normalize(),
                pricedordered: r.int(3)?,
                ordercount: r.int(4)?,
                lastorderdate: get_opt_time(&r, 5)?,
            };
            items.insert(row.itemid.clone(), row);
        }
        if d == Dialect::Sqlite {
            let sql = "SELECT i.itemid, i.quantity, i.unitprice FROM orderitems i JOIN orders o ON o.orderid = i.orderid \
                       WHERE o.orderstatus = 'created' AND i.unitprice IS NOT NULL";
            for r in Stmt::new(sql.into()).fetch(&mut tx).await? {
                let item = item_id(&get_text(&r, 0)?)?;
                let line = Decimal::from(r.int(1)?) * get_decimal(&r, 2)?;
                let row = items.get_mut(&item).ok_or_else(|| corrupt(format!("priced line of {item} not grouped")))?;
                row.totalrevenue = (row.totalrevenue + line).normalize();
            }
        }
        let sql = format!("SELECT itemid, sale_month, {} FROM ({MONTHS_GROUPED}) g", int("monthlyordered"));
        let mut months = BTreeMap::new();
        for r in Stmt::new(sql).fetch(&mut tx).await? {
            let raw = get_text(&r, 1)?;
            let month = SaleMonth::parse(raw.trim()).ok_or_else(|| corrupt(format!("sale month {raw:?}")))?;
            months.insert((item_id(&get_text(&r, 0)?)?, month), r.int(2)?);
        }
        tx.commit().await?;
        Ok(Grouped { items: items.into_values().collect(), months })
    }
}
