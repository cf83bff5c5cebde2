//! The query API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http. The read
//! model is `READ_MODEL_URL` (in AWS: a user holding `orders_reader`, through RDS Proxy), `READ_MODEL_AUTH` as for
//! the projector. One pool per container, created lazily. Ad-hoc SQL runs on Athena (`ATHENA_WORKGROUP`,
//! `LAKE_DATABASE`, `QUERIES_TABLE`); callers are who API Gateway's authorizer says they are.

use std::sync::Arc;

use read_model::ReadModel;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let model = Arc::new(ReadModel::from_env().await?);
    let config = aws_config::load_from_env().await;
    let settings = adhoc::AthenaSettings::from_env(|name| std::env::var(name).ok())?;
    let service = adhoc::athena_service(&config, &settings, None);
    let queries = adhoc::http::Queries {
        service: Some(service),
        identify: adhoc::http::authorizer_identity(settings.common.addresses),
    };
    let lag_threshold = match std::env::var("PROJECTION_LAG_THRESHOLD_SECS").ok().filter(|v| !v.is_empty()) {
        Some(raw) => std::time::Duration::from_secs(
            raw.parse().map_err(|e| format!("PROJECTION_LAG_THRESHOLD_SECS={raw:?}: expected whole seconds ({e})"))?,
        ),
        None => query_api::status::LAG_THRESHOLD,
    };
    let settings = query_api::Settings { lag_threshold, ..Default::default() };
    lambda_http::run(query_api::app_with_queries(model, settings, queries)).await
}
