//! The lake writer on AWS Lambda: a second consumer of the orders stream, apart from the projector so that neither's
//! failures hold up the other. Each batch becomes one Parquet file per UTC order date under `LAKE_URL`
//! (`s3://bucket/prefix`); the first record not written is reported (ReportBatchItemFailures).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let settings: lake::LakeArgs = web::settings::parse_args().unwrap_or_else(|e| e.exit());
    let sink = lake::sink::LakeSink { lake: lake::Lake::open(settings.url()?)?, positions: false };
    let sink = &sink;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        change_feed::lambda::handle(sink, &event.payload).await
    }))
    .await
}
