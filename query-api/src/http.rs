//! The query API's Router: the dashboard (`GET /`), the reports, the projection's status and health, `/queries`,
//! and the OpenAPI document of them all, behind the edge every request passes (`web::edge`).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use read_model::ReadModel;
use utoipa::OpenApi;

use crate::error::QueryError;
use crate::feed::{FeedWatch, RecordedBacklogs};
use crate::reports::{item_report, monthly_report};
use crate::settings::Settings;
use crate::state::AppState;
use crate::wire::{ItemSales, MonthlySales};
use web::envelope::{ErrorBody, ErrorDetail, FieldError};

/// Largest accepted request body: a `/queries` submission of the longest statement the guard takes, escaped.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The OpenAPI 3.1 document of this API, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(title = "orders query API", description = "Reports from the read model, with read-your-writes."),
    paths(crate::reports::item_report, crate::reports::monthly_report, crate::status::status, crate::status::health),
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
    let dashboard = crate::dashboard::routes(&settings.dashboard);
    let router = Router::new()
        .route("/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .merge(web::docs::routes("orders query API"))
        .merge(dashboard)
        .route("/health", get(crate::status::health))
        .route("/itemSalesReport", get(item_report))
        .route("/monthlySalesByItem/{itemid}", get(monthly_report))
        .route("/projection/status", get(crate::status::status))
        .fallback(|| async { QueryError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { QueryError::MethodNotAllowed })
        .with_state(AppState::new(model, settings, feed))
        .merge(adhoc::http::routes(queries));
    web::edge(router, web::EdgeSettings { max_body_bytes: MAX_BODY_BYTES, ..Default::default() })
}
