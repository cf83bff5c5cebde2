//! The write store's settings (the same variables locally and on Lambda) and opening the store they name.

use std::path::PathBuf;
use std::sync::Arc;

use crate::OrderStore;
use crate::dynamodb::DynamoDbStore;
use crate::embedded::{EmbeddedOptions, EmbeddedStore};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{name} is not set: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error("{0}")]
    Open(String),
}

pub const DEFAULT_DATA_DIR: &str = "./data";

/// Where orders are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// SQLite under `DATA_DIR`, with its change log.
    Embedded,
    /// The DynamoDB table `ORDERS_TABLE` (region, endpoint and credentials from the usual AWS variables).
    Dynamodb,
}

/// The write store's variables, as the runner and the command Lambda read them.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StoreArgs {
    /// Where orders are kept: `embedded` or `dynamodb`.
    #[arg(long, env = "ORDERS_STORE", value_enum, default_value = "embedded")]
    pub orders_store: StoreKind,
    /// The DynamoDB table of orders (with ORDERS_STORE=dynamodb).
    #[arg(
        long,
        env = "ORDERS_TABLE",
        value_parser = table_name,
        required_if_eq("orders_store", "dynamodb")
    )]
    pub orders_table: Option<String>,
    /// Where local state lives: the embedded store and, by default, the SQLite read model, the lake, query records
    /// and results, and the notice outbox.
    #[arg(long, env = "DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

impl StoreArgs {
    pub fn settings(&self) -> StoreSettings {
        match (self.orders_store, &self.orders_table) {
            (StoreKind::Dynamodb, Some(table)) => StoreSettings::DynamoDb { table: table.clone() },
            // clap requires ORDERS_TABLE with ORDERS_STORE=dynamodb; an empty name is refused when opened.
            (StoreKind::Dynamodb, None) => StoreSettings::DynamoDb { table: String::new() },
            (StoreKind::Embedded, _) => StoreSettings::Embedded { data_dir: self.data_dir.clone() },
        }
    }
}

fn table_name(raw: &str) -> Result<String, String> {
    let ok = (3..=255).contains(&raw.len())
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok { Ok(raw.to_owned()) } else { Err("a DynamoDB table name is 3-255 characters of A-Z a-z 0-9 _ - .".into()) }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Embedded { data_dir: PathBuf },
    DynamoDb { table: String },
}

impl StoreSettings {
    pub async fn open(&self) -> Result<Arc<dyn OrderStore>, OpenError> {
        Ok(self.open_typed().await?.store())
    }

    /// The store with its concrete type, for callers that also need its change feed (the local runner).
    pub async fn open_typed(&self) -> Result<Opened, OpenError> {
        match self {
            StoreSettings::Embedded { data_dir } => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| OpenError::Open(format!("cannot create DATA_DIR {}: {e}", data_dir.display())))?;
                let store =
                    EmbeddedStore::open(&data_dir.join("orders.db"), EmbeddedOptions::default()).map_err(|e| {
                        OpenError::Open(format!("cannot open the embedded store in {}: {e}", data_dir.display()))
                    })?;
                Ok(Opened::Embedded(Arc::new(store)))
            }
            StoreSettings::DynamoDb { table } => {
                if table.is_empty() {
                    return Err(OpenError::Missing {
                        name: "ORDERS_TABLE",
                        hint: "ORDERS_STORE=dynamodb needs the table's name",
                    });
                }
                let config = aws_config::load_from_env().await;
                if config.region().is_none() {
                    return Err(OpenError::Missing {
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

    /// The settings `pairs` make, as if they were the whole environment.
    fn parse(pairs: &[(&str, &str)]) -> Result<StoreSettings, String> {
        web::settings::parse_pairs::<StoreArgs>(pairs).map(|args| args.settings()).map_err(|e| e.to_string())
    }

    #[test]
    fn given_nothing_then_the_embedded_store_under_data() {
        assert_eq!(parse(&[]).unwrap(), StoreSettings::Embedded { data_dir: PathBuf::from("./data") });
    }

    #[test]
    fn given_dynamodb_then_it_needs_a_table_and_errors_name_the_variable() {
        let err = parse(&[("ORDERS_STORE", "dynamodb")]).unwrap_err();
        assert!(err.contains("ORDERS_TABLE"), "{err}");
        let err = parse(&[("ORDERS_STORE", "dynamo")]).unwrap_err();
        assert!(err.contains("ORDERS_STORE") && err.contains("dynamo"), "{err}");
        let err = parse(&[("ORDERS_STORE", "dynamodb"), ("ORDERS_TABLE", "o!")]).unwrap_err();
        assert!(err.contains("ORDERS_TABLE") && err.contains("3-255"), "{err}");
        assert_eq!(
            parse(&[("ORDERS_STORE", "dynamodb"), ("ORDERS_TABLE", "orders")]).unwrap(),
            StoreSettings::DynamoDb { table: "orders".into() }
        );
    }
}
