//! Ad-hoc SQL over the orders lake: the guard every statement passes (`guard`), the engine trait (`engine`) and its
//! Athena implementation (`athena`), query records (`records`), completion notices (`notice`), the service tying
//! them together (`service`), its settings (`settings`) and the `/queries` routes the query API mounts (`http`). The embedded engine
//! (DataFusion) lives in `adhoc-embedded`, so that no Lambda links it.

pub mod athena;
pub mod engine;
pub mod error;
pub mod guard;
pub mod http;
pub mod notice;
pub mod records;
pub mod service;
pub mod settings;

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

/// The Athena deployment's settings: the common ones plus where queries run and where records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaSettings {
    pub common: CommonSettings,
    /// `ATHENA_WORKGROUP`: the workgroup every query runs in (its enforced configuration decides the output).
    pub workgroup: String,
    /// `QUERIES_TABLE`: the DynamoDB table of query records.
    pub table: String,
    /// `ATHENA_OUTPUT_LOCATION`: where results go when the workgroup does not enforce it.
    pub output_location: Option<String>,
}

/// The AWS wiring: Athena in the configured workgroup, records in DynamoDB. `mailer` is `None` in the query API
/// (the notice Lambda sends notices on Athena's events).
pub fn athena_service(
    config: &aws_config::SdkConfig,
    settings: &AthenaSettings,
    mailer: Option<Arc<dyn notice::Mailer>>,
) -> Arc<Service> {
    let common = &settings.common;
    let engine = athena::AthenaEngine::new(
        Arc::new(athena::SdkAthena(aws_sdk_athena::Client::new(config))),
        Arc::new(athena::S3Presign::default()),
        settings.workgroup.clone(),
        common.database.clone(),
    )
    .with_output_location(settings.output_location.clone());
    let records = records::DynamoRecords::new(
        aws_sdk_dynamodb::Client::new(config),
        settings.table.clone(),
        chrono::Duration::from_std(common.retention).unwrap_or(chrono::Duration::days(7)),
    );
    let service_settings = ServiceSettings {
        guard: guard::GuardConfig::lake(common.database.clone()),
        link_lifetime: common.link_lifetime,
        link_base: None,
    };
    Arc::new(Service::new(Arc::new(engine), Arc::new(records), mailer, service_settings))
}
