//! The ad-hoc SQL service's settings: those every deployment reads, and Athena's.

use std::collections::HashMap;
use std::time::Duration;

use crate::{AthenaSettings, CommonSettings, DEFAULT_DATABASE};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// The lake's database name (the Glue database in AWS).
    #[arg(long, env = "LAKE_DATABASE", default_value = DEFAULT_DATABASE)]
    pub lake_database: String,
    /// How many days query records and results are kept.
    #[arg(long, env = "RESULT_RETENTION_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub result_retention_days: u64,
    /// How long a notice's download link lives, in seconds (never more than the retention).
    #[arg(long, env = "NOTICE_LINK_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub notice_link_ttl_secs: u64,
    /// Registered notice addresses by caller identity, as a JSON object (e.g. {"dev":"dev@example.com"}).
    #[arg(long, env = "NOTICE_ADDRESSES", value_parser = addresses)]
    pub notice_addresses: Option<Addresses>,
}

/// Notice addresses by caller identity.
pub type Addresses = HashMap<String, String>;

impl From<&CommonArgs> for CommonSettings {
    fn from(args: &CommonArgs) -> CommonSettings {
        let retention = Duration::from_secs(args.result_retention_days * 86_400);
        CommonSettings {
            database: args.lake_database.clone(),
            retention,
            link_lifetime: Duration::from_secs(args.notice_link_ttl_secs).min(retention),
            addresses: args.notice_addresses.clone().unwrap_or_default(),
        }
    }
}

/// Where Athena runs queries and where their records live. Each is needed only where Athena is the engine, so
/// `settings` says which is missing.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AthenaArgs {
    /// The Athena workgroup every query runs in (QUERY_ENGINE=athena).
    #[arg(long, env = "ATHENA_WORKGROUP")]
    pub athena_workgroup: Option<String>,
    /// The DynamoDB table of query records (QUERY_ENGINE=athena).
    #[arg(long, env = "QUERIES_TABLE")]
    pub queries_table: Option<String>,
    /// Where results go when the workgroup does not enforce its own output location.
    #[arg(long, env = "ATHENA_OUTPUT_LOCATION")]
    pub athena_output_location: Option<String>,
}

impl AthenaArgs {
    pub fn settings(&self, common: &CommonArgs) -> Result<AthenaSettings, clap::Error> {
        Ok(AthenaSettings {
            common: common.into(),
            workgroup: self
                .athena_workgroup
                .clone()
                .ok_or_else(|| web::settings::missing("ATHENA_WORKGROUP", "the Athena workgroup to run in"))?,
            table: self
                .queries_table
                .clone()
                .ok_or_else(|| web::settings::missing("QUERIES_TABLE", "the DynamoDB table of query records"))?,
            output_location: self.athena_output_location.clone(),
        })
    }
}

/// Athena's whole settings, as the query and notice Lambdas read them.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AthenaLambdaArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub athena: AthenaArgs,
}

impl AthenaLambdaArgs {
    pub fn settings(&self) -> Result<AthenaSettings, clap::Error> {
        self.athena.settings(&self.common)
    }
}

fn addresses(raw: &str) -> Result<Addresses, String> {
    serde_json::from_str(raw).map_err(|e| format!("expected a JSON object of identity to address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use web::settings::parse_pairs;

    #[test]
    fn given_nothing_then_the_defaults_and_athena_says_what_is_missing() {
        let args: AthenaLambdaArgs = parse_pairs(&[]).unwrap();
        let common = CommonSettings::from(&args.common);
        assert_eq!(common.database, DEFAULT_DATABASE);
        assert_eq!(common.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(common.link_lifetime, Duration::from_secs(86_400));
        assert!(common.addresses.is_empty());
        assert!(args.settings().unwrap_err().to_string().contains("ATHENA_WORKGROUP"));
        let args: AthenaLambdaArgs = parse_pairs(&[("ATHENA_WORKGROUP", "orders")]).unwrap();
        assert!(args.settings().unwrap_err().to_string().contains("QUERIES_TABLE"));
    }

    #[test]
    fn a_link_never_outlives_the_retention() {
        let args: AthenaLambdaArgs =
            parse_pairs(&[("RESULT_RETENTION_DAYS", "1"), ("NOTICE_LINK_TTL_SECS", "999999")]).unwrap();
        assert_eq!(CommonSettings::from(&args.common).link_lifetime, Duration::from_secs(86_400));
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (name, value) in [("NOTICE_ADDRESSES", "[1]"), ("RESULT_RETENTION_DAYS", "a week")] {
            let err = parse_pairs::<AthenaLambdaArgs>(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
