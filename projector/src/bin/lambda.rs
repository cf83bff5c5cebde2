//! The projector on AWS Lambda: DynamoDB Streams batches into the read model, setting aside what it cannot apply and
//! reporting the first record that did not take effect (ReportBatchItemFailures). One pool per container, lazily.

#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use projector::ReadModelSink;
use read_model::settings::ReadModelArgs;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let settings: ReadModelArgs = web::settings::parse_args().unwrap_or_else(|e| e.exit());
    let sink = ReadModelSink(Arc::new(settings.open(settings.url()?).await?));
    let sink = &sink;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        change_feed::lambda::handle(sink, &event.payload).await
    }))
    .await
}
