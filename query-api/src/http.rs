//! The HTTP surface: routes, parameters, read-your-writes and caching headers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Datelike, NaiveDate, Utc};
use domain::{ItemId, OrderId, Version};
use projector::ReadModel;
use projector::read_model::{Cursor, ItemQuery, ItemRow, ItemSort, MonthRow, ReadAt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::QueryError;

/// The most rows one page of the item report may ask for.
pub const MAX_LIMIT: usize = 1_000;
/// The header naming the projection positions an answer was read at.
pub const POSITION_HEADER: &str = "x-projection-position";

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a request with `consistentWith` waits for the projection before answering 503.
    pub consistency_wait: Duration,
    /// How often it looks again meanwhile.
    pub poll_every: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { consistency_wait: Duration::from_secs(5), poll_every: Duration::from_millis(10) }
    }
}

#[derive(Clone)]
struct AppState {
    model: Arc<ReadModel>,
    settings: Settings,
}

pub fn app(model: Arc<ReadModel>, settings: Settings) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/itemSalesReport", get(item_report))
        .route("/monthlySalesByItem/{itemid}", get(monthly_report))
        .route("/projection/status", get(status))
        .fallback(|| async { QueryError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { QueryError::MethodNotAllowed })
        .with_state(AppState { model, settings })
}

async fn health(State(state): State<AppState>) -> Result<Json<Value>, QueryError> {
    state.model.positions().await?;
    Ok(Json(json!({"status": "ok"})))
}

/// The query string as (key, value) pairs, refusing keys outside `allowed` and repeats of all but `repeatable`.
fn params(raw: Option<&str>, allowed: &[&str], repeatable: &[&str]) -> Result<Vec<(String, String)>, QueryError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut seen = BTreeSet::new();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(QueryError::bad(
                "unknown_parameter",
                format!("unknown query parameter {k:?}; this endpoint takes: {}", allowed.join(", ")),
            ));
        }
        if !repeatable.contains(&k.as_str()) && !seen.insert(k.as_str()) {
            return Err(QueryError::bad("repeated_parameter", format!("query parameter {k:?} given more than once")));
        }
    }
    Ok(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Waits until every `consistentWith=<orderId>:<version>` is projected (that version or a newer one, live or
/// removed), or answers 503 once the configured bound has passed.
async fn await_consistency(state: &AppState, pairs: &[(String, String)]) -> Result<(), QueryError> {
    let mut wanted: Vec<(OrderId, Version)> = Vec::new();
    for (_, raw) in pairs.iter().filter(|(k, _)| k == "consistentWith") {
        let parsed = raw.rsplit_once(':').and_then(|(order, version)| {
            let order = OrderId::parse(order).ok()?;
            let version = version.parse::<u64>().ok().and_then(Version::new)?;
            Some((order, version))
        });
        wanted.push(parsed.ok_or_else(|| {
            QueryError::bad(
                "invalid_consistent_with",
                format!("consistentWith={raw:?} must be <orderId>:<version>, the version a command returned"),
            )
        })?);
    }
    let deadline = tokio::time::Instant::now() + state.settings.consistency_wait;
    for (order, version) in wanted {
        loop {
            let projected = state.model.projected_version(&order).await?;
            if projected.is_some_and(|p| p.0 >= version) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QueryError::NotYetConsistent { order: order.to_string(), version: version.get() });
            }
            tokio::time::sleep(state.settings.poll_every).await;
        }
    }
    Ok(())
}

/// `W/"…"` from the positions read at and the request: the same answer for the same pair.
fn etag(read_at: &ReadAt, request: &str) -> String {
    let digest = Sha256::digest(format!("{}\n{request}", read_at.header_value()));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == tag || t.trim() == "*")
}

/// The answer with its position, `ETag` and revalidation headers, or 304 when the client holds it already.
fn respond(
    headers: &HeaderMap,
    read_at: &ReadAt,
    request: &str,
    body: Value,
    extra: Option<(header::HeaderName, String)>,
) -> Response {
    let tag = etag(read_at, request);
    let mut response = if if_none_match(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(body).into_response()
    };
    let h = response.headers_mut();
    // Answers reflect the projection at a position that moves; clients revalidate (cheaply, by ETag) each time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(read_at.header_value()) {
        h.insert(POSITION_HEADER, v);
    }
    if let Some((name, value)) = extra
        && let Ok(v) = HeaderValue::from_str(&value)
    {
        h.insert(name, v);
    }
    response
}

fn item_json(row: &ItemRow) -> Value {
    json!({
        "itemid": row.itemid.as_str(),
        "totalordered": row.totalordered,
        "totalrevenue": row.totalrevenue.normalize().to_string(),
        "ordercount": row.ordercount,
        "lastorderdate": row.lastorderdate.map(|d| d.format("%Y-%m-%d").to_string()),
    })
}

async fn item_report(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let pairs = params(raw.as_deref(), &["sort", "order", "limit", "cursor", "consistentWith"], &["consistentWith"])?;
    let sort = match one(&pairs, "sort") {
        None => ItemSort::ItemId,
        Some(s) => ItemSort::parse(s).ok_or_else(|| {
            let names: Vec<&str> = ItemSort::ALL.iter().map(|s| s.as_str()).collect();
            QueryError::bad("invalid_sort", format!("sort={s:?} must be one of {}", names.join(", ")))
        })?,
    };
    let descending = match one(&pairs, "order") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => return Err(QueryError::bad("invalid_order", format!("order={o:?} must be asc or desc"))),
    };
    let limit = match one(&pairs, "limit") {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=MAX_LIMIT) => Some(n),
            _ => {
                return Err(QueryError::bad("invalid_limit", format!("limit={l:?} must be an integer 1-{MAX_LIMIT}")));
            }
        },
    };
    let after = match one(&pairs, "cursor") {
        None => None,
        Some(c) => Some(Cursor::decode(sort, c).ok_or_else(|| {
            QueryError::bad(
                "invalid_cursor",
                "cursor is not one this report issued for this sort; start again without it",
            )
        })?),
    };
    if after.is_some() && limit.is_none() {
        return Err(QueryError::bad("invalid_cursor", "cursor pages need a limit"));
    }
    await_consistency(&state, &pairs).await?;
    let page = state.model.item_report(&ItemQuery { sort, descending, limit, after }).await?;
    let link = match (&page.next, limit) {
        (Some(next), Some(limit)) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("sort", sort.as_str())
                .append_pair("order", if descending { "desc" } else { "asc" })
                .append_pair("limit", &limit.to_string())
                .append_pair("cursor", &next.encode())
                .finish();
            Some((header::LINK, format!("</itemSalesReport?{query}>; rel=\"next\"")))
        }
        _ => None,
    };
    let body = Value::Array(page.rows.iter().map(item_json).collect());
    let request = format!("/itemSalesReport?{}", raw.unwrap_or_default());
    Ok(respond(&headers, &page.read_at, &request, body, link))
}

fn month_json(row: &MonthRow) -> Value {
    let (y, m) = row.month.as_str().split_once('-').unwrap_or(("", ""));
    let name = y
        .parse::<i32>()
        .ok()
        .zip(m.parse::<u32>().ok())
        .and_then(|(y, m)| NaiveDate::from_ymd_opt(y, m, 1))
        .map(|d| format!("{} {}", d.format("%B"), d.year()));
    json!({"monthyear": name, "month": row.month.as_str(), "monthlyordered": row.monthlyordered})
}

async fn monthly_report(
    State(state): State<AppState>,
    Path(raw_item): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let pairs = params(raw.as_deref(), &["consistentWith"], &["consistentWith"])?;
    let item = ItemId::parse(&raw_item).map_err(|e| QueryError::bad("invalid_itemid", format!("itemid: {e}")))?;
    await_consistency(&state, &pairs).await?;
    let (rows, read_at) = state.model.monthly_report(&item).await?;
    let body = Value::Array(rows.iter().map(month_json).collect());
    let request = format!("/monthlySalesByItem/{item}?{}", raw.unwrap_or_default());
    Ok(respond(&headers, &read_at, &request, body, None))
}

async fn status(State(state): State<AppState>) -> Result<Response, QueryError> {
    let now = Utc::now();
    let secs = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1_000.0;
    let sources: Vec<Value> = state
        .model
        .positions()
        .await?
        .iter()
        .map(|p| {
            json!({
                "source": p.source,
                "sequence": p.sequence.as_str(),
                "lastChangedAt": domain::order::format_time(&p.last_changed_at),
                "appliedAt": domain::order::format_time(&p.applied_at),
                // How long the last applied change took to reach the read model.
                "lagSeconds": secs(p.applied_at - p.last_changed_at),
                // How old the newest projected change is (grows while nothing is written, too).
                "secondsSinceLastChange": secs(now - p.last_changed_at),
            })
        })
        .collect();
    let mut response = Json(json!({ "sources": sources })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
