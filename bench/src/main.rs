//! `orders-bench`: the benchmarks, each printed next to its baseline measured in the same run
//! (`cargo run --release -p bench -- <benchmark>`; docs/benchmarks.md holds the current figures).

mod lake;
mod post;
mod projector;
mod rebuild;
mod reports;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use web::telemetry::{LogFormat, init};

#[derive(Parser)]
#[command(name = "orders-bench", about = "The benchmarks, each next to a baseline measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST /orders on the embedded store, load from this process against a server in another one, next to raw
    /// SQLite inserts of the same rows.
    Post(post::BenchArgs),
    /// Projection into PostgreSQL and MariaDB, next to one-INSERT-per-line and PostgreSQL COPY.
    Projector(projector::ProjectorArgs),
    /// Both reports over HTTP with 1,000,000 orders in PostgreSQL, next to their raw SQL and the sample's GROUP BY
    /// over every line.
    Reports(reports::ReportsArgs),
    /// The lake writer's rows/s, then the item-sales and monthly questions as ad-hoc SQL on the embedded engine
    /// next to DuckDB over the same Parquet files (`scripts/bench-lake` installs DuckDB and runs this).
    Lake(lake::LakeArgs),
    /// `orders rebuild` from an embedded store of 1,000,000 orders into PostgreSQL and MariaDB, next to the
    /// incremental projector and the databases' own bulk load of the same rows.
    Rebuild(rebuild::RebuildArgs),
    /// `orders rebuild` as `rebuild` runs it in a process of its own, printing lines, seconds and peak RSS.
    #[command(hide = true)]
    RebuildChild(Box<orders::RunnerArgs>),
    /// The runner, as `post` starts it in a process of its own (configured by the runner's variables).
    #[command(hide = true)]
    Serve(Box<orders::RunnerArgs>),
}

fn main() -> ExitCode {
    let cli: Cli = web::settings::parse().unwrap_or_else(|e| e.exit());
    init(LogFormat::Pretty);
    let result = tokio::runtime::Runtime::new().map_err(anyhow::Error::from).and_then(|runtime| {
        runtime.block_on(async {
            match cli.command {
                Command::Post(args) => post::run(args).await,
                Command::Projector(args) => projector::run(args).await,
                Command::Reports(args) => reports::run(args).await,
                Command::Lake(args) => lake::run(args).await,
                Command::Rebuild(args) => rebuild::run(args).await,
                Command::RebuildChild(args) => rebuild::child(&args).await,
                Command::Serve(args) => {
                    let settings = orders::Settings::from_args(&args)?;
                    Ok(orders::run(settings, orders::shutdown_signal()).await?)
                }
            }
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orders-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
