//! The HTTP surface: routes, parameters, read-your-writes and caching headers.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Datelike, NaiveDate};
use domain::{ItemId, OrderId, Version};
use read_model::ReadModel;
use read_model::{Cursor, Epoch, ItemQuery, ItemRow, ItemSort, MonthRow, ReadAt};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::QueryError;
use crate::settings::Settings;
use crate::status::{FeedWatch, RecordedBacklogs};
use web::envelope::{ErrorBody, ErrorDetail, FieldError};

/// Largest accepted request body: a `/queries` submission of the longest statement the guard takes, escaped.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most rows one page of the item report may ask for.
pub const MAX_LIMIT: usize = 1_000;
/// The header naming the projection positions an answer was read at.
pub const POSITION_HEADER: &str = "x-projection-position";

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) model: Arc<ReadModel>,
    pub(crate) settings: Settings,
    cache: Arc<Mutex<VecDeque<Cached>>>,
    pub(crate) feed: Arc<dyn FeedWatch>,
}

/// One answer as sent, good while the read model's epoch is the one it was read at.
#[derive(Clone)]
struct Cached {
    key: String,
    read_at: ReadAt,
    body: Bytes,
    link: Option<String>,
}

impl AppState {
    fn cached(&self, key: &str, epoch: Epoch) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.iter().find(|c| c.key == key && c.read_at.epoch == epoch).cloned()
    }

    fn keep(&self, answer: Cached) {
        if self.settings.cache_entries == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.retain(|c| c.key != answer.key);
        cache.push_front(answer);
        cache.truncate(self.settings.cache_entries);
    }
}

/// The OpenAPI 3.1 document of this API, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(title = "orders query API", description = "Reports from the read model, with read-your-writes."),
    paths(item_report, monthly_report, crate::status::status, crate::status::health),
    components(schemas(
        ItemSales,
        MonthlySales,
        crate::status::ProjectionStatus,
        crate::status::SourceStatus,
        crate::status::DeadLettersStatus,
        crate::status::DeadLetterStatus,
        crate::status::Reason,
        crate::status::Health,
        ErrorBody,
        ErrorDetail,
        FieldError
    ))
)]
pub struct ApiDoc;

/// The whole document: the reports and the ad-hoc SQL routes.
pub fn openapi() -> serde_json::Value {
    document(None)
}

/// The whole document, naming the lake's database where ad-hoc SQL is configured (a submission in the sample's
/// shape must name it).
pub fn document(lake_database: Option<&str>) -> serde_json::Value {
    let mut doc = web::openapi::served(&ApiDoc::openapi().merge_from(adhoc::http::document(lake_database)));
    adhoc::http::add_links(&mut doc);
    doc
}

/// The reports, with `/queries` answering 503 `not_configured` (no ad-hoc SQL engine).
pub fn app(model: Arc<ReadModel>, settings: Settings) -> Router {
    app_with_queries(model, settings, adhoc::http::Queries { service: None, identify: Arc::new(|_| None) })
}

/// The reports and ad-hoc SQL (`/queries`), with the backlogs stream consumers record as the feed's.
pub fn app_with_queries(model: Arc<ReadModel>, settings: Settings, queries: adhoc::http::Queries) -> Router {
    let feed = Arc::new(RecordedBacklogs(model.clone()));
    app_watching(model, settings, queries, feed)
}

/// The reports and ad-hoc SQL, learning what the feed holds from `feed`.
pub fn app_watching(
    model: Arc<ReadModel>,
    settings: Settings,
    queries: adhoc::http::Queries,
    feed: Arc<dyn FeedWatch>,
) -> Router {
    let doc = Arc::new(document(queries.service.as_ref().map(|s| s.guard().database.as_str())));
    let router = Router::new()
        .route("/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .merge(web::docs::routes("orders query API"))
        .route("/health", get(crate::status::health))
        .route("/itemSalesReport", get(item_report))
        .route("/monthlySalesByItem/{itemid}", get(monthly_report))
        .route("/projection/status", get(crate::status::status))
        .fallback(|| async { QueryError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { QueryError::MethodNotAllowed })
        .with_state(AppState { model, settings, cache: Arc::new(Mutex::new(VecDeque::new())), feed })
        .merge(adhoc::http::routes(queries));
    web::edge(router, web::EdgeSettings { max_body_bytes: MAX_BODY_BYTES, ..Default::default() })
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

/// One item of `GET /itemSalesReport` (the sample's keys, numbers as numbers).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemSales<'a> {
    #[schema(example = "z3333", value_type = String)]
    pub itemid: &'a str,
    /// Units ordered, over orders that count (not cancelled, not removed).
    #[schema(example = 12)]
    pub totalordered: i64,
    /// Exact decimal: the sum of quantity × unit price over the lines whose price is known; `null` when no price
    /// is known for any unit counted (never "0" for unknown).
    #[schema(example = "15.0006", value_type = Option<String>)]
    pub totalrevenue: Option<PlainDecimal>,
    /// Units on the lines whose price is known: the part of `totalordered` that `totalrevenue` covers.
    #[schema(example = 12)]
    pub pricedordered: i64,
    /// Orders with this item.
    #[schema(example = 2)]
    pub ordercount: i64,
    /// The latest order date (UTC) among them.
    #[schema(example = "2022-11-02", format = Date, value_type = Option<String>)]
    pub lastorderdate: Option<UtcDate>,
}

/// Short ASCII text (a decimal, a date) built on the stack, then serialised as one string: no `String` per value,
/// and no trip through `fmt` and serde_json's escaping writer per piece (the full item report has 5,000 rows).
struct Ascii {
    buf: [u8; Ascii::CAPACITY],
    len: usize,
}

impl Ascii {
    /// Room for any `Decimal` (a sign, "0.", 27 zeros and 29 digits at most) and any 4-digit-year date.
    const CAPACITY: usize = 64;

    fn new() -> Ascii {
        Ascii { buf: [0; Ascii::CAPACITY], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// `n` in decimal, left-padded with zeros to `width` digits.
    fn push_number(&mut self, n: u128, width: usize) {
        let mut digits = [b'0'; 40];
        let mut at = digits.len();
        // 64-bit division where the value allows (a 128-bit one is a library call per digit).
        match u64::try_from(n) {
            Ok(mut small) => loop {
                at -= 1;
                digits[at] = b'0' + (small % 10) as u8;
                small /= 10;
                if small == 0 {
                    break;
                }
            },
            Err(_) => {
                let mut big = n;
                while big > 0 {
                    at -= 1;
                    digits[at] = b'0' + (big % 10) as u8;
                    big /= 10;
                }
            }
        }
        at = at.min(digits.len().saturating_sub(width));
        self.push(&digits[at..]);
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' are ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// A decimal as its shortest exact text ("15.0006", "12", "-0.5"): the mantissa's digits with the point put in and
/// trailing zeros after it dropped (`Decimal`'s own `Display` divides the 96-bit mantissa once per digit).
#[derive(Debug)]
pub struct PlainDecimal(Decimal);

impl PlainDecimal {
    fn text(&self) -> Ascii {
        let (mut mantissa, mut scale) = (self.0.mantissa(), self.0.scale() as usize);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        let mut out = Ascii::new();
        if mantissa < 0 {
            out.push(b"-");
        }
        let mut digits = Ascii::new();
        digits.push_number(mantissa.unsigned_abs(), 1);
        let digits = &digits.buf[..digits.len];
        if scale == 0 {
            out.push(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push(int);
            out.push(b".");
            out.push(frac);
        } else {
            out.push(b"0.");
            for _ in digits.len()..scale {
                out.push(b"0");
            }
            out.push(digits);
        }
        out
    }
}

impl std::fmt::Display for PlainDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl Serialize for PlainDecimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text().as_str())
    }
}

/// A UTC date as `YYYY-MM-DD`, written out (chrono's strftime re-parses its pattern on every call).
#[derive(Debug)]
pub struct UtcDate(NaiveDate);

impl std::fmt::Display for UtcDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), self.0.month(), self.0.day())
    }
}

impl Serialize for UtcDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Ok(year @ 0..=9_999) = u16::try_from(self.0.year()) else {
            return serializer.collect_str(self); // years before 0 or past 9999: chrono's range, never an order's
        };
        let mut out = Ascii::new();
        out.push_number(u128::from(year), 4);
        out.push(b"-");
        out.push_number(u128::from(self.0.month()), 2);
        out.push(b"-");
        out.push_number(u128::from(self.0.day()), 2);
        serializer.serialize_str(out.as_str())
    }
}

impl<'a> From<&'a ItemRow> for ItemSales<'a> {
    fn from(row: &'a ItemRow) -> ItemSales<'a> {
        ItemSales {
            itemid: row.itemid.as_str(),
            totalordered: row.totalordered,
            totalrevenue: row.known_revenue().map(PlainDecimal),
            pricedordered: row.pricedordered,
            ordercount: row.ordercount,
            lastorderdate: row.lastorderdate.map(|d| UtcDate(d.date_naive())),
        }
    }
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

/// One month of `GET /monthlySalesByItem/{itemid}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlySales {
    #[schema(example = "October 2022")]
    pub monthyear: String,
    /// The UTC month, `YYYY-MM`.
    #[schema(example = "2022-10")]
    pub month: String,
    #[schema(example = 12)]
    pub monthlyordered: i64,
}

impl From<&MonthRow> for MonthlySales {
    fn from(row: &MonthRow) -> MonthlySales {
        let month = row.month.as_str();
        let (y, m) = month.split_once('-').unwrap_or(("", ""));
        let name = y
            .parse::<i32>()
            .ok()
            .zip(m.parse::<u32>().ok())
            .and_then(|(y, m)| NaiveDate::from_ymd_opt(y, m, 1))
            .map(|d| format!("{} {}", d.format("%B"), d.year()))
            .unwrap_or_else(|| month.to_owned());
        MonthlySales { monthyear: name, month: month.to_owned(), monthlyordered: row.monthlyordered }
    }
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
async fn monthly_report(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_decimals_then_their_text_is_exact_and_shortest() {
        for (raw, text) in [
            ("15.0006", "15.0006"),
            ("12.0000", "12"),
            ("0", "0"),
            ("0.0000", "0"),
            ("-0.5000", "-0.5"),
            ("0.0001", "0.0001"),
            ("-0.0123", "-0.0123"),
            ("100", "100"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
            ("1234567.8900", "1234567.89"),
        ] {
            let d: Decimal = raw.parse().unwrap();
            assert_eq!(PlainDecimal(d).to_string(), text, "{raw}");
            assert_eq!(PlainDecimal(d).to_string(), d.normalize().to_string(), "as Decimal's own normalised text");
            assert_eq!(serde_json::to_string(&PlainDecimal(d)).unwrap(), format!("\"{text}\""), "{raw} in JSON");
        }
    }

    #[test]
    fn given_an_item_with_no_priced_units_then_its_revenue_is_null_but_a_known_price_of_zero_gives_zero() {
        let row = |revenue: &str, pricedordered| ItemRow {
            itemid: domain::ItemId::parse("z4444").unwrap(),
            totalordered: 3,
            totalrevenue: revenue.parse().unwrap(),
            pricedordered,
            ordercount: 1,
            lastorderdate: None,
        };
        let json = |r: &ItemRow| serde_json::to_value(ItemSales::from(r)).unwrap();
        assert_eq!(json(&row("0", 0))["totalrevenue"], serde_json::Value::Null, "no price known");
        assert_eq!(json(&row("0", 3))["totalrevenue"], "0", "priced at 0");
        assert_eq!(
            (json(&row("7.5", 2))["totalrevenue"].clone(), json(&row("7.5", 2))["pricedordered"].clone()),
            (serde_json::json!("7.5"), serde_json::json!(2))
        );
    }

    #[test]
    fn given_dates_then_json_has_them_as_four_digit_year_month_day() {
        for (y, m, d, text) in [(2022, 10, 3, "2022-10-03"), (999, 1, 31, "0999-01-31"), (9999, 12, 31, "9999-12-31")] {
            let date = UtcDate(NaiveDate::from_ymd_opt(y, m, d).unwrap());
            assert_eq!(serde_json::to_string(&date).unwrap(), format!("\"{text}\""));
            assert_eq!(date.to_string(), text);
        }
        let far = UtcDate(NaiveDate::from_ymd_opt(12_345, 6, 7).unwrap());
        assert_eq!(
            serde_json::to_string(&far).unwrap(),
            format!("\"{far}\""),
            "outside 4 digits: as Display writes it"
        );
    }
}
