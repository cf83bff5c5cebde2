//! The migrations function the stack invokes as the custom resource `ReadModelMigrations`: on Create and Update
//! it applies the read model's migrations through the cluster's writer endpoint as the owner (the master secret,
//! `READ_MODEL_ADMIN_SECRET_ARN`) and gives `READ_MODEL_WRITER_USER` / `READ_MODEL_READER_USER` their roles; the
//! outcome goes to CloudFormation as it is (see `migrator::custom_resource`).

#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let config = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build()?;
    let (secrets, http) = (&secrets, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        migrator::invoke(event.payload, event.context.deadline(), secrets, http)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
