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
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            consistency_wait: Duration::from_secs(5),
            poll_every: Duration::from_millis(10),
            cache_entries: 32,
            lag_threshold: LAG_THRESHOLD,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct QueryApiArgs {
    /// Past this many seconds of lag, /health and /projection/status say `degraded`.
    #[arg(long, env = "PROJECTION_LAG_THRESHOLD_SECS", default_value_t = LAG_THRESHOLD.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub projection_lag_threshold_secs: u64,
}

impl From<&QueryApiArgs> for Settings {
    fn from(args: &QueryApiArgs) -> Settings {
        Settings { lag_threshold: Duration::from_secs(args.projection_lag_threshold_secs), ..Settings::default() }
    }
}

/// The default lag past which a source is degraded.
pub const LAG_THRESHOLD: Duration = Duration::from_secs(60);
