//! The runner's settings: every part's variables, composed. `orders --help` lists them all with their defaults;
//! the Lambdas read the same variables through the same parts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adhoc::settings::{AthenaArgs, CommonArgs};
use adhoc_embedded::EmbeddedArgs;
use lake::LakeArgs;
use query_api::settings::QueryApiArgs;
use read_model::settings::ReadModelArgs;
use write_store::settings::{StoreArgs, StoreSettings};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RunnerArgs {
    #[command(flatten, next_help_heading = "Write store")]
    pub store: StoreArgs,

    /// Where the command API listens.
    #[arg(long, env = "COMMAND_API_ADDR", default_value = "127.0.0.1:3000", help_heading = "APIs")]
    pub command_api_addr: SocketAddr,
    /// Where the query API listens (reports, ad-hoc SQL, projection status).
    #[arg(long, env = "QUERY_API_ADDR", default_value = "127.0.0.1:3001", help_heading = "APIs")]
    pub query_api_addr: SocketAddr,
    /// Who every local caller of /queries is.
    #[arg(long, env = "DEV_IDENTITY", default_value = "dev", help_heading = "APIs")]
    pub dev_identity: String,
    /// The local caller's registered address for notices.
    #[arg(long, env = "DEV_EMAIL", default_value = "dev@localhost", help_heading = "APIs")]
    pub dev_email: String,
    #[command(flatten, next_help_heading = "APIs")]
    pub query_api: QueryApiArgs,
    /// Origins whose pages may call the command API (CORS), comma-separated `http(s)://host[:port]`; by default the
    /// query API's own, where the dashboard is served.
    #[arg(long, env = "DASHBOARD_ORIGINS", value_delimiter = ',', value_parser = web::cors::origin,
          help_heading = "APIs")]
    pub dashboard_origins: Vec<String>,

    #[command(flatten, next_help_heading = "Read model")]
    pub read_model: ReadModelArgs,
    /// What the query API reads through (a user holding orders_reader, same database); by default READ_MODEL_URL.
    #[arg(long, env = "READ_MODEL_READER_URL", value_parser = read_model::settings::read_model_url, hide_env_values = true,
          help_heading = "Read model")]
    pub read_model_reader_url: Option<String>,

    #[command(flatten, next_help_heading = "Lake")]
    pub lake: LakeArgs,
    /// How often the local lake writer writes what has arrived, in milliseconds.
    #[arg(long, env = "LAKE_FLUSH_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..),
          help_heading = "Lake")]
    pub lake_flush_ms: u64,

    /// Which engine runs ad-hoc SQL: `embedded` (DataFusion over the lake) or `athena`.
    #[arg(long, env = "QUERY_ENGINE", value_enum, default_value = "embedded", help_heading = "Ad-hoc SQL")]
    pub query_engine: EngineKind,
    #[command(flatten, next_help_heading = "Ad-hoc SQL")]
    pub adhoc: CommonArgs,
    #[command(flatten, next_help_heading = "Ad-hoc SQL")]
    pub embedded_engine: EmbeddedArgs,
    #[command(flatten, next_help_heading = "Ad-hoc SQL")]
    pub athena: AthenaArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Embedded,
    Athena,
}

/// The runner's settings, resolved: defaults that depend on other settings filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub store: StoreSettings,
    pub command_api_addr: SocketAddr,
    pub query_api_addr: SocketAddr,
    /// The read model's own settings; `read_model_url` is its URL resolved.
    pub read_model: ReadModelArgs,
    pub read_model_url: String,
    pub read_model_reader_url: Option<String>,
    /// Where local state lives (`DATA_DIR`).
    pub data_dir: PathBuf,
    pub lake_url: String,
    pub lake_flush: Duration,
    pub query_engine: QueryEngine,
    pub adhoc: adhoc::CommonSettings,
    pub embedded_engine: adhoc_embedded::EmbeddedSettings,
    pub dev_identity: adhoc::Identity,
    pub query_api: query_api::Settings,
    /// Origins allowed to call the command API; empty: the query API's own (known once it listens).
    pub dashboard_origins: Vec<String>,
}

/// Which engine runs ad-hoc SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEngine {
    Embedded,
    /// Configured as the query Lambda is.
    Athena(Box<adhoc::AthenaSettings>),
}

impl Settings {
    /// From the process's arguments and environment.
    pub fn from_args(args: &RunnerArgs) -> Result<Settings, clap::Error> {
        let data_dir = args.store.data_dir.clone();
        let read_model_url = args
            .read_model
            .read_model_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("readmodel.db").display()));
        Ok(Settings {
            store: args.store.settings(),
            command_api_addr: args.command_api_addr,
            query_api_addr: args.query_api_addr,
            read_model: args.read_model.clone(),
            read_model_url,
            read_model_reader_url: args.read_model_reader_url.clone(),
            lake_url: args.lake.lake_url.clone().unwrap_or_else(|| data_dir.join("lake").display().to_string()),
            lake_flush: Duration::from_millis(args.lake_flush_ms),
            query_engine: match args.query_engine {
                EngineKind::Embedded => QueryEngine::Embedded,
                EngineKind::Athena => QueryEngine::Athena(Box::new(args.athena.settings(&args.adhoc)?)),
            },
            adhoc: (&args.adhoc).into(),
            embedded_engine: (&args.embedded_engine).into(),
            dev_identity: adhoc::Identity { principal: args.dev_identity.clone(), email: Some(args.dev_email.clone()) },
            query_api: (&args.query_api).into(),
            dashboard_origins: args.dashboard_origins.clone(),
            data_dir,
        })
    }

    /// From `pairs`, as if they were the whole environment.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, clap::Error> {
        Settings::from_args(&web::settings::parse_pairs(pairs)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_configuration_then_everything_is_embedded_on_3000_and_3001() {
        let s = Settings::from_pairs(&[]).unwrap();
        assert_eq!(s.read_model_url, "sqlite://./data/readmodel.db?mode=rwc");
        assert_eq!(s.lake_url, "./data/lake");
        assert_eq!(s.command_api_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(s.query_api_addr.to_string(), "127.0.0.1:3001");
        assert_eq!(s.store, StoreSettings::Embedded { data_dir: "./data".into() });
        assert_eq!(s.query_engine, QueryEngine::Embedded);
        assert_eq!(s.query_api.lag_threshold, Duration::from_secs(60));
        assert_eq!((s.query_api.dashboard.command_api, s.dashboard_origins), (None, vec![]), "found once listening");
    }

    #[test]
    fn given_dashboard_origins_then_each_must_be_an_origin() {
        let s = Settings::from_pairs(&[("DASHBOARD_ORIGINS", "https://dash.example.com, http://localhost:8080")]);
        assert_eq!(s.unwrap().dashboard_origins, ["https://dash.example.com", "http://localhost:8080"]);
        for bad in ["*", "https://dash.example.com/app"] {
            let err = Settings::from_pairs(&[("DASHBOARD_ORIGINS", bad)]).unwrap_err().to_string();
            assert!(err.contains("DASHBOARD_ORIGINS"), "{err}");
        }
        let s = Settings::from_pairs(&[("DASHBOARD_COMMAND_API_URL", "https://api.example.com/"), ("API_AUTH", "JWT")]);
        let dashboard = s.unwrap().query_api.dashboard;
        assert_eq!(dashboard.command_api.as_deref(), Some("https://api.example.com"));
        assert_eq!(dashboard.auth, query_api::settings::ApiAuth::Jwt);
    }

    #[test]
    fn given_a_data_dir_then_every_local_default_follows_it() {
        let s = Settings::from_pairs(&[("DATA_DIR", "/var/orders")]).unwrap();
        assert_eq!(s.read_model_url, "sqlite:///var/orders/readmodel.db?mode=rwc");
        assert_eq!(s.lake_url, "/var/orders/lake");
    }

    #[test]
    fn given_a_reader_url_then_the_query_side_reads_through_it() {
        assert_eq!(Settings::from_pairs(&[]).unwrap().read_model_reader_url, None);
        let reader = "postgres://reader@127.0.0.1:5432/orders";
        let s = Settings::from_pairs(&[("READ_MODEL_READER_URL", reader)]).unwrap();
        assert_eq!(s.read_model_reader_url.as_deref(), Some(reader));
    }

    #[test]
    fn given_athena_then_its_workgroup_and_table_are_required() {
        let err = Settings::from_pairs(&[("QUERY_ENGINE", "athena")]).unwrap_err().to_string();
        assert!(err.contains("ATHENA_WORKGROUP is not set"), "{err}");
        let s = Settings::from_pairs(&[
            ("QUERY_ENGINE", "athena"),
            ("ATHENA_WORKGROUP", "orders"),
            ("QUERIES_TABLE", "queries"),
        ])
        .unwrap();
        assert!(matches!(s.query_engine, QueryEngine::Athena(a) if a.workgroup == "orders"));
    }

    #[test]
    fn given_a_malformed_value_then_the_error_names_its_variable() {
        for (name, value) in [
            ("QUERY_API_ADDR", "3001"),
            ("READ_MODEL_URL", "oracle://x"),
            ("READ_MODEL_READER_URL", "redis://x"),
            ("READ_MODEL_MAX_STATEMENT_BYTES", "4096"),
            ("QUERY_ENGINE", "duckdb"),
            ("QUERY_MEMORY_MB", "lots"),
            ("ORDERS_STORE", "dynamo"),
        ] {
            let err = Settings::from_pairs(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(value), "{name}: {err}");
        }
    }

    #[test]
    fn given_blank_values_then_they_count_as_unset() {
        let blank = Settings::from_pairs(&[("READ_MODEL_URL", ""), ("QUERY_API_ADDR", " "), ("QUERY_ENGINE", "")]);
        assert_eq!(blank.unwrap(), Settings::from_pairs(&[]).unwrap());
    }
}
