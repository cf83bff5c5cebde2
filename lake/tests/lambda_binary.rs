//! The `lake-writer-lambda` binary as Lambda runs it: started against a local Lambda Runtime API
//! (`test_support::lambda`) and handed the sample stream events of `events/` (the lake writer consumes the same stream
//! as the projector), writing Parquet under a local `LAKE_URL`.

use std::time::Duration;

use test_support::lambda::event;

fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn given_the_sample_stream_events_when_the_binary_runs_them_then_the_lake_gets_files_and_the_bad_record_is_set_aside()
 {
    let dir = tempfile::tempdir().unwrap();
    let events = ["dynamodb-batch.json", "dynamodb-malformed.json"];
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_lake-writer-lambda"),
        &[("LAKE_URL", dir.path().display().to_string())],
        events.iter().map(|e| event(e)).collect(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(run.outcomes.len(), 2, "{:?}\n{}", run.init_error, run.logs);
    let ok = run.outcomes[0].response();
    assert_eq!(ok["batchItemFailures"].as_array().map(Vec::len), Some(0), "{ok}");
    // The malformed record is logged and set aside, not retried: it cannot hold up the shard.
    let bad = run.outcomes[1].response();
    assert_eq!(bad["batchItemFailures"].as_array().map(Vec::len), Some(0), "{bad}");
    assert!(run.logs.contains("change set aside"), "{}", run.logs);

    let files = parquet_files(dir.path());
    assert!(!files.is_empty(), "no Parquet under {}", dir.path().display());
    assert!(files.iter().all(|f| f.display().to_string().contains("dt=")), "{files:?}");
}
