//! The wire shapes of the command API's OpenAPI 3.1 document (`http::ApiDoc`, whose paths come from the handlers'
//! `#[utoipa::path]` annotations). Request bodies are validated from the raw JSON
//! (`domain::validation`, which reports every violation), so these types describe the wire; they parse nothing.
//! Every rule the server enforces that JSON Schema can state is stated here; the rest (an item at most once per
//! order, an order date from 1900 to a day ahead, `version` agreeing with `If-Match`) is in the descriptions.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, Schema};

/// A schema from its JSON form (constant, so it always parses; an empty schema otherwise, which the tests of the
/// document would show).
fn schema(json: serde_json::Value) -> Schema {
    serde_json::from_value(json).unwrap_or_else(|_| Schema::Object(Object::default()))
}

/// `orderDate`: RFC 3339 with offset, or a bare date; null or absent for now.
fn order_date_schema() -> Schema {
    schema(serde_json::json!({
        "oneOf": [
            { "type": "string", "format": "date-time" },
            { "type": "string", "format": "date" },
            { "type": "null" }
        ],
        "description": "RFC 3339 with offset, or a bare date (midnight UTC); from 1900-01-01 to at most 1 day ahead. \
                        A leap second (23:59:60) is the last millisecond of the second before. Null or absent: now.",
        "examples": ["2022-10-13", "2022-10-13T09:30:00Z"]
    }))
}

/// `unitPrice`: an exact decimal, as a string or a number, or null/absent for unknown.
fn unit_price_schema() -> Schema {
    schema(serde_json::json!({
        "oneOf": [
            { "type": "string", "pattern": "^(0|[1-9][0-9]{0,13})(\\.[0-9]{1,4})?$" },
            { "type": "number", "minimum": 0, "exclusiveMaximum": 100_000_000_000_000_u64, "multipleOf": 0.0001 },
            { "type": "null" }
        ],
        "description": "Exact decimal from 0 to 99999999999999.9999 with at most 4 places, as a string (kept exact) \
                        or a JSON number (read from its text, not as a float); null or absent: unknown.",
        "examples": ["2.50"]
    }))
}

/// `POST /orders` (and `POST /`): the sample's shape, plus optional prices and date.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrder {
    /// 1-64 of A-Z a-z 0-9 . _ : -
    #[schema(example = "6119", pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub order_id: String,
    #[schema(schema_with = order_date_schema)]
    pub order_date: Option<String>,
    /// 1-100 lines, no item twice.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<Line>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// 1-64 of A-Z a-z 0-9 . _ : -
    #[schema(example = "z3333", pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub itemid: String,
    /// A whole number 1-1,000,000 (6.0, "6" and 1e3 are refused).
    #[schema(example = 6, minimum = 1, maximum = 1000000)]
    pub quantity: u32,
    #[serde(rename = "unitPrice")]
    #[schema(schema_with = unit_price_schema)]
    pub unit_price: Option<String>,
}

/// `PUT /orders/{orderId}`: the new lines; the version read goes in `If-Match` or here.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AmendOrder {
    /// If present, the order id of the path.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$", nullable)]
    pub order_id: Option<String>,
    /// 1-100 lines, no item twice.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<Line>,
    /// The version the change is based on (instead of `If-Match`; both must agree if both are given; one of the
    /// two is required).
    #[schema(minimum = 1, maximum = 999999999999999999_u64, nullable)]
    pub version: Option<u64>,
}

/// What a command did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandResult {
    /// orderCreated, orderAmended or orderCancelled.
    #[schema(example = "orderCreated")]
    pub command_result: String,
    #[schema(example = "6119")]
    pub order_id: String,
    /// The order's version after the command: pass it as `consistentWith=<orderId>:<version>` to the query API.
    #[schema(example = 1, minimum = 1)]
    pub version: u64,
}

/// A line as stored: its price as exact text, absent when unknown.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredLine {
    #[schema(example = "z3333")]
    pub itemid: String,
    #[schema(example = 6, minimum = 1, maximum = 1000000)]
    pub quantity: u32,
    #[serde(rename = "unitPrice")]
    #[schema(example = "2.5", pattern = "^(0|[1-9][0-9]{0,13})(\\.[0-9]{1,4})?$")]
    pub unit_price: Option<String>,
}

/// An order as stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    pub order_id: String,
    pub items: Vec<StoredLine>,
    /// created or cancelled.
    #[schema(example = "created", pattern = "^(created|cancelled)$")]
    pub status: String,
    /// UTC, milliseconds.
    #[schema(example = "2022-10-13T00:00:00.000Z", format = DateTime)]
    pub order_date: String,
    #[schema(minimum = 1)]
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// embedded or dynamodb.
    pub store: String,
}
