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

/// What the function is configured with (all from its environment).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `READ_MODEL_ADMIN_URL`: the cluster's writer endpoint and database, without credentials
    /// (`postgres://host:5432/orders?sslmode=require`, `mysql://host:3306/orders?ssl-mode=REQUIRED`).
    pub admin_url: url::Url,
    /// `READ_MODEL_ADMIN_SECRET_ARN`: the owner's credentials (`{"username": .., "password": ..}`), as RDS keeps
    /// the master user's.
    pub secret_arn: String,
    /// `READ_MODEL_WRITER_USER`: the projector's login (role `orders_writer`).
    pub writer_user: String,
    /// `READ_MODEL_READER_USER`: the query API's login (role `orders_reader`).
    pub reader_user: String,
    /// `READ_MODEL_LOGINS`: `iam` (default: create RDS IAM logins) or `existing` (grant roles to existing logins).
    pub logins: LoginAuth,
}

impl Settings {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Settings, MigratorError> {
        let var = |name: &str| {
            get(name).filter(|v| !v.is_empty()).ok_or_else(|| MigratorError::Config(format!("{name} is not set")))
        };
        let raw = var("READ_MODEL_ADMIN_URL")?;
        let admin_url =
            url::Url::parse(&raw).map_err(|e| MigratorError::Config(format!("READ_MODEL_ADMIN_URL: {e}")))?;
        if !admin_url.username().is_empty() || admin_url.password().is_some() {
            return Err(MigratorError::Config(
                "READ_MODEL_ADMIN_URL must not hold credentials; they come from READ_MODEL_ADMIN_SECRET_ARN".into(),
            ));
        }
        let logins = match get("READ_MODEL_LOGINS").as_deref() {
            None | Some("") | Some("iam") => LoginAuth::RdsIam,
            Some("existing") => LoginAuth::Existing,
            Some(other) => {
                return Err(MigratorError::Config(format!("READ_MODEL_LOGINS must be iam or existing, not {other:?}")));
            }
        };
        let settings = Settings {
            admin_url,
            secret_arn: var("READ_MODEL_ADMIN_SECRET_ARN")?,
            writer_user: var("READ_MODEL_WRITER_USER")?,
            reader_user: var("READ_MODEL_READER_USER")?,
            logins,
        };
        if settings.writer_user == settings.reader_user {
            return Err(MigratorError::Config("READ_MODEL_WRITER_USER and READ_MODEL_READER_USER must differ".into()));
        }
        Ok(settings)
    }
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
pub async fn run_from_env(
    get: impl Fn(&str) -> Option<String>,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<Migrated, MigratorError> {
    let settings = Settings::from_env(get)?;
    let credentials = owner_credentials(secrets, &settings.secret_arn).await?;
    let url = owner_url(&settings.admin_url, &credentials)?;
    tracing::info!(endpoint = %settings.admin_url, owner = %credentials.username, "migrating the read model");
    migrate(&url, &settings.writer_user, &settings.reader_user, settings.logins).await
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

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    const FULL: [(&str, &str); 4] = [
        ("READ_MODEL_ADMIN_URL", "postgres://cluster.example:5432/orders?sslmode=require"),
        ("READ_MODEL_ADMIN_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:rds!cluster-x"),
        ("READ_MODEL_WRITER_USER", "orders_projector"),
        ("READ_MODEL_READER_USER", "orders_query"),
    ];

    #[test]
    fn given_the_environment_then_settings_default_to_iam_logins_and_refuse_what_cannot_work() {
        let s = Settings::from_env(env(&FULL)).unwrap();
        assert_eq!(s.logins, LoginAuth::RdsIam);
        assert_eq!(s.writer_user, "orders_projector");

        for missing in FULL.map(|(k, _)| k) {
            let rest: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = Settings::from_env(env(&rest)).unwrap_err().to_string();
            assert!(err.contains(missing), "{err}");
        }
        let mut with_password = FULL.to_vec();
        with_password[0].1 = "postgres://owner:pw@cluster.example:5432/orders";
        assert!(Settings::from_env(env(&with_password)).unwrap_err().to_string().contains("credentials"));
        let mut same = FULL.to_vec();
        same[3].1 = "orders_projector";
        assert!(Settings::from_env(env(&same)).unwrap_err().to_string().contains("differ"));
        let mut existing = FULL.to_vec();
        existing.push(("READ_MODEL_LOGINS", "existing"));
        assert_eq!(Settings::from_env(env(&existing)).unwrap().logins, LoginAuth::Existing);
        let mut bad = FULL.to_vec();
        bad.push(("READ_MODEL_LOGINS", "password"));
        assert!(Settings::from_env(env(&bad)).is_err());
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
