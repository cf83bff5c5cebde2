//! The read model's settings, as the runner and every Lambda that reads or writes the read model read them.

use std::time::Duration;

use crate::dialect::{Dialect, MYSQL_STATEMENT_LIMIT};
use crate::model::{ProjectionError, ReadModel};
use crate::rds::Auth;

/// The longest statement `READ_MODEL_MAX_STATEMENT_BYTES` may allow: MariaDB's default `max_allowed_packet` (a
/// batch's statements stay far below it anyway: at most `CHUNK` rows each).
pub const MYSQL_STATEMENT_LIMIT_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReadModelArgs {
    /// The read model: sqlite:..., postgres://... or mysql://... (the runner's default: SQLite under DATA_DIR;
    /// the Lambdas need it).
    #[arg(long, env = "READ_MODEL_URL", value_parser = read_model_url, hide_env_values = true)]
    pub read_model_url: Option<String>,
    /// How the read model authenticates: `password` (the URL's) or `iam` (RDS IAM tokens, through RDS Proxy).
    #[arg(long, env = "READ_MODEL_AUTH", value_enum, default_value = "password")]
    pub read_model_auth: Auth,
    /// The longest statement sent to MySQL, in bytes: 16000 is what RDS Proxy passes without pinning the session;
    /// raise it (up to 16 MiB) for a MySQL with no proxy in front.
    #[arg(long, env = "READ_MODEL_MAX_STATEMENT_BYTES", default_value_t = MYSQL_STATEMENT_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(MYSQL_STATEMENT_LIMIT as u64..=MYSQL_STATEMENT_LIMIT_MAX as u64))]
    pub read_model_max_statement_bytes: usize,
    /// How long one statement to the read model may take, in whole seconds.
    #[arg(long, env = "READ_MODEL_STATEMENT_TIMEOUT_SECS", default_value_t = crate::db::STATEMENT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub read_model_statement_timeout_secs: u64,
}

impl ReadModelArgs {
    /// `READ_MODEL_URL`, which a Lambda must be given.
    pub fn url(&self) -> Result<&str, ProjectionError> {
        self.read_model_url.as_deref().ok_or_else(|| ProjectionError::Config("READ_MODEL_URL is not set".into()))
    }

    pub fn statement_timeout(&self) -> Duration {
        Duration::from_secs(self.read_model_statement_timeout_secs)
    }

    /// The read model at `url` (`READ_MODEL_URL`, or the runner's default) with these settings.
    pub async fn open(&self, url: &str) -> Result<ReadModel, ProjectionError> {
        Ok(ReadModel::open(url, self.read_model_auth)
            .await?
            .with_mysql_statement_limit(self.read_model_max_statement_bytes)
            .with_statement_timeout(self.statement_timeout()))
    }
}

/// A read model URL of a backend this crate speaks.
pub fn read_model_url(raw: &str) -> Result<String, String> {
    match Dialect::from_url(raw) {
        Some(_) => Ok(raw.to_owned()),
        None => Err("expected sqlite:..., postgres://... or mysql://...".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Settings {
        #[command(flatten)]
        read_model: ReadModelArgs,
    }

    fn parse(args: &[&str]) -> Result<ReadModelArgs, String> {
        Settings::try_parse_from(std::iter::once("read-model").chain(args.iter().copied()))
            .map(|s| s.read_model)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn given_nothing_then_password_auth_what_rds_proxy_passes_and_30_s() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.read_model_url, None);
        assert!(args.url().unwrap_err().to_string().contains("READ_MODEL_URL"));
        assert_eq!(args.read_model_auth, Auth::Password);
        assert_eq!(args.read_model_max_statement_bytes, MYSQL_STATEMENT_LIMIT);
        assert_eq!(args.statement_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn the_mysql_statement_limit_may_only_be_raised_up_to_16_mib() {
        let raised = parse(&["--read-model-max-statement-bytes=1048576"]).unwrap();
        assert_eq!(raised.read_model_max_statement_bytes, 1_048_576);
        for bad in ["15999", "0", "-1", "1MB", "16777217"] {
            let err = parse(&[&format!("--read-model-max-statement-bytes={bad}")]).unwrap_err();
            assert!(err.contains("READ_MODEL_MAX_STATEMENT_BYTES"), "{bad}: {err}");
        }
    }

    #[test]
    fn malformed_values_are_refused_naming_the_variable() {
        for (flag, var) in [
            ("--read-model-url=oracle://x", "READ_MODEL_URL"),
            ("--read-model-auth=kerberos", "READ_MODEL_AUTH"),
            ("--read-model-statement-timeout-secs=0", "READ_MODEL_STATEMENT_TIMEOUT_SECS"),
        ] {
            let err = parse(&[flag]).unwrap_err();
            assert!(err.contains(var), "{flag}: {err}");
        }
    }
}
