//! The command API on AWS Lambda: the same Router as the local server, behind API Gateway via lambda_http.

use web::telemetry::{LogFormat, init};
use write_store::settings::{Env, StoreSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init(LogFormat::Json);
    let env = Env::process();
    let settings = StoreSettings::from_env(&env)?;
    if !matches!(settings, StoreSettings::DynamoDb { .. }) {
        return Err("ORDERS_STORE must be `dynamodb` on Lambda: a function's disk does not outlive it".into());
    }
    let store = settings.open().await?;
    lambda_http::run(command_api::app(store)).await
}
