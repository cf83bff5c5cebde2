//! The wire shapes of the command API's OpenAPI 3.1 document (`http::ApiDoc`, whose paths come from the handlers'
//! `#[utoipa::path]` annotations). Request bodies are validated from the raw JSON
//! (`domain::validation`, which reports every violation), so these types describe the wire; they parse nothing.

use serde::Serialize;
use utoipa::ToSchema;

/// `POST /orders` (and `POST /`): the earlier version's shape, plus optional prices and date.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrder {
    /// 1-64 of A-Z a-z 0-9 . _ : -
    #[schema(example = "6119")]
    pub order_id: String,
    /// RFC 3339 with offset, or a bare date (midnight UTC); at most 1 day ahead. Default: now.
    #[schema(example = "2022-10-13")]
    pub order_date: Option<String>,
    /// 1-100 lines, no item twice.
    pub items: Vec<Line>,
}

#[derive(Serialize, ToSchema)]
pub struct Line {
    /// 1-64 of A-Z a-z 0-9 . _ : -
    #[schema(example = "z3333")]
    pub itemid: String,
    /// A whole number 1-1,000,000 (6.0, "6" and 1e3 are refused).
    #[schema(example = 6, minimum = 1, maximum = 1000000)]
    pub quantity: u32,
    /// Exact decimal ≥ 0 with at most 4 places, as a JSON number or string; kept exact.
    #[serde(rename = "unitPrice")]
    #[schema(value_type = Option<String>, example = "2.50")]
    pub unit_price: Option<String>,
}

/// `PUT /orders/{orderId}`: the new lines; the version read goes in `If-Match` or here.
#[derive(Serialize, ToSchema)]
pub struct AmendOrder {
    pub items: Vec<Line>,
    /// The version the change is based on (instead of `If-Match`; both must agree if both are given).
    pub version: Option<u64>,
}

/// What a command did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// orderCreated, orderAmended or orderCancelled.
    #[schema(example = "orderCreated")]
    pub command_result: String,
    #[schema(example = "6119")]
    pub order_id: String,
    /// The order's version after the command: pass it as `consistentWith=<orderId>:<version>` to the query API.
    #[schema(example = 1)]
    pub version: u64,
}

/// An order as stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub items: Vec<Line>,
    /// created or cancelled.
    #[schema(example = "created")]
    pub status: String,
    /// UTC, milliseconds.
    #[schema(example = "2022-10-13T00:00:00.000Z")]
    pub order_date: String,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// embedded or dynamodb.
    pub store: String,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: e.g. validation_failed, version_conflict, order_exists, unavailable.
    pub code: String,
    pub message: String,
    /// One per violated rule (validation), else empty.
    pub details: Vec<FieldError>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the value, e.g. `items[2].quantity`.
    pub field: String,
    pub reason: String,
}
