//! The query API's settings: what the Router is built with, and the variables the runner and the Lambda read.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a request with `consistentWith` waits for the projection before answering 503.
    pub consistency_wait: Duration,
    /// How often it looks again meanwhile.
    pub poll_every: Duration,
    /// Report answers kept in memory, each valid for one read-model epoch (0: none kept).
    pub cache_entries: usize,
    /// A source whose oldest waiting change is older than this makes the projection `degraded`.
    pub lag_threshold: Duration,
    /// What the dashboard (`GET /`) is told: where the command API is and how calls are authorized.
    pub dashboard: Dashboard,
}

/// The dashboard's view of the system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dashboard {
    /// The command API's root URL as a browser reaches it (its origin is the one other origin the page's
    /// Content-Security-Policy allows). `None`: the page cannot place orders and says so.
    pub command_api: Option<String>,
    pub auth: ApiAuth,
}

/// How the APIs authorize calls, as far as the page must know: with `Jwt` it asks for a bearer token and sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ApiAuth {
    /// No authorization (the local runner).
    #[default]
    #[value(name = "none")]
    None,
    /// SigV4-signed requests (reached through a signing proxy; see docs/dashboard.md).
    #[value(name = "AWS_IAM")]
    AwsIam,
    /// A JWT bearer token on every call.
    #[value(name = "JWT")]
    Jwt,
}

impl ApiAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiAuth::None => "none",
            ApiAuth::AwsIam => "AWS_IAM",
            ApiAuth::Jwt => "JWT",
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            consistency_wait: Duration::from_secs(5),
            poll_every: Duration::from_millis(10),
            cache_entries: 32,
            lag_threshold: LAG_THRESHOLD,
            dashboard: Dashboard::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct QueryApiArgs {
    /// Past this many seconds of lag, /health and /projection/status say `degraded`.
    #[arg(long, env = "PROJECTION_LAG_THRESHOLD_SECS", default_value_t = LAG_THRESHOLD.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub projection_lag_threshold_secs: u64,
    /// The command API's root URL as the dashboard's browser reaches it (http or https, no query). The local runner
    /// defaults it to the command API it serves.
    #[arg(long, env = "DASHBOARD_COMMAND_API_URL", value_parser = command_api_url)]
    pub dashboard_command_api_url: Option<String>,
    /// How the APIs authorize calls (`none`, `AWS_IAM` or `JWT`): with JWT the dashboard asks for a bearer token.
    #[arg(long, env = "API_AUTH", value_enum, default_value = "none")]
    pub api_auth: ApiAuth,
}

/// An absolute http(s) URL without query, fragment or credentials (`web::cors::http_url`), kept without its
/// trailing slash.
pub fn command_api_url(raw: &str) -> Result<String, String> {
    web::cors::http_url(raw).map(|url| url.as_str().trim_end_matches('/').to_owned())
}

impl From<&QueryApiArgs> for Settings {
    fn from(args: &QueryApiArgs) -> Settings {
        Settings {
            lag_threshold: Duration::from_secs(args.projection_lag_threshold_secs),
            dashboard: Dashboard { command_api: args.dashboard_command_api_url.clone(), auth: args.api_auth },
            ..Settings::default()
        }
    }
}

/// The default lag past which a source is degraded.
pub const LAG_THRESHOLD: Duration = Duration::from_secs(60);
