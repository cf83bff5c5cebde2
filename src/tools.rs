//! The runner's tools besides serving: `orders project` (only the projector), `orders dead-letters` (the changes
//! set aside, and applying them again); `orders rebuild` is in `rebuild`.

use std::future::Future;
use std::sync::Arc;

use write_store::settings::{Opened, StoreSettings};

use crate::{RunError, Settings, migrate_finished, tail_embedded};

/// Which change feed `orders project` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The embedded store's change log in DATA_DIR.
    Embedded,
    /// The stream of ORDERS_TABLE (ORDERS_STORE=dynamodb), read with GetShardIterator / GetRecords.
    Dynamodb,
}

/// Runs only the projector from `source` into the read model: until `shutdown`, or with `once` until it has
/// caught up.
pub async fn project(
    settings: Settings,
    source: Source,
    once: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let model = Arc::new(migrate_finished(&settings).await?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    match (source, &settings.store) {
        (Source::Dynamodb, StoreSettings::DynamoDb { table }) => {
            let config = aws_config::load_from_env().await;
            let poller =
                change_feed::poller::Poller::new(&config, table.clone(), Arc::new(projector::ReadModelSink(model)));
            if once {
                let pass = poller.catch_up().await.map_err(|e| RunError::ReadModel(e.to_string()))?;
                println!("projected {} stream records ({} applied)", pass.records, pass.applied);
            } else {
                poller.run(stopped).await;
            }
        }
        (Source::Embedded, StoreSettings::Embedded { .. }) => {
            let Opened::Embedded(store) = settings.store.open_typed().await? else {
                return Err(RunError::ReadModel("ORDERS_STORE=embedded did not open the embedded store".into()));
            };
            if once {
                let mut after = model
                    .position(write_store::embedded::SOURCE)
                    .await
                    .map_err(|e| RunError::ReadModel(e.to_string()))?
                    .and_then(|(seq, _)| seq.as_str().parse::<u64>().ok())
                    .unwrap_or(0);
                let mut total = 0;
                loop {
                    let batch =
                        store.changes_after(after, 1_000).await.map_err(|e| RunError::ReadModel(e.to_string()))?;
                    let Some(last) = batch.last() else { break };
                    after = last.position().sequence.as_str().parse().unwrap_or(after);
                    let n = batch.len();
                    let outcome = projector::project(&model, batch.into_iter().map(Ok).collect()).await;
                    if let Some((index, reason)) = outcome.failure {
                        return Err(RunError::ReadModel(format!("change {} of a batch: {reason}", index + 1)));
                    }
                    total += n;
                }
                println!("projected {total} changes from the embedded change log");
            } else {
                tail_embedded(model, store, stopped).await;
            }
        }
        (Source::Dynamodb, _) => {
            return Err(web::settings::missing(
                "ORDERS_STORE",
                "--source dynamodb reads the stream of ORDERS_TABLE: set ORDERS_STORE=dynamodb and ORDERS_TABLE",
            )
            .into());
        }
        (Source::Embedded, _) => {
            return Err(web::settings::invalid(
                "ORDERS_STORE",
                "dynamodb",
                "--source embedded reads the embedded store: unset ORDERS_STORE or set it to embedded",
            )
            .into());
        }
    }
    Ok(())
}

/// `orders dead-letters`: lists the changes the projection set aside; with `retry`, applies each again (the
/// version guard keeps a change that is older than what is projected from undoing anything) and forgets the ones
/// that now go through. Returns how many are left.
pub async fn dead_letters(settings: Settings, retry: bool) -> Result<u64, RunError> {
    let model = migrate_finished(&settings).await?;
    let letters = model.dead_letters(10_000).await.map_err(|e| RunError::ReadModel(e.to_string()))?;
    let mut left = letters.count;
    println!("{} change(s) set aside", letters.count);
    for letter in &letters.newest {
        println!(
            "{} {} order {} failed at {}: {}",
            letter.source,
            letter.sequence.as_str(),
            letter.order_id.as_deref().unwrap_or("?"),
            domain::order::format_time(&letter.failed_at),
            letter.reason
        );
        if !retry {
            continue;
        }
        let change =
            serde_json::from_str::<domain::OrderChange>(&letter.record).map_err(|e| e.to_string()).or_else(|_| {
                let raw: serde_json::Value = serde_json::from_str(&letter.record).map_err(|e| e.to_string())?;
                change_feed::lambda::decode_raw(&raw).map_err(|e| e.to_string())
            });
        let outcome = match change {
            Ok(change) => model.apply(std::slice::from_ref(&change)).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("still does not decode: {e}")),
        };
        match outcome {
            Ok(_) => {
                model
                    .forget_dead_letter(&letter.source, &letter.sequence)
                    .await
                    .map_err(|e| RunError::ReadModel(e.to_string()))?;
                left -= 1;
                println!("  applied, and forgotten");
            }
            Err(reason) => println!("  still not applied: {reason}"),
        }
    }
    Ok(left)
}
