//! What the reports take and give: the item report's sort, keyset cursor and pages, the monthly rows, and what
//! every answer was read at (positions and the read model's epoch).

use super::*;

/// What the item report is sorted by; `itemid` always breaks ties, in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSort {
    ItemId,
    TotalOrdered,
    TotalRevenue,
    OrderCount,
    LastOrderDate,
}

impl ItemSort {
    pub const ALL: [ItemSort; 5] = [
        ItemSort::ItemId,
        ItemSort::TotalOrdered,
        ItemSort::TotalRevenue,
        ItemSort::OrderCount,
        ItemSort::LastOrderDate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemSort::ItemId => "itemid",
            ItemSort::TotalOrdered => "totalordered",
            ItemSort::TotalRevenue => "totalrevenue",
            ItemSort::OrderCount => "ordercount",
            ItemSort::LastOrderDate => "lastorderdate",
        }
    }

    pub fn parse(raw: &str) -> Option<ItemSort> {
        ItemSort::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Where a page ends: the last row's sort value and item. Its text form (`<value>~<itemid>`) is what clients get
/// back in the next page's URL; neither part can contain `~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(super) value: CursorValue,
    pub(super) itemid: ItemId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CursorValue {
    None,
    Int(i64),
    Decimal(Decimal),
    Time(DateTime<Utc>),
}

impl Cursor {
    pub(super) fn after(sort: ItemSort, row: &ItemRow) -> Cursor {
        let value = match sort {
            ItemSort::ItemId => CursorValue::None,
            ItemSort::TotalOrdered => CursorValue::Int(row.totalordered),
            ItemSort::OrderCount => CursorValue::Int(row.ordercount),
            ItemSort::TotalRevenue => CursorValue::Decimal(row.totalrevenue),
            ItemSort::LastOrderDate => row.lastorderdate.map(CursorValue::Time).unwrap_or(CursorValue::None),
        };
        Cursor { value, itemid: row.itemid.clone() }
    }

    pub fn encode(&self) -> String {
        let value = match &self.value {
            CursorValue::None => String::new(),
            CursorValue::Int(i) => i.to_string(),
            CursorValue::Decimal(d) => d.normalize().to_string(),
            CursorValue::Time(t) => domain::order::format_time(t),
        };
        format!("{value}~{}", self.itemid)
    }

    /// The cursor `raw` for a report sorted by `sort`; `None` if it is not one this report could have issued.
    pub fn decode(sort: ItemSort, raw: &str) -> Option<Cursor> {
        let (value, item) = raw.split_once('~')?;
        let itemid = ItemId::parse(item).ok()?;
        let value = match sort {
            ItemSort::ItemId if value.is_empty() => CursorValue::None,
            ItemSort::ItemId => return None,
            ItemSort::TotalOrdered | ItemSort::OrderCount => CursorValue::Int(value.parse().ok()?),
            ItemSort::TotalRevenue => CursorValue::Decimal(Decimal::from_str(value).ok()?),
            ItemSort::LastOrderDate => CursorValue::Time(domain::order::parse_time(value)?),
        };
        Some(Cursor { value, itemid })
    }
}

/// One page request of the item report.
#[derive(Debug, Clone)]
pub struct ItemQuery {
    pub sort: ItemSort,
    pub descending: bool,
    /// `None`: the whole report.
    pub limit: Option<usize>,
    pub after: Option<Cursor>,
}

/// One item of the report. Revenue counts only lines whose price is known, and `pricedordered` is their quantity;
/// where that is 0 the stored revenue is 0 but the revenue is unknown (see [`ItemRow::known_revenue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub itemid: ItemId,
    pub totalordered: i64,
    pub totalrevenue: Decimal,
    pub pricedordered: i64,
    pub ordercount: i64,
    pub lastorderdate: Option<DateTime<Utc>>,
}

impl ItemRow {
    /// The revenue, if a price is known for any unit counted.
    pub fn known_revenue(&self) -> Option<Decimal> {
        (self.pricedordered > 0).then_some(self.totalrevenue)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPage {
    pub rows: Vec<ItemRow>,
    /// Set when more rows follow.
    pub next: Option<Cursor>,
    pub read_at: ReadAt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRow {
    pub month: SaleMonth,
    pub monthlyordered: i64,
}

/// What a read reflects, read by the same statement as the rows (one snapshot on every backend, no explicit
/// transaction): the projection positions (`source=sequence` pairs in source order, or `none`) and the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAt {
    pub(super) positions: String,
    pub epoch: Epoch,
}

impl ReadAt {
    pub fn header_value(&self) -> &str {
        &self.positions
    }
}

/// The read model's change counter: equal epochs, equal contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRow {
    pub source: String,
    pub sequence: Sequence,
    /// When the last applied change happened in the write model.
    pub last_changed_at: DateTime<Utc>,
    /// When it was applied to the read model.
    pub applied_at: DateTime<Utc>,
}

/// An order's newest projected version, live or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectedVersion(pub Version);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_for_its_own_sort_and_is_refused_for_another() {
        let row = ItemRow {
            itemid: ItemId::parse("z:3333").unwrap(),
            totalordered: 12,
            totalrevenue: Decimal::from_str("15.0006").unwrap(),
            pricedordered: 12,
            ordercount: 2,
            lastorderdate: domain::order::parse_time("2022-11-02T00:00:00Z"),
        };
        for sort in ItemSort::ALL {
            let cursor = Cursor::after(sort, &row);
            assert_eq!(Cursor::decode(sort, &cursor.encode()), Some(cursor.clone()), "{sort:?}");
        }
        assert_eq!(Cursor::after(ItemSort::TotalRevenue, &row).encode(), "15.0006~z:3333");
        assert_eq!(Cursor::decode(ItemSort::ItemId, "12~z3333"), None);
        assert_eq!(Cursor::decode(ItemSort::TotalOrdered, "x~z3333"), None);
        assert_eq!(Cursor::decode(ItemSort::TotalOrdered, "12~bad id"), None);
        assert_eq!(Cursor::decode(ItemSort::TotalOrdered, "12"), None);
    }
}
