//! The query API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http. The read
//! model is `READ_MODEL_URL` (in AWS: a user holding `orders_reader`, through RDS Proxy), `READ_MODEL_AUTH` as for
//! the projector. One pool per container, created lazily.

use std::sync::Arc;

use projector::ReadModel;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .without_time()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let url = std::env::var("READ_MODEL_URL").map_err(|_| "READ_MODEL_URL is not set")?;
    let auth = projector::rds::Auth::parse(std::env::var("READ_MODEL_AUTH").ok().as_deref())?;
    let model = Arc::new(ReadModel::open(&url, auth).await?);
    lambda_http::run(query_api::app(model, query_api::Settings::default())).await
}
