//! The query API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http. The read
//! model is `READ_MODEL_URL` (in AWS: a user holding `orders_reader`, through RDS Proxy), `READ_MODEL_AUTH` as for
//! the projector. One pool per container, created lazily.

use std::sync::Arc;

use projector::ReadModel;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init(telemetry::LogFormat::Json);
    let model = Arc::new(ReadModel::from_env().await?);
    lambda_http::run(query_api::app(model, query_api::Settings::default())).await
}
