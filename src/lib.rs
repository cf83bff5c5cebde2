//! The local runner: with no configuration, the whole system in one process with its state under `./data`.
//! Each part is chosen by configuration (the same variables the Lambdas read); see the README's table.

pub mod bench;

use std::future::Future;
use std::net::SocketAddr;

use command_api::config::{ConfigError, Env, StoreSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub store: StoreSettings,
    pub command_api_addr: SocketAddr,
    /// Validated now so that a typo fails start-up; served once the query API exists (issue 4).
    pub query_api_addr: SocketAddr,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings {
            store: StoreSettings::from_env(env)?,
            command_api_addr: env.parse_or("COMMAND_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            query_api_addr: env.parse_or("QUERY_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 3001)))?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} (COMMAND_API_ADDR): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and closes the store.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    let store = settings.store.open().await?;
    let kind = store.kind();
    let listener = tokio::net::TcpListener::bind(settings.command_api_addr)
        .await
        .map_err(|source| RunError::Bind { addr: settings.command_api_addr, source })?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    // On stdout, one line per listener: people read it, and tests use it to find a port chosen by the OS.
    println!("command API listening on http://{addr} (store: {kind})");
    if let StoreSettings::Embedded { data_dir } = &settings.store {
        tracing::info!(data_dir = %data_dir.display(), "embedded store: orders and change log in {}/orders.db", data_dir.display());
    }
    tracing::info!("projector and query API are not part of this build yet");
    axum::serve(listener, command_api::app(store)).with_graceful_shutdown(shutdown).await.map_err(RunError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_means_embedded_on_3000_and_3001() {
        let s = Settings::from_env(&Env::from_pairs(&[])).unwrap();
        assert_eq!(s.command_api_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(s.query_api_addr.to_string(), "127.0.0.1:3001");
        assert!(matches!(s.store, StoreSettings::Embedded { .. }));
    }

    #[test]
    fn a_malformed_address_names_its_variable() {
        let err = Settings::from_env(&Env::from_pairs(&[("QUERY_API_ADDR", "3001")])).unwrap_err();
        assert!(err.to_string().starts_with("QUERY_API_ADDR=\"3001\" is invalid"), "{err}");
    }
}
