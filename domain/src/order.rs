//! The order aggregate and its value types. Each type upholds its own rule, so an `Order` built from them is valid.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{ItemId, OrderId};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: u32 = 1_000_000;
pub const MAX_PRICE_SCALE: u32 = 4;

/// Timestamps are kept at millisecond precision so that every store returns exactly what was written.
///
/// A leap second (`23:59:60`, which RFC 3339 allows and chrono keeps as a second of 1,000-1,999 ms) becomes the
/// last millisecond of the second before it: it stays in the minute, day and month it was written in, and every
/// store (PostgreSQL, MySQL's DATETIME, SQLite text, Parquet, DynamoDB) holds it. Stores without leap seconds
/// would otherwise move it into the next minute (PostgreSQL, and with it the next month on 31 December) or refuse
/// it (MySQL, error 1292).
pub fn timestamp(at: DateTime<Utc>) -> DateTime<Utc> {
    let at = at.trunc_subsecs(3);
    if at.nanosecond() >= 1_000_000_000 { at.with_nanosecond(999_000_000).unwrap_or(at) } else { at }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2022-10-13T09:30:00.000Z`: the one text form of a time.
pub fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw).ok().map(|t| timestamp(t.with_timezone(&Utc)))
}

pub(crate) mod time_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_time(&raw).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {raw:?}")))
    }
}

/// The highest version a client may name (If-Match, `version`): 18 digits, which an order never reaches and which
/// every store's signed 64-bit integers and every document's patterns hold exactly.
pub const MAX_VERSION: u64 = 999_999_999_999_999_999;

/// 1 on create, +1 on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Version(u64);

impl Version {
    pub const FIRST: Version = Version(1);

    pub fn new(raw: u64) -> Option<Version> {
        (raw >= 1).then_some(Version(raw))
    }

    /// A version as a client writes it in text (If-Match, `consistentWith`): ASCII digits only, 1 to
    /// [`MAX_VERSION`] (leading zeros allowed; no sign, no spaces).
    pub fn parse_text(raw: &str) -> Option<Version> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = raw.trim_start_matches('0');
        if digits.len() > 18 {
            return None;
        }
        digits.parse::<u64>().ok().filter(|n| *n <= MAX_VERSION).and_then(Version::new)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl TryFrom<u64> for Version {
    type Error = String;
    fn try_from(raw: u64) -> Result<Self, String> {
        Version::new(raw).ok_or_else(|| "version must be at least 1".to_owned())
    }
}

impl From<Version> for u64 {
    fn from(v: Version) -> u64 {
        v.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A whole number of units, 1 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub fn new(raw: u32) -> Option<Quantity> {
        (1..=MAX_QUANTITY).contains(&raw).then_some(Quantity(raw))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = String;
    fn try_from(raw: u32) -> Result<Self, String> {
        Quantity::new(raw).ok_or_else(|| format!("quantity must be between 1 and {MAX_QUANTITY}"))
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

/// A non-negative exact price with at most four decimal places, kept normalised (`1.50` is `1.5`) so that
/// every store gives back the same value it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct UnitPrice(Decimal);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("must not be negative")]
    Negative,
    #[error("must have at most {MAX_PRICE_SCALE} decimal places")]
    TooPrecise,
    #[error("must be at most {MAX_UNIT_PRICE}")]
    TooLarge,
}

/// The largest unit price: 14 digits before the point and 4 after, what every store holds exactly (the lake's
/// DECIMAL(18,4); the read models' DECIMAL(19,4)).
pub const MAX_UNIT_PRICE: &str = "99999999999999.9999";

impl UnitPrice {
    pub fn new(raw: Decimal) -> Result<UnitPrice, PriceError> {
        let normal = raw.normalize();
        if normal.is_sign_negative() && !normal.is_zero() {
            return Err(PriceError::Negative);
        }
        if normal.scale() > MAX_PRICE_SCALE {
            return Err(PriceError::TooPrecise);
        }
        if normal > Decimal::new(999_999_999_999_999_999, 4) {
            return Err(PriceError::TooLarge);
        }
        // `normalize` keeps the sign of -0; a price of zero is just zero.
        Ok(UnitPrice(if normal.is_zero() { Decimal::ZERO } else { normal }))
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for UnitPrice {
    type Error = PriceError;
    fn try_from(raw: Decimal) -> Result<Self, PriceError> {
        UnitPrice::new(raw)
    }
}

impl From<UnitPrice> for Decimal {
    fn from(p: UnitPrice) -> Decimal {
        p.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub itemid: ItemId,
    pub quantity: Quantity,
    #[serde(rename = "unitPrice", default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<UnitPrice>,
}

/// The lines of one order: 1 to 100, no item twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OrderLine>", into = "Vec<OrderLine>")]
pub struct Lines(Vec<OrderLine>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    #[error("an order needs at least one line")]
    Empty,
    #[error("an order has at most {MAX_LINES} lines (got {0})")]
    TooMany(usize),
    #[error("item {0} appears more than once")]
    Duplicate(ItemId),
}

impl Lines {
    pub fn new(lines: Vec<OrderLine>) -> Result<Lines, LinesError> {
        if lines.is_empty() {
            return Err(LinesError::Empty);
        }
        if lines.len() > MAX_LINES {
            return Err(LinesError::TooMany(lines.len()));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = lines.iter().find(|l| !seen.insert(&l.itemid)) {
            return Err(LinesError::Duplicate(dup.itemid.clone()));
        }
        Ok(Lines(lines))
    }

    pub fn as_slice(&self) -> &[OrderLine] {
        &self.0
    }

    /// The same lines in item order: two orders with the same content compare equal whatever order the client
    /// listed the lines in.
    pub fn canonical(&self) -> Vec<&OrderLine> {
        let mut sorted: Vec<&OrderLine> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.itemid.cmp(&b.itemid));
        sorted
    }
}

impl TryFrom<Vec<OrderLine>> for Lines {
    type Error = LinesError;
    fn try_from(lines: Vec<OrderLine>) -> Result<Self, LinesError> {
        Lines::new(lines)
    }
}

impl From<Lines> for Vec<OrderLine> {
    fn from(lines: Lines) -> Vec<OrderLine> {
        lines.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Created,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<OrderStatus> {
        match raw {
            "created" => Some(OrderStatus::Created),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// An order as the write model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: OrderId,
    pub items: Lines,
    pub status: OrderStatus,
    #[serde(with = "time_serde")]
    pub order_date: DateTime<Utc>,
    pub version: Version,
    #[serde(with = "time_serde")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "time_serde")]
    pub updated_at: DateTime<Utc>,
}

/// A validated create command: what the client asked for, before the write model has accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDraft {
    pub order_id: OrderId,
    pub lines: Lines,
    /// Set only when the client supplied it (back-fills); otherwise the order is dated when it is accepted.
    pub order_date: Option<DateTime<Utc>>,
}

/// A digest of a create command's content, kept with the order so that a retried create can be told apart from a
/// different order under the same id, even after the order has since been amended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn from_stored(raw: String) -> Fingerprint {
        Fingerprint(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl OrderDraft {
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(self.order_id.as_str().as_bytes());
        for line in self.lines.canonical() {
            h.update([0]);
            h.update(line.itemid.as_str().as_bytes());
            h.update([1]);
            h.update(line.quantity.get().to_be_bytes());
            if let Some(p) = line.unit_price {
                h.update([2]);
                h.update(p.get().to_string().as_bytes());
            }
        }
        if let Some(at) = self.order_date {
            h.update([3]);
            h.update(format_time(&at).as_bytes());
        }
        let digest = h.finalize();
        Fingerprint(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The order this draft becomes when the write model accepts it at `now`.
    pub fn into_order(self, now: DateTime<Utc>) -> Order {
        let now = timestamp(now);
        Order {
            order_id: self.order_id,
            items: self.lines,
            status: OrderStatus::Created,
            order_date: self.order_date.unwrap_or(now),
            version: Version::FIRST,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn line(item: &str, qty: u32) -> OrderLine {
        OrderLine { itemid: ItemId::parse(item).unwrap(), quantity: Quantity::new(qty).unwrap(), unit_price: None }
    }

    #[test]
    fn a_version_in_text_is_digits_from_1_to_the_maximum() {
        assert_eq!(Version::parse_text("3"), Version::new(3));
        assert_eq!(Version::parse_text("0003"), Version::new(3));
        assert_eq!(Version::parse_text("999999999999999999"), Version::new(MAX_VERSION));
        for bad in ["", "0", "000", "+3", "-3", " 3", "3 ", "1e3", "3.0", "1000000000000000000", "18446744073709551616"]
        {
            assert_eq!(Version::parse_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prices_are_normalised_and_bounded() {
        let p = |s: &str| UnitPrice::new(Decimal::from_str(s).unwrap());
        assert_eq!(p("1.50").unwrap().get().to_string(), "1.5");
        assert_eq!(p("1.50000").unwrap().get().to_string(), "1.5");
        assert_eq!(p("-0").unwrap().get(), Decimal::ZERO);
        assert_eq!(p("0.0001").unwrap().get().to_string(), "0.0001");
        assert_eq!(p("0.00001"), Err(PriceError::TooPrecise));
        assert_eq!(p("-0.01"), Err(PriceError::Negative));
        assert_eq!(p(MAX_UNIT_PRICE).unwrap().get().to_string(), MAX_UNIT_PRICE, "the largest every store holds");
        assert_eq!(p("100000000000000"), Err(PriceError::TooLarge));
        assert_eq!(p("79228162514264337593543950335"), Err(PriceError::TooLarge));
    }

    #[test]
    fn lines_are_one_to_a_hundred_without_duplicates() {
        assert_eq!(Lines::new(vec![]), Err(LinesError::Empty));
        let many: Vec<_> = (0..101).map(|i| line(&format!("i{i}"), 1)).collect();
        assert_eq!(Lines::new(many), Err(LinesError::TooMany(101)));
        assert!(matches!(Lines::new(vec![line("a", 1), line("a", 2)]), Err(LinesError::Duplicate(_))));
        assert!(Lines::new(vec![line("a", 1), line("b", 2)]).is_ok());
    }

    #[test]
    fn fingerprint_ignores_line_order_but_not_content() {
        let draft = |lines: Vec<OrderLine>| OrderDraft {
            order_id: OrderId::parse("6119").unwrap(),
            lines: Lines::new(lines).unwrap(),
            order_date: None,
        };
        let a = draft(vec![line("z3333", 6), line("z4444", 3)]);
        let b = draft(vec![line("z4444", 3), line("z3333", 6)]);
        let c = draft(vec![line("z3333", 6), line("z4444", 4)]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn an_order_round_trips_through_its_json_image() {
        let now = timestamp(Utc::now());
        let order = OrderDraft {
            order_id: OrderId::parse("6119").unwrap(),
            lines: Lines::new(vec![OrderLine {
                unit_price: Some(UnitPrice::new(Decimal::from_str("2.25").unwrap()).unwrap()),
                ..line("z3333", 6)
            }])
            .unwrap(),
            order_date: None,
        }
        .into_order(now);
        let json = serde_json::to_string(&order).unwrap();
        assert!(json.contains(r#""unitPrice":"2.25""#), "{json}");
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), order);
    }
}
