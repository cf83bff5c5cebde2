//! The projector on AWS Lambda: DynamoDB Streams batches into the read model, reporting failed records
//! (FunctionResponseTypes: ReportBatchItemFailures). One pool per container, created lazily.

use lambda_runtime::{LambdaEvent, service_fn};
use projector::ReadModel;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .without_time()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let url = std::env::var("READ_MODEL_URL").map_err(|_| "READ_MODEL_URL is not set")?;
    let auth = projector::rds::Auth::parse(std::env::var("READ_MODEL_AUTH").ok().as_deref())?;
    let model = ReadModel::open(&url, auth).await?;
    let model = &model;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        projector::stream::handle(model, &event.payload).await
    }))
    .await
}
