//! The query API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http. The read
//! model is `READ_MODEL_URL` (in AWS: a user holding `orders_reader`, through RDS Proxy), `READ_MODEL_AUTH` as for
//! the projector. One pool per container, created lazily. Ad-hoc SQL runs on Athena (`ATHENA_WORKGROUP`,
//! `LAKE_DATABASE`, `QUERIES_TABLE`); callers are who API Gateway's authorizer says they are.

use std::sync::Arc;

#[derive(clap::Args)]
struct Settings {
    #[command(flatten)]
    read_model: read_model::settings::ReadModelArgs,
    #[command(flatten)]
    athena: adhoc::settings::AthenaLambdaArgs,
    #[command(flatten)]
    api: query_api::settings::QueryApiArgs,
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let settings: Settings = web::settings::parse_args().unwrap_or_else(|e| e.exit());
    let athena = settings.athena.settings().unwrap_or_else(|e| e.exit());
    let model = Arc::new(settings.read_model.open(settings.read_model.url()?).await?);
    let config = aws_config::load_from_env().await;
    let service = adhoc::athena_service(&config, &athena, None);
    let identify = adhoc::http::authorizer_identity(athena.common.addresses);
    let queries = adhoc::http::Queries { service: Some(service), identify };
    lambda_http::run(query_api::app_with_queries(model, (&settings.api).into(), queries)).await
}
