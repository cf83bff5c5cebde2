//! Settings from environment variables (the same names locally and on Lambda). A missing or malformed variable is
//! an error that names it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::OrderStore;
use crate::dynamodb::DynamoDbStore;
use crate::embedded::{EmbeddedOptions, EmbeddedStore};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
    #[error("{0}")]
    Open(String),
    /// A setting's own explanation, naming the variable.
    #[error("{0}")]
    Setting(String),
}

/// A view of the environment; tests pass a map instead of the process environment.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct Env(Lookup);

impl Env {
    pub fn process() -> Env {
        Env(Box::new(|name| std::env::var(name).ok()))
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Env(Box::new(move |name| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())))
    }

    /// The variable's value; set-but-empty counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn parse_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => {
                value.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string(), value })
            }
        }
    }
}

pub const DEFAULT_DATA_DIR: &str = "./data";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Embedded { data_dir: PathBuf },
    DynamoDb { table: String },
}

impl StoreSettings {
    /// `ORDERS_STORE` = `embedded` (default; state in `DATA_DIR`, default `./data`) or `dynamodb` (needs
    /// `ORDERS_TABLE`; endpoint, region and credentials come from the usual AWS variables, e.g. `AWS_ENDPOINT_URL`).
    pub fn from_env(env: &Env) -> Result<StoreSettings, ConfigError> {
        let kind = env.get("ORDERS_STORE").unwrap_or_else(|| "embedded".to_owned());
        match kind.trim() {
            "embedded" => Ok(StoreSettings::Embedded {
                data_dir: PathBuf::from(env.get("DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned())),
            }),
            "dynamodb" => {
                let table = env.get("ORDERS_TABLE").ok_or(ConfigError::Missing {
                    name: "ORDERS_TABLE",
                    hint: "ORDERS_STORE=dynamodb needs the orders table's name",
                })?;
                if !table.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) || table.len() < 3
                {
                    return Err(ConfigError::Invalid {
                        name: "ORDERS_TABLE",
                        value: table,
                        reason: "a DynamoDB table name is 3-255 characters of A-Z a-z 0-9 _ - .".into(),
                    });
                }
                Ok(StoreSettings::DynamoDb { table })
            }
            _ => Err(ConfigError::Invalid {
                name: "ORDERS_STORE",
                value: kind,
                reason: "expected `embedded` or `dynamodb`".into(),
            }),
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn OrderStore>, ConfigError> {
        Ok(self.open_typed().await?.store())
    }

    /// The store with its concrete type, for callers that also need its change feed (the local runner).
    pub async fn open_typed(&self) -> Result<Opened, ConfigError> {
        match self {
            StoreSettings::Embedded { data_dir } => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| ConfigError::Open(format!("cannot create DATA_DIR {}: {e}", data_dir.display())))?;
                let store =
                    EmbeddedStore::open(&data_dir.join("orders.db"), EmbeddedOptions::default()).map_err(|e| {
                        ConfigError::Open(format!("cannot open the embedded store in {}: {e}", data_dir.display()))
                    })?;
                Ok(Opened::Embedded(Arc::new(store)))
            }
            StoreSettings::DynamoDb { table } => {
                let config = aws_config::load_from_env().await;
                if config.region().is_none() {
                    return Err(ConfigError::Missing {
                        name: "AWS_REGION",
                        hint: "ORDERS_STORE=dynamodb needs a region",
                    });
                }
                Ok(Opened::DynamoDb(Arc::new(DynamoDbStore::new(crate::dynamodb::client(&config), table.clone()))))
            }
        }
    }
}

pub enum Opened {
    Embedded(Arc<EmbeddedStore>),
    DynamoDb(Arc<DynamoDbStore>),
}

impl Opened {
    pub fn store(&self) -> Arc<dyn OrderStore> {
        match self {
            Opened::Embedded(s) => s.clone(),
            Opened::DynamoDb(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_embedded_store_under_data() {
        assert_eq!(
            StoreSettings::from_env(&Env::from_pairs(&[])).unwrap(),
            StoreSettings::Embedded { data_dir: PathBuf::from("./data") }
        );
    }

    #[test]
    fn dynamodb_needs_a_table_and_errors_name_the_variable() {
        let err = StoreSettings::from_env(&Env::from_pairs(&[("ORDERS_STORE", "dynamodb")])).unwrap_err();
        assert!(err.to_string().contains("ORDERS_TABLE"), "{err}");
        let err = StoreSettings::from_env(&Env::from_pairs(&[("ORDERS_STORE", "dynamo")])).unwrap_err();
        assert!(err.to_string().starts_with("ORDERS_STORE=\"dynamo\" is invalid"), "{err}");
        assert_eq!(
            StoreSettings::from_env(&Env::from_pairs(&[("ORDERS_STORE", "dynamodb"), ("ORDERS_TABLE", "orders")]))
                .unwrap(),
            StoreSettings::DynamoDb { table: "orders".into() }
        );
    }

    #[test]
    fn parse_or_names_the_variable_and_value() {
        let env = Env::from_pairs(&[("COMMAND_API_ADDR", "localhost:x")]);
        let err =
            env.parse_or::<std::net::SocketAddr>("COMMAND_API_ADDR", "127.0.0.1:3000".parse().unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("COMMAND_API_ADDR=\"localhost:x\" is invalid"), "{err}");
    }
}
