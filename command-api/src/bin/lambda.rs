//! The command API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http.

use web::telemetry::{LogFormat, init};
use write_store::settings::{StoreArgs, StoreSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init(LogFormat::Json);
    let settings = web::settings::parse_args::<StoreArgs>().unwrap_or_else(|e| e.exit()).settings();
    if !matches!(settings, StoreSettings::DynamoDb { .. }) {
        return Err("ORDERS_STORE must be `dynamodb` on Lambda: a function's disk does not outlive it".into());
    }
    let store = settings.open().await?;
    lambda_http::run(command_api::app(store)).await
}
