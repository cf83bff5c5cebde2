//! The `projector-lambda` binary as Lambda runs it: started against a local Lambda Runtime API
//! (`test_support::lambda`), handed the sample events of `events/`, answering each with its batch item failures.

use std::time::Duration;

use read_model::ReadModel;
use serde_json::Value;
use test_support::lambda::event;

fn failures(response: &Value) -> Vec<String> {
    let list = response["batchItemFailures"].as_array().unwrap_or_else(|| panic!("no batchItemFailures: {response}"));
    list.iter().map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn given_the_sample_stream_events_when_the_binary_runs_them_then_it_projects_and_sets_the_malformed_record_aside()
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
    let model = ReadModel::connect(&url).unwrap();
    model.migrate().await.unwrap();

    let events = ["dynamodb-insert.json", "dynamodb-modify.json", "dynamodb-malformed.json", "dynamodb-remove.json"];
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_projector-lambda"),
        &[("READ_MODEL_URL", url.clone())],
        events.iter().map(|e| event(e)).collect(),
        Duration::from_secs(60),
    )
    .await;
    assert!(run.init_error.is_none(), "{:?}\n{}", run.init_error, run.logs);
    assert_eq!(run.outcomes.len(), events.len(), "one answer per event:\n{}", run.logs);

    assert!(failures(run.outcomes[0].response()).is_empty(), "insert");
    assert!(failures(run.outcomes[1].response()).is_empty(), "modify");
    assert!(failures(run.outcomes[2].response()).is_empty(), "the malformed record is set aside, not retried");
    assert!(failures(run.outcomes[3].response()).is_empty(), "remove");

    let snapshot = model.snapshot().await.unwrap();
    let orders: Vec<String> = snapshot.orders.keys().map(|o| o.to_string()).collect();
    assert_eq!(orders, ["6120"], "6119 was inserted, amended, then removed; 6120 came after the malformed record");
    assert_eq!(snapshot.tombstones.len(), 1);
    let letters = model.dead_letters(10).await.unwrap();
    assert_eq!(letters.newest.iter().map(|l| l.sequence.as_str()).collect::<Vec<_>>(), ["110000000000000000002"]);
    assert!(run.logs.contains("change set aside"), "{}", run.logs);
}

#[tokio::test]
async fn given_no_read_model_setting_when_the_binary_starts_then_it_reports_an_init_error_naming_it() {
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_projector-lambda"),
        &[],
        vec![event("dynamodb-insert.json")],
        Duration::from_secs(30),
    )
    .await;
    assert!(run.outcomes.is_empty(), "{:?}", run.outcomes);
    assert!(
        run.logs.contains("READ_MODEL_URL") || format!("{:?}", run.init_error).contains("READ_MODEL_URL"),
        "{}",
        run.logs
    );
}
