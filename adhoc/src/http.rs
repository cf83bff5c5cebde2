//! `/queries`: submit, follow, page, download and cancel ad-hoc SQL. Mounted on the query API's Router.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use crate::engine::{Column, Download, Execution};
use crate::error::AdhocError;
use crate::records::QueryRecord;
use crate::service::{Identity, MAX_RESULTS, Service};
use submission::parse_submit;
use web::envelope::ErrorBody;

mod submission;

/// How a request's caller is established: the local dev identity, or the API Gateway authorizer's.
pub type Identify = Arc<dyn Fn(&Parts) -> Option<Identity> + Send + Sync>;

/// Every request is the same configured caller (the local runner: `DEV_IDENTITY`, `DEV_EMAIL`).
pub fn fixed_identity(identity: Identity) -> Identify {
    Arc::new(move |_| Some(identity.clone()))
}

/// The caller API Gateway's authorizer established (lambda_http puts the request context in the extensions):
/// IAM: the caller's ARN, its address from `addresses` (`NOTICE_ADDRESSES`); JWT: the `sub` claim, its address
/// from the `email` claim when `email_verified` is true, else from `addresses`.
pub fn authorizer_identity(addresses: HashMap<String, String>) -> Identify {
    Arc::new(move |parts| {
        let lambda_http::request::RequestContext::ApiGatewayV2(context) =
            parts.extensions.get::<lambda_http::request::RequestContext>()?
        else {
            return None;
        };
        let authorizer = context.authorizer.as_ref()?;
        if let Some(iam) = &authorizer.iam {
            let principal = iam.user_arn.clone().filter(|a| !a.is_empty())?;
            let email = addresses.get(&principal).cloned();
            return Some(Identity { principal, email });
        }
        let jwt = authorizer.jwt.as_ref()?;
        let principal = jwt.claims.get("sub").filter(|s| !s.is_empty())?.clone();
        let verified = jwt.claims.get("email_verified").is_some_and(|v| v == "true");
        let email =
            jwt.claims.get("email").filter(|_| verified).cloned().or_else(|| addresses.get(&principal).cloned());
        Some(Identity { principal, email })
    })
}

/// What the routes need: the service (absent when ad-hoc SQL is not configured: every call answers 503) and
/// how to identify callers.
#[derive(Clone)]
pub struct Queries {
    pub service: Option<Arc<Service>>,
    pub identify: Identify,
}

impl Queries {
    fn service(&self) -> Result<&Arc<Service>, AdhocError> {
        self.service.as_ref().ok_or(AdhocError::NotConfigured)
    }
}

/// The identified caller of a request.
pub struct Caller(pub Identity);

impl FromRequestParts<Queries> for Caller {
    type Rejection = AdhocError;

    async fn from_request_parts(parts: &mut Parts, state: &Queries) -> Result<Caller, AdhocError> {
        (state.identify)(parts).map(Caller).ok_or(AdhocError::Unauthenticated)
    }
}

pub fn routes(queries: Queries) -> Router {
    Router::new()
        .route("/queries", axum::routing::post(submit))
        .route("/queries/{id}", get(status).delete(cancel))
        .route("/queries/{id}/results", get(results))
        .route("/queries/{id}/download", get(download))
        .with_state(queries)
}

#[derive(OpenApi)]
#[openapi(
    paths(submit, status, results, download, cancel),
    components(schemas(
        Submitted,
        QueryStatus,
        ResultsPage,
        DownloadLink,
        Column,
        ErrorBody,
        web::envelope::ErrorDetail,
        web::envelope::FieldError,
        SubmitBody
    ))
)]
pub struct ApiDoc;

/// The `/queries` document; `lake_database`, when known, is the one database a submission in the sample's shape may
/// name.
pub fn document(lake_database: Option<&str>) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if let (Some(database), Some(components)) = (lake_database, doc.components.as_mut()) {
        components.schemas.insert("SubmitBody".into(), submit_body_schema(Some(database)).into());
    }
    doc
}

/// The submission's answer linked to what can be done with the query it started (OpenAPI links: clients and
/// stateful testers follow them), in the served JSON (utoipa 5.5 writes a link's `operationId` as
/// `operation_id`).
pub fn add_links(doc: &mut Value) {
    let link = |operation: &str| serde_json::json!({ "operationId": operation, "parameters": { "id": "$response.body#/queryId" } });
    if let Some(accepted) = doc.pointer_mut("/paths/~1queries/post/responses/202").and_then(Value::as_object_mut) {
        accepted.insert(
            "links".into(),
            serde_json::json!({
                "status": link("status"),
                "results": link("results"),
                "download": link("download"),
                "cancel": link("cancel"),
            }),
        );
    }
}

/// A schema from its JSON form (constant, so it always parses; an empty schema otherwise, which the document's
/// tests would show).
fn schema(json: Value) -> utoipa::openapi::schema::Schema {
    serde_json::from_value(json)
        .unwrap_or_else(|_| utoipa::openapi::schema::Schema::Object(utoipa::openapi::schema::Object::default()))
}

/// `POST /queries`: `{"sql", "notify"?}`, or the sample's `{"QueryString", "QueryExecutionContext"?}`; nothing
/// else (in particular nothing that chooses where or how the query runs).
fn submit_body_schema(database: Option<&str>) -> utoipa::openapi::schema::Schema {
    let mut db = serde_json::json!({ "type": "string", "description": "The lake's database (LAKE_DATABASE)" });
    if let Some(database) = database {
        db["enum"] = serde_json::json!([database]);
    }
    let sql = serde_json::json!({
        "type": "string",
        "maxLength": 65536,
        "description": "One query (SELECT / WITH) over the lake's order_lines and order_lines_current, at most 64 KiB \
                        of UTF-8; the guard refuses anything else with 400 and a code naming the reason.",
        "examples": ["SELECT itemid, SUM(quantity) AS total FROM order_lines_current GROUP BY itemid"]
    });
    let notify = serde_json::json!({
        "type": ["boolean", "null"],
        "description": "Mail a notice to the caller's registered address when the query ends (default false)."
    });
    schema(serde_json::json!({
        "oneOf": [
            {
                "type": "object",
                "title": "Query",
                "required": ["sql"],
                "properties": { "sql": sql, "notify": notify },
                "additionalProperties": false
            },
            {
                "type": "object",
                "title": "Athena's StartQueryExecution",
                "required": ["QueryString"],
                "properties": {
                    "QueryString": sql,
                    "notify": notify,
                    "QueryExecutionContext": {
                        "type": "object",
                        "properties": {
                            "Database": db,
                            "Catalog": { "type": "string", "enum": ["AwsDataCatalog"] }
                        },
                        "additionalProperties": false
                    }
                },
                "additionalProperties": false
            }
        ]
    }))
}

/// `POST /queries` body (see [`submit_body_schema`]).
pub struct SubmitBody;

impl utoipa::PartialSchema for SubmitBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        submit_body_schema(None).into()
    }
}

impl ToSchema for SubmitBody {}

/// A page's rows: each an array of cells in column order.
fn rows_schema() -> utoipa::openapi::schema::Schema {
    schema(serde_json::json!({
        "type": "array",
        "items": {
            "type": "array",
            "description": "One row: its cells in column order. Integers and floats as numbers, decimals (exact) \
                            and everything else as text, booleans as booleans, NULL as null.",
            "items": { "type": ["string", "number", "integer", "boolean", "null"] }
        }
    }))
}

/// Where the whole result can be fetched without credentials, for a short while (a presigned link).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadLink {
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Submitted {
    #[schema(format = "uuid")]
    pub query_id: String,
    #[schema(value_type = String, example = "QUEUED")]
    pub state: crate::engine::State,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryStatus {
    #[schema(format = "uuid")]
    pub query_id: String,
    #[schema(value_type = String, example = "SUCCEEDED", pattern = "^(QUEUED|RUNNING|SUCCEEDED|FAILED|CANCELLED)$")]
    pub state: crate::engine::State,
    pub sql: String,
    pub notify: bool,
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<DateTime<Utc>>,
    pub bytes_scanned: Option<u64>,
    pub run_time_ms: Option<u64>,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResultsPage {
    pub columns: Vec<Column>,
    #[schema(schema_with = rows_schema)]
    pub rows: Vec<Vec<Value>>,
    /// Pass back as `nextToken` for the next page; absent on the last.
    pub next_token: Option<String>,
}

fn view(record: QueryRecord, execution: Execution) -> QueryStatus {
    QueryStatus {
        query_id: record.id,
        state: execution.state,
        sql: record.sql,
        notify: record.notify,
        submitted_at: execution.submitted_at.unwrap_or(record.submitted_at),
        completed_at: execution.completed_at.or(record.completed_at),
        bytes_scanned: execution.bytes_scanned,
        run_time_ms: execution.run_time_ms,
        failure_reason: execution.failure.or(record.failure),
    }
}

/// Submit a query. The guard refuses anything but one query over the lake (400, naming the reason).
#[utoipa::path(post, path = "/queries", tag = "ad-hoc SQL", request_body = SubmitBody,
    responses(
        (status = 202, description = "Accepted; follow `Location`", body = Submitted,
            headers(("Location" = String, description = "/queries/{id}"))),
        (status = 400, description = "Refused by the guard, or a malformed body", body = ErrorBody),
        (status = 401, description = "Caller not identified", body = ErrorBody),
        (status = 413, description = "Body larger than 256 KiB", body = ErrorBody),
        (status = 503, description = "Not configured, or the engine or records are unavailable", body = ErrorBody),
    ))]
async fn submit(
    State(q): State<Queries>,
    Caller(caller): Caller,
    body: axum::body::Bytes,
) -> Result<Response, AdhocError> {
    let service = q.service()?;
    let (sql, notify) = parse_submit(&body, &service.guard().database)?;
    let record = service.submit(&caller, &sql, notify).await?;
    let location = format!("/queries/{}", record.id);
    let mut response =
        (StatusCode::ACCEPTED, Json(Submitted { query_id: record.id, state: record.state })).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// State, times, bytes scanned, run time and failure reason of one of the caller's queries.
#[utoipa::path(get, path = "/queries/{id}", tag = "ad-hoc SQL", params(("id" = String, Path, format = "uuid", description = "The query's id, from its submission")),
    responses(
        (status = 200, body = QueryStatus),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such query of the caller's", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn status(
    State(q): State<Queries>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, AdhocError> {
    let (record, execution) = q.service()?.status(&caller, &id).await?;
    Ok(no_store(Json(view(record, execution)).into_response()))
}

/// One page of a succeeded query's rows.
#[utoipa::path(get, path = "/queries/{id}/results", tag = "ad-hoc SQL",
    params(("id" = String, Path, format = "uuid", description = "The query's id, from its submission"),
        ("maxResults" = Option<u32>, Query, description = "1..1000, default 1000", minimum = 1, maximum = 1000),
        ("nextToken" = Option<String>, Query, min_length = 1,
            description = "From the previous page of the same query (opaque; any other is refused)")),
    responses(
        (status = 200, body = ResultsPage),
        (status = 400, description = "maxResults out of range, or a token not issued for this query", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The query has not succeeded", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn results(
    State(q): State<Queries>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, AdhocError> {
    let service = q.service()?;
    if let Some(unknown) = params.keys().find(|k| *k != "maxResults" && *k != "nextToken") {
        return Err(AdhocError::bad("unknown_parameter", format!("unknown parameter {unknown:?}")));
    }
    let max = match params.get("maxResults") {
        None => MAX_RESULTS,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => return Err(AdhocError::bad("invalid_max_results", format!("maxResults must be 1 to {MAX_RESULTS}"))),
        },
    };
    let page = service.results(&caller, &id, params.get("nextToken").map(String::as_str), max).await?;
    Ok(no_store(Json(ResultsPage { columns: page.columns, rows: page.rows, next_token: page.next }).into_response()))
}

/// The whole result as CSV: streamed here, or a redirect to a presigned link (AWS). A caller that cannot follow a
/// redirect with its own headers (the dashboard, whose bearer token must not go to S3) asks with
/// `Accept: application/json` and gets the link as `{"url"}`.
#[utoipa::path(get, path = "/queries/{id}/download", tag = "ad-hoc SQL", params(("id" = String, Path, format = "uuid", description = "The query's id, from its submission")),
    responses(
        (status = 200, description = "CSV; or, asked with Accept: application/json where the CSV is elsewhere (AWS), \
            its presigned link", content((String = "text/csv"), (DownloadLink = "application/json"))),
        (status = 303, description = "Presigned link to the CSV", headers(("Location" = String))),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The query has not succeeded", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn download(
    State(q): State<Queries>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AdhocError> {
    let wants_json = web::negotiate::accepts(&headers, header::ACCEPT, &["application/json"]);
    match q.service()?.download(&caller, &id).await? {
        Download::Redirect(url) if wants_json => Ok(no_store(Json(DownloadLink { url }).into_response())),
        Download::Redirect(url) => {
            let location = HeaderValue::from_str(&url).map_err(|e| AdhocError::Unavailable(e.to_string()))?;
            Ok(no_store((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()))
        }
        Download::Csv(body) => {
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{id}.csv\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            headers.insert(header::CONTENT_DISPOSITION, disposition);
            Ok(no_store(response))
        }
    }
}

/// Cancel one of the caller's queries (no effect once it has ended).
#[utoipa::path(delete, path = "/queries/{id}", tag = "ad-hoc SQL", params(("id" = String, Path, format = "uuid", description = "The query's id, from its submission")),
    responses(
        (status = 200, description = "The query's state after the cancel", body = QueryStatus),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn cancel(
    State(q): State<Queries>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, AdhocError> {
    let (record, execution) = q.service()?.cancel(&caller, &id).await?;
    Ok(no_store(Json(view(record, execution)).into_response()))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
