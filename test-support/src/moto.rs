//! moto, which `./scripts/test` starts on a free port and names in `MOTO_ENDPOINT`: a test that needs it and finds
//! it missing fails, saying what to start.

use std::sync::atomic::{AtomicU32, Ordering};

/// The moto server to test against.
pub fn endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set. These tests need moto: run ./scripts/test (it starts one), or start \
             `moto_server -H 127.0.0.1 -p 5000` and set MOTO_ENDPOINT=http://127.0.0.1:5000"
        ),
    }
}

/// SDK configuration for any endpoint, with a fixed region and dummy credentials.
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

/// SDK configuration for moto, checked to answer.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = endpoint();
    let config = sdk_config_at(&endpoint).await;
    let probe = aws_sdk_dynamodb::Client::new(&config).list_tables().limit(1).send().await;
    if let Err(e) = probe {
        panic!(
            "moto at MOTO_ENDPOINT={endpoint} does not answer ({e:?}); start it with `moto_server -H 127.0.0.1 -p PORT`"
        );
    }
    config
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{prefix}-{}-{now}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
