//! The read model's migrations on deploy: a CloudFormation custom resource whose function applies
//! `migrations/<dialect>` as the database owner (credentials from the cluster's Secrets Manager secret) and gives
//! the projector's and the query API's login users their roles. It reports the real outcome to CloudFormation: a
//! migration that fails, a missing setting, an unreadable secret or a run that would outlast the function all
//! answer FAILED with the reason, and a report CloudFormation did not receive fails the invocation.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use read_model::{DbRole, LoginAuth, ReadModel};
use serde::Serialize;
use serde_json::Value;

pub mod custom_resource;

#[derive(Debug, thiserror::Error)]
pub enum MigratorError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("the owner's secret: {0}")]
    Secret(String),
    #[error(transparent)]
    ReadModel(#[from] read_model::ProjectionError),
    #[error("CloudFormation did not receive the response: {0}")]
    Respond(String),
}

/// What the function is configured with (all from its environment). Read on every Create and Update, so that a
/// missing or malformed setting answers FAILED with the reason rather than failing the function's start.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Settings {
    /// The cluster's writer endpoint and database, without credentials
    /// (postgres://host:5432/orders?sslmode=require, mysql://host:3306/orders?ssl-mode=REQUIRED).
    #[arg(long = "read-model-admin-url", env = "READ_MODEL_ADMIN_URL", value_name = "READ_MODEL_ADMIN_URL",
          value_parser = admin_url)]
    pub admin_url: url::Url,
    /// The owner's credentials ({"username": .., "password": ..}), as RDS keeps the master user's.
    #[arg(
        long = "read-model-admin-secret-arn",
        env = "READ_MODEL_ADMIN_SECRET_ARN",
        value_name = "READ_MODEL_ADMIN_SECRET_ARN"
    )]
    pub secret_arn: String,
    /// The projector's login (role orders_writer).
    #[arg(long = "read-model-writer-user", env = "READ_MODEL_WRITER_USER", value_name = "READ_MODEL_WRITER_USER")]
    pub writer_user: String,
    /// The query API's login (role orders_reader).
    #[arg(long = "read-model-reader-user", env = "READ_MODEL_READER_USER", value_name = "READ_MODEL_READER_USER")]
    pub reader_user: String,
    /// `iam` (create RDS IAM logins) or `existing` (grant the roles to logins that exist).
    #[arg(
        long = "read-model-logins",
        env = "READ_MODEL_LOGINS",
        value_name = "READ_MODEL_LOGINS",
        value_enum,
        default_value = "iam"
    )]
    pub logins: LoginAuth,
}

impl Settings {
    /// From the process's environment.
    pub fn from_env() -> Result<Settings, MigratorError> {
        Settings::checked(web::settings::parse_args())
    }

    /// From `pairs`, as if they were the whole environment.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, MigratorError> {
        Settings::checked(web::settings::parse_pairs(pairs))
    }

    fn checked(parsed: Result<Settings, clap::Error>) -> Result<Settings, MigratorError> {
        let settings = parsed.map_err(|e| MigratorError::Config(web::settings::message(&e)))?;
        if settings.writer_user == settings.reader_user {
            return Err(MigratorError::Config("READ_MODEL_WRITER_USER and READ_MODEL_READER_USER must differ".into()));
        }
        Ok(settings)
    }
}

fn admin_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not hold credentials; they come from READ_MODEL_ADMIN_SECRET_ARN".into());
    }
    Ok(url)
}

/// The owner's credentials as RDS stores them in Secrets Manager.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// Parses a secret string; the error never repeats the secret.
    pub fn parse(secret: &str) -> Result<Credentials, MigratorError> {
        serde_json::from_str(secret).map_err(|e| {
            MigratorError::Secret(format!("not a JSON object with username and password (line {})", e.line()))
        })
    }
}

/// Reads the owner's credentials from Secrets Manager.
pub async fn owner_credentials(
    client: &aws_sdk_secretsmanager::Client,
    secret_arn: &str,
) -> Result<Credentials, MigratorError> {
    let out = client.get_secret_value().secret_id(secret_arn).send().await.map_err(|e| {
        MigratorError::Secret(format!("{secret_arn}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
    })?;
    Credentials::parse(out.secret_string().ok_or_else(|| MigratorError::Secret(format!("{secret_arn} has no string")))?)
}

/// `admin_url` with the owner's credentials in it.
pub fn owner_url(admin_url: &url::Url, credentials: &Credentials) -> Result<String, MigratorError> {
    let mut url = admin_url.clone();
    url.set_username(&credentials.username)
        .and_then(|()| url.set_password(Some(&credentials.password)))
        .map_err(|()| MigratorError::Config(format!("READ_MODEL_ADMIN_URL {admin_url} cannot hold credentials")))?;
    Ok(url.into())
}

/// What a successful run did, as the custom resource's `Data` (readable with `!GetAtt`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Migrated {
    pub dialect: String,
    pub writer_user: String,
    pub reader_user: String,
}

impl Migrated {
    pub fn data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("Dialect".to_owned(), self.dialect.clone()),
            ("WriterUser".to_owned(), self.writer_user.clone()),
            ("ReaderUser".to_owned(), self.reader_user.clone()),
        ])
    }
}

/// Applies the migrations at `owner_url` and gives the two logins their roles. Safe to run again: applied
/// migrations are skipped, existing logins and grants stay as they are.
pub async fn migrate(
    owner_url: &str,
    writer_user: &str,
    reader_user: &str,
    logins: LoginAuth,
) -> Result<Migrated, MigratorError> {
    let model = ReadModel::connect(owner_url)?;
    let outcome = async {
        model.migrate().await?;
        model.grant_login(writer_user, DbRole::Writer, logins).await?;
        model.grant_login(reader_user, DbRole::Reader, logins).await?;
        Ok::<_, MigratorError>(())
    }
    .await;
    model.close().await;
    outcome?;
    Ok(Migrated {
        dialect: format!("{:?}", model.dialect()).to_lowercase(),
        writer_user: writer_user.to_owned(),
        reader_user: reader_user.to_owned(),
    })
}

/// The whole run of one Create or Update: settings, the owner's secret, the migrations and the logins.
pub async fn run_from_env(secrets: &aws_sdk_secretsmanager::Client) -> Result<Migrated, MigratorError> {
    let settings = Settings::from_env()?;
    let credentials = owner_credentials(secrets, &settings.secret_arn).await?;
    let url = owner_url(&settings.admin_url, &credentials)?;
    tracing::info!(endpoint = %settings.admin_url, owner = %credentials.username, "migrating the read model");
    migrate(&url, &settings.writer_user, &settings.reader_user, settings.logins).await
}

/// One invocation of the function: `payload` (a custom resource request) run and answered to CloudFormation
/// before `deadline`; what the function returns to Lambda.
pub async fn invoke(
    payload: Value,
    deadline: std::time::SystemTime,
    secrets: &aws_sdk_secretsmanager::Client,
    http: &reqwest::Client,
) -> Result<Value, MigratorError> {
    let request = request(payload)?;
    let work = || async { Ok(run_from_env(secrets).await?.data()) };
    let response = custom_resource::handle(&request, deadline, RESPONSE_MARGIN, http, work).await?;
    serde_json::to_value(response).map_err(|e| MigratorError::Respond(format!("cannot encode the response: {e}")))
}

/// Decodes a Lambda payload as a custom resource request.
pub fn request(payload: Value) -> Result<CloudFormationCustomResourceRequest, MigratorError> {
    serde_json::from_value(payload).map_err(|e| MigratorError::Config(format!("not a custom resource request: {e}")))
}

/// How long before the function's deadline the outcome is sent, whatever the run is doing: enough for the PUT.
pub const RESPONSE_MARGIN: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: [(&str, &str); 4] = [
        ("READ_MODEL_ADMIN_URL", "postgres://cluster.example:5432/orders?sslmode=require"),
        ("READ_MODEL_ADMIN_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:rds!cluster-x"),
        ("READ_MODEL_WRITER_USER", "orders_projector"),
        ("READ_MODEL_READER_USER", "orders_query"),
    ];

    #[test]
    fn given_the_environment_then_settings_default_to_iam_logins_and_refuse_what_cannot_work() {
        let s = Settings::from_pairs(&FULL).unwrap();
        assert_eq!(s.logins, LoginAuth::RdsIam);
        assert_eq!(s.writer_user, "orders_projector");

        for missing in FULL.map(|(k, _)| k) {
            let rest: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = Settings::from_pairs(&rest).unwrap_err().to_string();
            assert!(err.contains(missing), "{err}");
        }
        let mut with_password = FULL.to_vec();
        with_password[0].1 = "postgres://owner:pw@cluster.example:5432/orders";
        assert!(Settings::from_pairs(&with_password).unwrap_err().to_string().contains("credentials"));
        let mut same = FULL.to_vec();
        same[3].1 = "orders_projector";
        assert!(Settings::from_pairs(&same).unwrap_err().to_string().contains("differ"));
        let mut existing = FULL.to_vec();
        existing.push(("READ_MODEL_LOGINS", "existing"));
        assert_eq!(Settings::from_pairs(&existing).unwrap().logins, LoginAuth::Existing);
        let mut bad = FULL.to_vec();
        bad.push(("READ_MODEL_LOGINS", "password"));
        assert!(Settings::from_pairs(&bad).is_err());
    }

    #[test]
    fn given_the_owners_secret_then_the_url_carries_its_credentials_encoded_and_errors_never_repeat_it() {
        let c = Credentials::parse(r#"{"username":"orders_admin","password":"p@ss/w:rd?#","engine":"x"}"#).unwrap();
        let url =
            owner_url(&url::Url::parse("postgres://cluster.example:5432/orders?sslmode=require").unwrap(), &c).unwrap();
        assert_eq!(url, "postgres://orders_admin:p%40ss%2Fw%3Ard%3F%23@cluster.example:5432/orders?sslmode=require");
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.host_str(), Some("cluster.example"));

        let err = Credentials::parse(r#"{"user":"x","password":"hunter2"}"#).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
