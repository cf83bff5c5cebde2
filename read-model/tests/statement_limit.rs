//! MySQL statements under a raised `READ_MODEL_MAX_STATEMENT_BYTES`, in a test binary of their own: the longest
//! statement is counted per process, and `connections.rs` checks that nothing there goes over RDS Proxy's 16 KB.
//! MariaDB must be running (127.0.0.1:3306 root without password, or TEST_MYSQL_URL); if it cannot be reached the
//! test fails and says so.

use test_support::databases::*;

use read_model::ReadModel;
use read_model::dialect::MYSQL_STATEMENT_LIMIT;

#[tokio::test]
async fn given_a_raised_statement_limit_on_mariadb_then_batches_go_out_in_longer_statements_with_the_same_result() {
    // Given a read model on MariaDB whose statements may grow to 1 MiB, as READ_MODEL_MAX_STATEMENT_BYTES allows.
    let db = fresh(Backend::MariaDb).await;
    let limit = 1_048_576;
    let model = ReadModel::connect(&db.url).unwrap().with_mysql_statement_limit(limit);
    let (history, first) = long_id_history();

    // When the batches of the longest ids are applied.
    model.apply(&history.changes[..first]).await.unwrap();
    model.apply(&history.changes[first..]).await.unwrap();

    // Then the read model is the same recomputation, reached with statements far over 16 KB (the cut is lifted)
    // and within the raised limit.
    assert_equals_recomputation(&model, &history, "raised limit").await;
    let longest = read_model::db::longest_mysql_statement();
    assert!(longest > 8 * MYSQL_STATEMENT_LIMIT && longest <= limit, "the longest statement: {longest} bytes");
    model.close().await;
    db.drop_database().await;
}
