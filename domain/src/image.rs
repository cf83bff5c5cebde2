//! The order's image as the write store keeps it: an attribute map in DynamoDB's data model (lines as a native
//! list of maps, numbers as decimal text). The DynamoDB adapter and every stream decoder convert their SDK's
//! attribute type to `Attr` and use this one codec, so the stored shape is defined once.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::id::{ItemId, OrderId};
use crate::order::{
    Fingerprint, Lines, Order, OrderLine, OrderStatus, Quantity, UnitPrice, Version, format_time, parse_time,
};

/// A DynamoDB attribute value, reduced to the types an order image uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    S(String),
    /// A number, as the decimal text DynamoDB sends.
    N(String),
    L(Vec<Attr>),
    M(HashMap<String, Attr>),
    Bool(bool),
    Null,
    /// Any other type (binary, sets): never written by us, so refused when read.
    Other(&'static str),
}

pub type Item = HashMap<String, Attr>;

pub const KEY: &str = "orderId";
pub const VERSION: &str = "version";
pub const STATUS: &str = "status";
pub const ORDER_DATE: &str = "orderDate";
pub const CREATED_AT: &str = "createdAt";
pub const UPDATED_AT: &str = "updatedAt";
pub const ITEMS: &str = "items";
pub const CREATE_HASH: &str = "createHash";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored order image is invalid: {field}: {reason}")]
pub struct ImageError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ImageError {
    ImageError { field: field.into(), reason: reason.into() }
}

pub fn to_item(order: &Order, fingerprint: &Fingerprint) -> Item {
    let lines = order
        .items
        .as_slice()
        .iter()
        .map(|l| {
            let mut m = HashMap::from([
                ("itemid".to_owned(), Attr::S(l.itemid.to_string())),
                ("quantity".to_owned(), Attr::N(l.quantity.get().to_string())),
            ]);
            if let Some(p) = l.unit_price {
                m.insert("unitPrice".to_owned(), Attr::N(p.get().to_string()));
            }
            Attr::M(m)
        })
        .collect();
    HashMap::from([
        (KEY.to_owned(), Attr::S(order.order_id.to_string())),
        (VERSION.to_owned(), Attr::N(order.version.get().to_string())),
        (STATUS.to_owned(), Attr::S(order.status.as_str().to_owned())),
        (ORDER_DATE.to_owned(), Attr::S(format_time(&order.order_date))),
        (CREATED_AT.to_owned(), Attr::S(format_time(&order.created_at))),
        (UPDATED_AT.to_owned(), Attr::S(format_time(&order.updated_at))),
        (ITEMS.to_owned(), Attr::L(lines)),
        (CREATE_HASH.to_owned(), Attr::S(fingerprint.as_str().to_owned())),
    ])
}

fn get<'a>(m: &'a HashMap<String, Attr>, path: &str, name: &str) -> Result<&'a Attr, ImageError> {
    m.get(name).ok_or_else(|| bad(format!("{path}{name}"), "missing"))
}

fn s<'a>(m: &'a HashMap<String, Attr>, path: &str, name: &str) -> Result<&'a str, ImageError> {
    match get(m, path, name)? {
        Attr::S(v) => Ok(v),
        other => Err(bad(format!("{path}{name}"), format!("expected a string, found {other:?}"))),
    }
}

fn n<'a>(m: &'a HashMap<String, Attr>, path: &str, name: &str) -> Result<&'a str, ImageError> {
    match get(m, path, name)? {
        Attr::N(v) => Ok(v),
        other => Err(bad(format!("{path}{name}"), format!("expected a number, found {other:?}"))),
    }
}

fn time(m: &HashMap<String, Attr>, name: &str) -> Result<chrono::DateTime<chrono::Utc>, ImageError> {
    let raw = s(m, "", name)?;
    parse_time(raw).ok_or_else(|| bad(name, format!("not an RFC 3339 time: {raw:?}")))
}

/// Reads an order image; the fingerprint is absent in images written by other tools.
pub fn from_item(item: &Item) -> Result<(Order, Option<Fingerprint>), ImageError> {
    let order_id = OrderId::parse(s(item, "", KEY)?).map_err(|e| bad(KEY, e.to_string()))?;
    let version = n(item, "", VERSION)?
        .parse::<u64>()
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| bad(VERSION, "not a positive integer"))?;
    let status = OrderStatus::parse(s(item, "", STATUS)?).ok_or_else(|| bad(STATUS, "not created or cancelled"))?;
    let Attr::L(raw_lines) = get(item, "", ITEMS)? else {
        return Err(bad(ITEMS, "expected a list"));
    };
    let mut lines = Vec::with_capacity(raw_lines.len());
    for (i, raw) in raw_lines.iter().enumerate() {
        let path = format!("{ITEMS}[{i}].");
        let Attr::M(m) = raw else {
            return Err(bad(format!("{ITEMS}[{i}]"), "expected a map"));
        };
        let itemid = ItemId::parse(s(m, &path, "itemid")?).map_err(|e| bad(format!("{path}itemid"), e.to_string()))?;
        let quantity = n(m, &path, "quantity")?
            .parse::<u32>()
            .ok()
            .and_then(Quantity::new)
            .ok_or_else(|| bad(format!("{path}quantity"), "out of range"))?;
        let unit_price = match m.get("unitPrice") {
            None | Some(Attr::Null) => None,
            Some(Attr::N(raw)) => Some(
                Decimal::from_str(raw)
                    .ok()
                    .and_then(|d| UnitPrice::new(d).ok())
                    .ok_or_else(|| bad(format!("{path}unitPrice"), "not a valid price"))?,
            ),
            Some(other) => return Err(bad(format!("{path}unitPrice"), format!("expected a number, found {other:?}"))),
        };
        lines.push(OrderLine { itemid, quantity, unit_price });
    }
    let items = Lines::new(lines).map_err(|e| bad(ITEMS, e.to_string()))?;
    let fingerprint = match item.get(CREATE_HASH) {
        Some(Attr::S(h)) => Some(Fingerprint::from_stored(h.clone())),
        _ => None,
    };
    let order = Order {
        order_id,
        items,
        status,
        order_date: time(item, ORDER_DATE)?,
        version,
        created_at: time(item, CREATED_AT)?,
        updated_at: time(item, UPDATED_AT)?,
    };
    Ok((order, fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::parse_create;

    #[test]
    fn an_order_round_trips_through_its_item() {
        let now = chrono::Utc::now();
        let draft = parse_create(
            br#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6,"unitPrice":"1.25"},{"itemid":"z4444","quantity":3}]}"#,
            now,
        )
        .unwrap();
        let fp = draft.fingerprint();
        let order = draft.into_order(now);
        let item = to_item(&order, &fp);
        let Attr::L(lines) = &item[ITEMS] else { panic!("lines are a native list") };
        assert!(matches!(&lines[0], Attr::M(m) if m["quantity"] == Attr::N("6".into())));
        assert_eq!(from_item(&item).unwrap(), (order, Some(fp)));
    }

    #[test]
    fn a_damaged_item_is_refused_with_the_field_named() {
        let now = chrono::Utc::now();
        let draft = parse_create(br#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#, now).unwrap();
        let fp = draft.fingerprint();
        let mut item = to_item(&draft.into_order(now), &fp);
        item.insert(ITEMS.into(), Attr::L(vec![Attr::M(HashMap::from([("itemid".into(), Attr::S("z".into()))]))]));
        assert_eq!(from_item(&item).unwrap_err().field, "items[0].quantity");
        item.insert(VERSION.into(), Attr::S("1".into()));
        assert_eq!(from_item(&item).unwrap_err().field, VERSION);
    }
}
