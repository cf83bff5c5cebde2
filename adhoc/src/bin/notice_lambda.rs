//! Completion notices in AWS: EventBridge's "Athena Query State Change" events for the workgroup. For a query that
//! ended and asked for a notice, records its end and sends the notice once (SESv2, from `NOTICE_SENDER`) to the
//! address registered when it was submitted, with a presigned download link.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[derive(clap::Args)]
struct Settings {
    /// The SES identity notices come from.
    #[arg(long, env = "NOTICE_SENDER")]
    notice_sender: String,
    #[command(flatten)]
    athena: adhoc::settings::AthenaLambdaArgs,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    web::telemetry::init(web::telemetry::LogFormat::Json);
    let settings: Settings = web::settings::parse_args().unwrap_or_else(|e| e.exit());
    let athena = settings.athena.settings().unwrap_or_else(|e| e.exit());
    let config = aws_config::load_from_env().await;
    let mailer = adhoc::notice::Ses::new(aws_sdk_sesv2::Client::new(&config), settings.notice_sender);
    let service = adhoc::athena_service(&config, &athena, None);
    let (service, mailer) = (&service, &mailer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        adhoc::service::on_state_change(service, mailer, &event.payload).await.map_err(|e| e.to_string())
    }))
    .await
}
