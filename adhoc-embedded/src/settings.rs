//! The embedded engine's limits, and the variables the runner reads them from.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedSettings {
    /// Per-query time limit (`QUERY_TIMEOUT_SECS`, default 300).
    pub timeout: Duration,
    /// Memory a query may hold (`QUERY_MEMORY_MB`, default 1024); beyond it, sorts spill to disk or the query fails.
    /// Its worker process may hold `worker::OVERHEAD` more (the executable, thread stacks), and no more.
    pub memory_limit: usize,
    /// Queries run at once; the rest wait QUEUED.
    pub concurrency: usize,
}

impl Default for EmbeddedSettings {
    fn default() -> EmbeddedSettings {
        EmbeddedSettings { timeout: Duration::from_secs(300), memory_limit: 1 << 30, concurrency: 2 }
    }
}

/// The embedded engine's limits, as the runner reads them.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct EmbeddedArgs {
    /// How long one ad-hoc query may run, in seconds.
    #[arg(long, env = "QUERY_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub query_timeout_secs: u64,
    /// Memory one ad-hoc query may hold, in MiB.
    #[arg(long, env = "QUERY_MEMORY_MB", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(16..=1 << 20))]
    pub query_memory_mb: usize,
}

impl From<&EmbeddedArgs> for EmbeddedSettings {
    fn from(args: &EmbeddedArgs) -> EmbeddedSettings {
        EmbeddedSettings {
            timeout: Duration::from_secs(args.query_timeout_secs),
            memory_limit: args.query_memory_mb.saturating_mul(1 << 20),
            ..Default::default()
        }
    }
}
