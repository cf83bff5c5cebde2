//! `orders`: runs the whole system locally (`cargo run`), and its tools (migrate, project, rebuild, dead letters).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use web::telemetry::{LogFormat, init};

#[derive(Parser)]
#[command(name = "orders", about = "CQRS order system: local runner and tools", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Every part's settings: each flag's variable (shown in brackets) sets it the same way.
    #[command(flatten)]
    settings: orders::RunnerArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the system (the default), configured by the variables below.
    Serve,
    /// Apply the read model's migrations to READ_MODEL_URL (the runner also does this at start).
    Migrate,
    /// Rebuild the whole read model in bulk from the write model into an empty READ_MODEL_URL (or one an
    /// interrupted rebuild left unfinished, which it starts clean).
    Rebuild(orders::RebuildArgs),
    /// Run only the projector: follow a change feed into READ_MODEL_URL until Ctrl-C.
    Project {
        #[arg(long, value_enum)]
        source: orders::Source,
        /// Stop once caught up instead of following.
        #[arg(long)]
        once: bool,
    },
    /// List the changes the projection set aside because the read model could not apply them.
    DeadLetters {
        /// Apply each again (after a fix), forgetting those that now go through.
        #[arg(long)]
        retry: bool,
    },
    /// One embedded ad-hoc query, in a process of its own (started by the runner, never by people).
    #[command(name = orders::ADHOC_WORKER, hide = true)]
    AdhocWorker,
}

fn main() -> ExitCode {
    let cli: Cli = web::settings::parse().unwrap_or_else(|e| e.exit());
    if let Some(Command::AdhocWorker) = cli.command {
        return adhoc_embedded::worker::main();
    }
    init(LogFormat::Pretty);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orders: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                let settings = orders::Settings::from_args(&cli.settings)?;
                orders::run(settings, orders::shutdown_signal()).await.map_err(anyhow::Error::from)
            }
            Command::Migrate => {
                let settings = orders::Settings::from_args(&cli.settings)?;
                let model = orders::migrate(&settings).await?;
                println!("read model migrated ({})", model.dialect().name());
                Ok(())
            }
            Command::Project { source, once } => {
                let settings = orders::Settings::from_args(&cli.settings)?;
                orders::project(settings, source, once, orders::shutdown_signal()).await.map_err(anyhow::Error::from)
            }
            Command::Rebuild(args) => {
                let settings = orders::Settings::from_args(&cli.settings)?;
                let summary = orders::rebuild(settings, args, orders::shutdown_signal()).await?;
                println!("{summary}");
                Ok(())
            }
            Command::DeadLetters { retry } => {
                let settings = orders::Settings::from_args(&cli.settings)?;
                let left = orders::dead_letters(settings, retry).await?;
                if retry {
                    println!("{left} change(s) still set aside");
                }
                Ok(())
            }
            // Handled above, before any runtime or logging starts.
            Command::AdhocWorker => Ok(()),
        }
    });
    // Whatever is still running (a query's worker is killed as its task is dropped) gets no more than a second.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orders: {e:#}");
            ExitCode::FAILURE
        }
    }
}
