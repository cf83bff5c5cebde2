//! Ad-hoc SQL over the orders lake: the guard every statement passes (`guard`), the engine trait (`engine`) and its
//! Athena implementation (`athena`), query records (`records`), completion notices (`notice`), the service tying
//! them together (`service`) and the `/queries` routes the query API mounts (`http`). The embedded engine
//! (DataFusion) lives in `adhoc-embedded`, so that no Lambda links it.

pub mod athena;
pub mod engine;
pub mod error;
pub mod guard;
pub mod http;
pub mod notice;
pub mod records;
pub mod service;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use error::AdhocError;
pub use service::{Identity, Service, ServiceSettings};

/// The lake's database name (Glue database in AWS) when `LAKE_DATABASE` is not set.
pub const DEFAULT_DATABASE: &str = "orders_lake";

/// Settings every deployment of the service reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    /// `LAKE_DATABASE`
    pub database: String,
    /// `RESULT_RETENTION_DAYS` (default 7): how long records and results are kept.
    pub retention: Duration,
    /// `NOTICE_LINK_TTL_SECS` (default 24 h), never more than the retention.
    pub link_lifetime: Duration,
    /// `NOTICE_ADDRESSES`: registered addresses by caller identity, as a JSON object.
    pub addresses: HashMap<String, String>,
}

impl CommonSettings {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<CommonSettings, String> {
        let number = |name: &str, default: u64| match get(name) {
            None => Ok(default),
            Some(raw) => raw.parse::<u64>().map_err(|_| format!("{name}={raw:?} is not a whole number")),
        };
        let retention = Duration::from_secs(number("RESULT_RETENTION_DAYS", 7)? * 86_400);
        let link_lifetime = Duration::from_secs(number("NOTICE_LINK_TTL_SECS", 86_400)?).min(retention);
        let addresses = match get("NOTICE_ADDRESSES") {
            None => HashMap::new(),
            Some(raw) => serde_json::from_str(&raw)
                .map_err(|e| format!("NOTICE_ADDRESSES must be a JSON object of identity to address: {e}"))?,
        };
        Ok(CommonSettings {
            database: get("LAKE_DATABASE").unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            retention,
            link_lifetime,
            addresses,
        })
    }
}

/// The AWS wiring: Athena in `ATHENA_WORKGROUP`, records in `QUERIES_TABLE`. `mailer` is `None` in the query
/// API (the notice Lambda sends notices on Athena's events).
pub fn athena_service(
    config: &aws_config::SdkConfig,
    get: impl Fn(&str) -> Option<String>,
    mailer: Option<Arc<dyn notice::Mailer>>,
) -> Result<(Arc<Service>, CommonSettings), String> {
    let common = CommonSettings::from_env(&get)?;
    let workgroup = get("ATHENA_WORKGROUP").ok_or("ATHENA_WORKGROUP is not set (the Athena workgroup to run in)")?;
    let table = get("QUERIES_TABLE").ok_or("QUERIES_TABLE is not set (the DynamoDB table of query records)")?;
    let engine = athena::AthenaEngine::new(
        Arc::new(athena::SdkAthena(aws_sdk_athena::Client::new(config))),
        Arc::new(athena::S3Presign::default()),
        workgroup,
        common.database.clone(),
    )
    .with_output_location(get("ATHENA_OUTPUT_LOCATION"));
    let records = records::DynamoRecords::new(
        aws_sdk_dynamodb::Client::new(config),
        table,
        chrono::Duration::from_std(common.retention).unwrap_or(chrono::Duration::days(7)),
    );
    let settings = ServiceSettings {
        guard: guard::GuardConfig::lake(common.database.clone()),
        link_lifetime: common.link_lifetime,
        link_base: None,
    };
    Ok((Arc::new(Service::new(Arc::new(engine), Arc::new(records), mailer, settings)), common))
}
