//! The two reports over HTTP: their parameters, read-your-writes (`consistentWith`), answers kept per read-model
//! epoch, and the caching headers (`ETag`, `X-Projection-Position`).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{ItemId, OrderId, Version};
use read_model::{Cursor, Epoch, ItemQuery, ItemSort, ReadAt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use web::envelope::ErrorBody;

use crate::error::QueryError;
use crate::state::{AppState, Cached};
use crate::wire::{ItemSales, MonthlySales};

/// The most rows one page of the item report may ask for.
pub const MAX_LIMIT: usize = 1_000;
/// The header naming the projection positions an answer was read at.
pub const POSITION_HEADER: &str = "x-projection-position";

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
            let version = Version::parse_text(version)?;
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

/// `W/"…"` from the request and the read model's epoch: equal tags, equal answers.
fn etag(key: &str, epoch: Epoch) -> String {
    let digest = Sha256::digest(format!("{}\n{key}", epoch.0));
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

/// The request as a cache key: path and parameters in order, without `consistentWith` (a wait, not content).
fn cache_key(path: &str, pairs: &[(String, String)]) -> String {
    let mut kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "consistentWith").collect();
    kept.sort();
    let query = kept.iter().fold(url::form_urlencoded::Serializer::new(String::new()), |mut s, (k, v)| {
        s.append_pair(k, v);
        s
    });
    format!("{path}?{}", { query }.finish())
}

/// A report answer: 304 when the client's ETag is current, else the kept answer for this epoch, else
/// `compute`d (and kept). Every answer says what it was read at; none is older than the request.
async fn report<F, Fut>(state: &AppState, headers: &HeaderMap, key: String, compute: F) -> Result<Response, QueryError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(Bytes, ReadAt, Option<String>), QueryError>>,
{
    let revalidating = headers.contains_key(header::IF_NONE_MATCH);
    if revalidating || state.settings.cache_entries > 0 {
        let now = state.model.read_at().await?;
        if revalidating && if_none_match(headers, &etag(&key, now.epoch)) {
            return Ok(answer(StatusCode::NOT_MODIFIED, Bytes::new(), &key, &now, None));
        }
        if let Some(hit) = state.cached(&key, now.epoch) {
            return Ok(answer(StatusCode::OK, hit.body, &key, &hit.read_at, hit.link.as_deref()));
        }
    }
    let (body, read_at, link) = compute().await?;
    let response = answer(StatusCode::OK, body.clone(), &key, &read_at, link.as_deref());
    state.keep(Cached { key, read_at, body, link });
    Ok(response)
}

fn answer(status: StatusCode, body: Bytes, key: &str, read_at: &ReadAt, link: Option<&str>) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    if status == StatusCode::OK {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    // Answers reflect a projection that moves; clients revalidate (cheaply, by ETag) each time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in [
        (header::ETAG, Some(etag(key, read_at.epoch))),
        (header::HeaderName::from_static(POSITION_HEADER), Some(read_at.header_value().to_owned())),
        (header::LINK, link.map(str::to_owned)),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(name, v);
        }
    }
    response
}

fn json_bytes(body: &impl Serialize) -> Result<Bytes, QueryError> {
    json_bytes_sized(body, 128)
}

/// `body` as JSON, into a buffer of `capacity` bytes to start with (a large report then grows it rarely, if at all).
fn json_bytes_sized(body: &impl Serialize, capacity: usize) -> Result<Bytes, QueryError> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, body).map_err(|e| QueryError::Internal(format!("serialising: {e}")))?;
    Ok(Bytes::from(out))
}

/// The query parameters of `GET /itemSalesReport` (documentation; they are parsed strictly from the raw query).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ItemReportParams {
    /// Sort key: itemid (default), totalordered, totalrevenue, ordercount or lastorderdate; itemid breaks ties.
    /// Items with no known price sort by totalrevenue as 0.
    #[param(pattern = "^(itemid|totalordered|totalrevenue|ordercount|lastorderdate)$")]
    sort: Option<String>,
    /// asc (default) or desc.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// Page size, 1-1000; without it the whole report comes back.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: copy it from the previous page's `Link: <...>; rel="next"` (opaque; one made for
    /// another sort is refused).
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// `<orderId>:<version>` (repeatable): answer only once that version (from the command API) is projected,
    /// waiting up to 5 s, else 503.
    #[param(rename = "consistentWith", inline, value_type = Option<Vec<ConsistentWith>>)]
    consistent_with: Option<Vec<String>>,
}

/// `<orderId>:<version>`: an order id and a version a command returned (1 to 999999999999999999).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,64}:0*[1-9][0-9]{0,17}$", example = "6119:1")]
#[allow(dead_code)]
struct ConsistentWith(String);

/// The query parameter of `GET /monthlySalesByItem/{itemid}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct MonthlyParams {
    /// `<orderId>:<version>` (repeatable), as for the item report.
    #[param(rename = "consistentWith", inline, value_type = Option<Vec<ConsistentWith>>)]
    consistent_with: Option<Vec<String>>,
}

#[utoipa::path(
    get,
    path = "/itemSalesReport",
    description = "Per item: units ordered, revenue where prices are known, order count and last order date, over \
                   orders that count (not cancelled, not removed). Read from aggregates the projector maintains.",
    params(ItemReportParams),
    responses(
        (status = 200, description = "The report, or one page of it", body = Vec<ItemSales>, headers(
            ("ETag" = String, description = "Changes with the projection position and the request"),
            ("X-Projection-Position" = String, description = "`source=sequence` pairs the answer was read at"),
            ("Link" = String, description = "`<next page URL>; rel=\"next\"` when more rows follow"),
            ("Cache-Control" = String, description = "no-cache: revalidate with If-None-Match"),
        )),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 400, description = "A parameter is malformed, unknown or repeated", body = ErrorBody),
        (status = 405, description = "Only GET", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The read model is unavailable, or consistentWith was not met in time",
            body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn item_report(
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
    let key = cache_key("/itemSalesReport", &pairs);
    report(&state, &headers, key, || async {
        let page = state.model.item_report(&ItemQuery { sort, descending, limit, after }).await?;
        let link = match (&page.next, limit) {
            (Some(next), Some(limit)) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("sort", sort.as_str())
                    .append_pair("order", if descending { "desc" } else { "asc" })
                    .append_pair("limit", &limit.to_string())
                    .append_pair("cursor", &next.encode())
                    .finish();
                Some(format!("</itemSalesReport?{query}>; rel=\"next\""))
            }
            _ => None,
        };
        let body: Vec<ItemSales> = page.rows.iter().map(ItemSales::from).collect();
        // ~114 bytes an item in practice; 128 leaves room for longer ids and totals.
        Ok((json_bytes_sized(&body, 2 + 128 * body.len())?, page.read_at, link))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/monthlySalesByItem/{itemid}",
    description = "Units of one item per UTC month, newest first, over orders that count. Unknown item: [].",
    params(("itemid" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ : - (anything else is a 400)",
            pattern = "^[A-Za-z0-9._:-]{1,64}$"),
           MonthlyParams),
    responses(
        (status = 200, description = "The months", body = Vec<MonthlySales>, headers(
            ("ETag" = String, description = "Changes with the projection position and the request"),
            ("X-Projection-Position" = String, description = "`source=sequence` pairs the answer was read at"),
            ("Cache-Control" = String, description = "no-cache: revalidate with If-None-Match"),
        )),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 400, description = "The itemid breaks the id rules, or a parameter is malformed", body = ErrorBody),
        (status = 405, description = "Only GET", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The read model is unavailable, or consistentWith was not met in time",
            body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn monthly_report(
    State(state): State<AppState>,
    Path(raw_item): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let pairs = params(raw.as_deref(), &["consistentWith"], &["consistentWith"])?;
    let item = ItemId::parse(&raw_item).map_err(|e| QueryError::bad("invalid_itemid", format!("itemid: {e}")))?;
    await_consistency(&state, &pairs).await?;
    let key = cache_key(&format!("/monthlySalesByItem/{item}"), &pairs);
    report(&state, &headers, key, || async {
        let (rows, read_at) = state.model.monthly_report(&item).await?;
        let body: Vec<MonthlySales> = rows.iter().map(MonthlySales::from).collect();
        Ok((json_bytes(&body)?, read_at, None))
    })
    .await
}
