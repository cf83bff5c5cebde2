//! Turns a request body into a validated command, reporting every violation (field path and reason) at once.
//! Works on the raw JSON text of each value so that `6.0`, `"6"` and `1e3` are told apart and prices stay exact.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::id::{ItemId, OrderId};
use crate::order::{
    Lines, MAX_LINES, MAX_PRICE_SCALE, MAX_QUANTITY, MAX_VERSION, OrderDraft, OrderLine, Quantity, UnitPrice, Version,
    timestamp,
};

/// How far ahead of acceptance a client-supplied `orderDate` may be.
pub fn max_future() -> Duration {
    Duration::days(1)
}

/// The earliest `orderDate` accepted: every read-model backend and the lake store times from here on exactly
/// (MySQL's DATETIME starts at year 1000; engines differ on dates before the Gregorian calendar of 1582), and no
/// order of a shop is older.
pub const EARLIEST_ORDER_DATE: &str = "1900-01-01T00:00:00Z";

fn earliest_order_date() -> DateTime<Utc> {
    DateTime::from_timestamp(-2_208_988_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON path of the offending value, e.g. `items[2].quantity`; empty for the body itself.
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Violation { field: field.into(), reason: reason.into() });
    }

    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `parts` when every part was read and nothing was reported; otherwise the violations (a part that is
    /// missing was reported where it was read; should one ever not be, the body itself is named, never a panic).
    fn into_result<T>(mut self, parts: Option<T>) -> Result<T, InputError> {
        match parts {
            Some(parts) if self.0.is_empty() => Ok(parts),
            _ => {
                if self.0.is_empty() {
                    self.add("", "is not a valid request");
                }
                Err(InputError::Invalid(self))
            }
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", if v.field.is_empty() { "body" } else { &v.field }, v.reason)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// The body is JSON but breaks the rules.
    #[error("invalid request: {0}")]
    Invalid(Violations),
}

/// A JSON object with its members in order, duplicates kept (so that they can be refused, not silently merged).
struct Object<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Object<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'a RawValue>()? {
                    members.push((k, v));
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "an array",
        Kind::Object => "an object",
    }
}

/// Picks the known members out of an object, recording unknown and repeated ones as violations.
struct Fields<'a> {
    path: String,
    members: Vec<(String, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    fn new(path: &str, obj: Object<'a>, known: &[&str], out: &mut Violations) -> Fields<'a> {
        let mut members: Vec<(String, &'a RawValue)> = Vec::with_capacity(obj.0.len());
        for (name, value) in obj.0 {
            let field = join(path, &name);
            if !known.contains(&name.as_str()) {
                out.add(field, format!("unknown field (expected one of: {})", known.join(", ")));
            } else if members.iter().any(|(n, _)| *n == name) {
                out.add(field, "appears more than once");
            } else {
                members.push((name, value));
            }
        }
        Fields { path: path.to_owned(), members }
    }

    fn take(&self, name: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    fn path(&self, name: &str) -> String {
        join(&self.path, name)
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

fn parse_object<'a>(body: &'a [u8]) -> Result<Result<Object<'a>, Violations>, InputError> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(|e| InputError::Malformed(e.to_string()))?;
    match serde_json::from_str::<Object<'_>>(raw.get()) {
        Ok(obj) => Ok(Ok(obj)),
        Err(_) => {
            let mut v = Violations::default();
            v.add("", not_an_object(raw));
            Ok(Err(v))
        }
    }
}

/// Why `raw` did not read as an object: it is something else, or an object with a member name no string holds.
fn not_an_object(raw: &RawValue) -> String {
    match kind(raw) {
        Kind::Object => "has a member name that is not valid Unicode text (a lone surrogate escape)".to_owned(),
        other => format!("must be a JSON object, not {}", kind_name(other)),
    }
}

fn string(raw: &RawValue, field: &str, out: &mut Violations) -> Option<String> {
    if kind(raw) != Kind::String {
        out.add(field, format!("must be a string, not {}", kind_name(kind(raw))));
        return None;
    }
    match serde_json::from_str::<String>(raw.get()) {
        Ok(text) => Some(text),
        Err(_) => {
            // JSON's own parser takes `"\ud800"`; a lone surrogate is not a character, so no string holds it.
            out.add(field, "must be valid Unicode text (a lone surrogate escape such as \\ud800 is not)");
            None
        }
    }
}

fn id<T>(
    raw: Option<&RawValue>,
    field: &str,
    parse: fn(&str) -> Result<T, crate::IdError>,
    out: &mut Violations,
) -> Option<T> {
    let Some(raw) = raw.filter(|r| kind(r) != Kind::Null) else {
        out.add(field, "is required");
        return None;
    };
    let text = string(raw, field, out)?;
    parse(&text).map_err(|e| out.add(field, e.to_string())).ok()
}

/// An integer literal in `lo..=hi`; fractions, exponents, strings and booleans are refused, not coerced.
fn integer(raw: Option<&RawValue>, field: &str, lo: u64, hi: u64, out: &mut Violations) -> Option<u64> {
    let Some(raw) = raw.filter(|r| kind(r) != Kind::Null) else {
        out.add(field, "is required");
        return None;
    };
    if kind(raw) != Kind::Number {
        out.add(field, format!("must be an integer, not {}", kind_name(kind(raw))));
        return None;
    }
    let text = raw.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        out.add(field, "must be a whole number");
        return None;
    }
    let range = format!("must be between {lo} and {hi}");
    if text.starts_with('-') {
        out.add(field, range);
        return None;
    }
    match text.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            out.add(field, range);
            None
        }
    }
}

fn price(raw: &RawValue, field: &str, out: &mut Violations) -> Option<UnitPrice> {
    let text = match kind(raw) {
        Kind::Number => raw.get().to_owned(),
        Kind::String => string(raw, field, out)?,
        k => {
            out.add(field, format!("must be a decimal number or a decimal string, not {}", kind_name(k)));
            return None;
        }
    };
    let parsed =
        if text.contains(['e', 'E']) { Decimal::from_scientific(&text) } else { Decimal::from_str_exact(&text) };
    let Ok(value) = parsed else {
        out.add(field, "is not a decimal number within range");
        return None;
    };
    UnitPrice::new(value)
        .map_err(|e| out.add(field, format!("{e} (at most {MAX_PRICE_SCALE} decimal places, not negative)")))
        .ok()
}

fn order_date(raw: &RawValue, field: &str, now: DateTime<Utc>, out: &mut Violations) -> Option<DateTime<Utc>> {
    let text = string(raw, field, out)?;
    let parsed = DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDate::from_str(&text).ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()));
    let Some(at) = parsed else {
        out.add(field, "must be an RFC 3339 time with offset (2022-10-13T09:30:00Z) or a date (2022-10-13)");
        return None;
    };
    if at > now + max_future() {
        out.add(field, "must not be more than 1 day in the future");
        return None;
    }
    if at < earliest_order_date() {
        out.add(field, format!("must not be before {EARLIEST_ORDER_DATE}"));
        return None;
    }
    Some(timestamp(at))
}

fn lines(raw: Option<&RawValue>, out: &mut Violations) -> Option<Lines> {
    let Some(raw) = raw.filter(|r| kind(r) != Kind::Null) else {
        out.add("items", "is required");
        return None;
    };
    let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        out.add("items", format!("must be an array, not {}", kind_name(kind(raw))));
        return None;
    };
    let before = out.0.len();
    if elements.is_empty() {
        out.add("items", "must have at least one line");
    }
    if elements.len() > MAX_LINES {
        out.add("items", format!("must have at most {MAX_LINES} lines (got {})", elements.len()));
    }
    let mut parsed: Vec<OrderLine> = Vec::with_capacity(elements.len());
    let mut first_index: Vec<(ItemId, usize)> = Vec::new();
    for (i, element) in elements.iter().enumerate() {
        let path = format!("items[{i}]");
        let Ok(obj) = serde_json::from_str::<Object<'_>>(element.get()) else {
            out.add(path, not_an_object(element));
            continue;
        };
        let f = Fields::new(&path, obj, &["itemid", "quantity", "unitPrice"], out);
        let itemid = id(f.take("itemid"), &f.path("itemid"), ItemId::parse, out);
        let quantity = integer(f.take("quantity"), &f.path("quantity"), 1, MAX_QUANTITY.into(), out)
            .and_then(|q| Quantity::new(u32::try_from(q).ok()?));
        let unit_price = match f.take("unitPrice").filter(|r| kind(r) != Kind::Null) {
            None => Some(None),
            Some(r) => price(r, &f.path("unitPrice"), out).map(Some),
        };
        if let Some(itemid) = &itemid {
            match first_index.iter().find(|(seen, _)| seen == itemid) {
                Some((_, j)) => out.add(f.path("itemid"), format!("duplicate item {itemid} (also at items[{j}])")),
                None => first_index.push((itemid.clone(), i)),
            }
        }
        if let (Some(itemid), Some(quantity), Some(unit_price)) = (itemid, quantity, unit_price) {
            parsed.push(OrderLine { itemid, quantity, unit_price });
        }
    }
    if out.0.len() != before {
        return None;
    }
    // Every rule Lines::new checks was reported above, so it can only succeed here.
    Lines::new(parsed).map_err(|e| out.add("items", e.to_string())).ok()
}

/// Parses the create body `{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}],"orderDate"?:...}`.
pub fn parse_create(body: &[u8], now: DateTime<Utc>) -> Result<OrderDraft, InputError> {
    let obj = match parse_object(body)? {
        Ok(obj) => obj,
        Err(v) => return Err(InputError::Invalid(v)),
    };
    let mut out = Violations::default();
    let f = Fields::new("", obj, &["orderId", "items", "orderDate"], &mut out);
    let order_id = id(f.take("orderId"), "orderId", OrderId::parse, &mut out);
    let lines = lines(f.take("items"), &mut out);
    let order_date = match f.take("orderDate").filter(|r| kind(r) != Kind::Null) {
        None => Some(None),
        Some(r) => order_date(r, "orderDate", now, &mut out).map(Some),
    };
    let parts = match (order_id, lines, order_date) {
        (Some(order_id), Some(lines), Some(order_date)) => Some(OrderDraft { order_id, lines, order_date }),
        _ => None,
    };
    out.into_result(parts)
}

/// A validated amend body: the new lines and, if the body carried one, the version the client read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    pub lines: Lines,
    pub version: Option<Version>,
}

/// Parses the amend body `{"items":[...],"version"?:3,"orderId"?:"6119"}`; an `orderId`, if present, must be the
/// one in the path.
pub fn parse_amendment(body: &[u8], path_id: &OrderId) -> Result<Amendment, InputError> {
    let obj = match parse_object(body)? {
        Ok(obj) => obj,
        Err(v) => return Err(InputError::Invalid(v)),
    };
    let mut out = Violations::default();
    let f = Fields::new("", obj, &["orderId", "items", "version"], &mut out);
    if let Some(raw) = f.take("orderId").filter(|r| kind(r) != Kind::Null)
        && let Some(given) = string(raw, "orderId", &mut out)
        && given != path_id.as_str()
    {
        out.add("orderId", "must match the order id in the path");
    }
    let lines = lines(f.take("items"), &mut out);
    let version = match f.take("version").filter(|r| kind(r) != Kind::Null) {
        None => Some(None),
        Some(r) => integer(Some(r), "version", 1, MAX_VERSION, &mut out).and_then(Version::new).map(Some),
    };
    let parts = match (lines, version) {
        (Some(lines), Some(version)) => Some(Amendment { lines, version }),
        _ => None,
    };
    out.into_result(parts)
}

#[cfg(test)]
mod tests;
