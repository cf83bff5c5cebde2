//! The order's image as the write store keeps it: an attribute map in DynamoDB's data model (lines as a native
//! list of maps, numbers as decimal text), defined once for the table and for every stream decoder. Each SDK's
//! attribute type (the DynamoDB client's, the Streams client's, the Lambda event's) converts to `Attr` by the one
//! macro at the end (`attr_conversions!`); the Streams and Lambda ones behind the features `streams` and
//! `lambda-events`, for the change feed.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use domain::order::{format_time, parse_time};
use domain::{Fingerprint, ItemId, Lines, Order, OrderId, OrderLine, OrderStatus, Quantity, UnitPrice, Version};

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

/// `From` between `Attr` and one SDK's attribute type (same variant names across the AWS crates), and the item
/// conversions.
macro_rules! attr_conversions {
    ($module:ident, $ty:path) => {
        pub mod $module {
            use std::collections::HashMap;

            use super::{Attr, Item};
            use $ty as Value;

            pub fn from(a: &Value) -> Attr {
                match a {
                    Value::S(s) => Attr::S(s.clone()),
                    Value::N(n) => Attr::N(n.clone()),
                    Value::L(l) => Attr::L(l.iter().map(from).collect()),
                    Value::M(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), from(v))).collect()),
                    Value::Bool(b) => Attr::Bool(*b),
                    Value::Null(_) => Attr::Null,
                    _ => Attr::Other("binary or set"),
                }
            }

            pub fn item(item: &HashMap<String, Value>) -> Item {
                item.iter().map(|(k, v)| (k.clone(), from(v))).collect()
            }
        }
    };
}

attr_conversions!(sdk, aws_sdk_dynamodb::types::AttributeValue);
#[cfg(feature = "streams")]
attr_conversions!(streams, aws_sdk_dynamodbstreams::types::AttributeValue);
#[cfg(feature = "lambda-events")]
attr_conversions!(lambda_event, serde_dynamo::AttributeValue);

/// An item as the DynamoDB client reads it.
pub fn item_from_aws(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Item {
    sdk::item(item)
}

/// An item as the DynamoDB client writes it.
pub fn item_to_aws(item: &Item) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    fn to_aws(a: &Attr) -> aws_sdk_dynamodb::types::AttributeValue {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        match a {
            Attr::S(s) => V::S(s.clone()),
            Attr::N(n) => V::N(n.clone()),
            Attr::L(l) => V::L(l.iter().map(to_aws).collect()),
            Attr::M(m) => V::M(m.iter().map(|(k, v)| (k.clone(), to_aws(v))).collect()),
            Attr::Bool(b) => V::Bool(*b),
            Attr::Null | Attr::Other(_) => V::Null(true),
        }
    }
    item.iter().map(|(k, v)| (k.clone(), to_aws(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::validation::parse_create;

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
