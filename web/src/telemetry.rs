//! Logging set-up for every binary (the local runner and the three Lambdas): pretty lines for people locally, JSON
//! on Lambda (CloudWatch). `RUST_LOG` filters both.

use tracing_subscriber::EnvFilter;

pub enum LogFormat {
    Pretty,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).without_time().try_init(),
    };
}
