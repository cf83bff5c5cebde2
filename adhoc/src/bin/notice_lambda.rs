//! Completion notices in AWS: EventBridge's "Athena Query State Change" events for the workgroup. For a query that
//! ended and asked for a notice, records its end and sends the notice once (SESv2, from `NOTICE_SENDER`) to the
//! address registered when it was submitted, with a presigned download link.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let config = aws_config::load_from_env().await;
    let get = |name: &str| std::env::var(name).ok();
    let sender = get("NOTICE_SENDER").ok_or("NOTICE_SENDER is not set (the SES identity notices come from)")?;
    let mailer = adhoc::notice::Ses::new(aws_sdk_sesv2::Client::new(&config), sender);
    let service = adhoc::athena_service(&config, &adhoc::AthenaSettings::from_env(get)?, None);
    let (service, mailer) = (&service, &mailer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        adhoc::service::on_state_change(service, mailer, &event.payload).await.map_err(|e| e.to_string())
    }))
    .await
}
