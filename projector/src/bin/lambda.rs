//! The projector on AWS Lambda: DynamoDB Streams batches into the read model, reporting failed records
//! (FunctionResponseTypes: ReportBatchItemFailures). One pool per container, created lazily.

#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use projector::ReadModel;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let model = ReadModel::from_env().await?;
    let model = &model;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        projector::stream::handle(model, &event.payload).await
    }))
    .await
}
