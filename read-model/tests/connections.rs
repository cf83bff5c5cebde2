//! The read model's connections on PostgreSQL and MariaDB, each test in a fresh database: IAM tokens only over
//! TLS, the reader role, idle connections the server ended, a statement failing part way through a batch, and
//! MySQL statements that RDS Proxy passes without pinning. The servers must be running (see read_model.rs).

mod common;

use domain::testkit::order;
use domain::{ChangeKind, OrderChange};
use read_model::{Dialect, ReadModel};
use sqlx::Executor;

use test_support::databases::*;

use common::{change, item};

/// RDS Proxy's MySQL IAM sends the token through the cleartext plugin, so the connection must be TLS or nothing.
#[tokio::test]
async fn given_mysql_iam_auth_then_the_token_only_ever_travels_over_tls() {
    // Given the MariaDB here and IAM auth with TLS required
    let base = server_url("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
    let admin = format!("{base}/test");
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|e| {
        panic!("cannot reach {admin} ({e}): start MariaDB/MySQL on 127.0.0.1:3306 (root, no password), or set TEST_MYSQL_URL")
    });
    let rows = conn.fetch_all("SELECT @@have_ssl").await.unwrap();
    let have_ssl: String = sqlx::Row::try_get(&rows[0], 0).unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username("projector").unwrap();
    url.set_query(Some("ssl-mode=REQUIRED"));
    let iam = read_model::rds::IamAuth {
        region: "eu-west-1".into(),
        credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
        ),
    };
    let model = ReadModel::connect_iam(url.as_str(), iam).await.unwrap();

    // When the pool connects
    let error = model.migrate().await.unwrap_err().to_string();

    // Then a server without TLS is refused before authentication; with TLS, the (fake) token is what is refused
    if have_ssl.eq_ignore_ascii_case("YES") {
        assert!(error.contains("Access denied"), "{error}");
    } else {
        let lower = error.to_lowercase();
        assert!(lower.contains("tls") || lower.contains("ssl"), "refused for want of TLS: {error}");
    }
}

/// The migrations create `orders_reader`: a user holding it reads every table and writes none.
#[tokio::test]
async fn given_a_user_with_the_reader_role_then_it_can_read_the_read_model_and_not_write_it() {
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let db = fresh(backend).await;
        let admin = db.admin_url.clone().unwrap();
        let user = format!("{}_reader", db.name);
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap();
        let (setup, reader_url, teardown) = match backend {
            Backend::Postgres => (
                vec![format!("CREATE ROLE {user} LOGIN IN ROLE orders_reader")],
                format!(
                    "{}/{}",
                    admin.rsplit_once('/').unwrap().0.replacen("postgres@", &format!("{user}@"), 1),
                    db.name
                ),
                vec![format!("DROP ROLE {user}")],
            ),
            _ => (
                vec![
                    format!("CREATE USER '{user}'@'127.0.0.1'"),
                    format!("GRANT orders_reader TO '{user}'@'127.0.0.1'"),
                    format!("SET DEFAULT ROLE orders_reader FOR '{user}'@'127.0.0.1'"),
                ],
                format!("{}/{}", admin.rsplit_once('/').unwrap().0.replacen("root@", &format!("{user}@"), 1), db.name),
                vec![format!("DROP USER '{user}'@'127.0.0.1'")],
            ),
        };
        for sql in &setup {
            conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap_or_else(|e| panic!("{backend:?} {sql}: {e}"));
        }

        let reader = ReadModel::connect(&reader_url).unwrap();
        let report = reader.item_report(&read_model::ItemQuery {
            sort: read_model::ItemSort::ItemId,
            descending: false,
            limit: None,
            after: None,
        });
        assert_eq!(report.await.unwrap().rows, vec![], "{backend:?}: the reader reads");
        let o = order(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#, "2026-11-21T09:00:00Z");
        let err = reader.apply(&[change(ChangeKind::Insert, None, Some(&o), 1)]).await.unwrap_err().to_string();
        assert!(err.contains("denied") || err.contains("permission"), "{backend:?}: the reader cannot write: {err}");
        reader.close().await;

        for sql in &teardown {
            conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap();
        }
        db.drop_database().await;
    }
}

/// Ends every session on database `name` but the caller's own, from `admin`: what a server restart, a failover or
/// a proxy closing idle clients does to a pool's idle connections.
async fn end_other_sessions(backend: Backend, admin: &str, name: &str) -> usize {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await.unwrap();
    match backend {
        Backend::Postgres => {
            let ended: Vec<(bool,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            ended.len()
        }
        _ => {
            let ids: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
                 WHERE db = '{name}' AND id <> CONNECTION_ID()"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (id,) in &ids {
                conn.execute(sqlx::AssertSqlSafe(format!("KILL {id}"))).await.unwrap();
            }
            ids.len()
        }
    }
}

#[tokio::test]
async fn given_the_server_ended_the_pools_idle_connections_then_a_read_after_a_second_idle_gets_a_new_one() {
    use read_model::{ItemQuery, ItemSort};
    let all = ItemQuery { sort: ItemSort::ItemId, descending: false, limit: None, after: None };
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let db = fresh(backend).await;
        let o = order(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#, "2026-11-21T09:00:00Z");
        db.model.apply(&[change(ChangeKind::Insert, None, Some(&o), 1)]).await.unwrap();
        assert_eq!(db.model.item_report(&all).await.unwrap().rows.len(), 1, "{backend:?}");

        // Given: the pool's connections are idle, and the server ends them.
        let admin = db.admin_url.clone().unwrap();
        assert!(end_other_sessions(backend, &admin, &db.name).await > 0, "{backend:?}: the pool had a connection");
        // When: a read comes after a second idle (the pool pings a connection idle that long before handing it out).
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        // Then: the dead connection is found and replaced, and the read succeeds.
        let page = db.model.item_report(&all).await.unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        assert_eq!(page.rows.len(), 1, "{backend:?}");
        db.drop_database().await;
    }
}

/// Runs `sql` on the test's database, outside the read model.
async fn exec(db: &Fresh, sql: &str) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.unwrap();
}

#[tokio::test]
async fn given_a_statement_fails_part_way_through_a_batch_then_its_error_is_returned_nothing_is_applied_and_the_retry_converges()
 {
    for backend in ALL {
        let db = fresh(backend).await;
        // Given a database that refuses lines of 1,000 units or more (a stand-in for any write that fails after
        // others of the same transaction: here the first of five line statements, after the order rows)
        let (refuse, allow) = match backend {
            Backend::Sqlite => (
                "CREATE TRIGGER test_small_lines BEFORE INSERT ON orderitems WHEN NEW.quantity >= 1000 \
                 BEGIN SELECT RAISE(ABORT, 'line too large'); END",
                "DROP TRIGGER test_small_lines",
            ),
            _ => (
                "ALTER TABLE orderitems ADD CONSTRAINT test_small_lines CHECK (quantity < 1000)",
                "ALTER TABLE orderitems DROP CONSTRAINT test_small_lines",
            ),
        };
        exec(&db, refuse).await;
        let batch: Vec<OrderChange> = (0..3_000u64)
            .map(|i| {
                let first = if i == 0 { 5_000 } else { 1 };
                let json = format!(
                    r#"{{"orderId":"o{i}","items":[{{"itemid":"a","quantity":{first}}},{{"itemid":"b{}","quantity":2}},{{"itemid":"c","quantity":3}}]}}"#,
                    i % 7
                );
                let o = order(&json, "2026-11-21T09:00:00Z");
                change(ChangeKind::Insert, None, Some(&o), i + 1)
            })
            .collect();

        // When the batch is applied
        let err = db.model.apply(&batch).await.expect_err("the refused line fails the batch");

        // Then the database's own error comes back, and nothing of the batch is visible: no orders, lines,
        // totals or position
        assert!(matches!(err, read_model::ProjectionError::Database(_)), "{backend:?}: {err}");
        assert_eq!(db.model.snapshot().await.unwrap(), read_model::Snapshot::default(), "{backend:?}");
        assert_eq!(db.rows_in("orderitems").await, 0, "{backend:?}");

        // And once the database takes the line, the same batch applies in full on the same pool
        exec(&db, allow).await;
        let applied = db.model.apply(&batch).await.unwrap();
        assert_eq!(applied.applied, 3_000, "{backend:?}");
        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(snap.orders.len(), 3_000, "{backend:?}");
        assert_eq!((snap.items[&item("a")].quantity, snap.items[&item("a")].orders), (7_999, 3_000), "{backend:?}");
        assert_eq!((snap.items[&item("c")].quantity, snap.items[&item("c")].orders), (9_000, 3_000), "{backend:?}");
        assert_eq!(db.rows_in("orderitems").await, 9_000, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_batches_of_the_longest_ids_on_mariadb_then_no_statement_is_long_enough_for_rds_proxy_to_pin() {
    // Given 2,000 new orders with the longest ids in one batch, then a batch amending, cancelling and deleting most
    // of them: every statement kind with its longest lists.
    let db = fresh(Backend::MariaDb).await;
    let (history, first) = long_id_history();

    // When they are applied as two batches.
    db.model.apply(&history.changes[..first]).await.unwrap();
    db.model.apply(&history.changes[first..]).await.unwrap();

    // Then the read model is right, and no statement this process sent to MySQL was over RDS Proxy's 16 KB (the
    // lists were long enough to need cutting: the longest statements come close to the limit).
    assert_equals_recomputation(&db.model, &history, "long ids").await;
    let longest = read_model::db::longest_mysql_statement();
    assert!(longest <= read_model::dialect::MYSQL_STATEMENT_LIMIT, "a statement of {longest} bytes");
    assert!(longest > read_model::dialect::MYSQL_STATEMENT_LIMIT * 3 / 4, "the longest statement: {longest} bytes");
    db.drop_database().await;
}

#[tokio::test]
async fn given_statements_with_arguments_on_mariadb_then_none_is_prepared() {
    // Given a connection of the read model's pool (RDS Proxy pins the session of any prepared statement).
    let db = fresh(Backend::MariaDb).await;
    let pool = read_model::db::Pool::connect_lazy(Dialect::MySql, &db.url, read_model::db::Mode::Url).unwrap();
    let mut tx = pool.begin_write().await.unwrap();
    let prepared = |rows: Vec<read_model::db::DbRow>| rows[0].text(1).unwrap().parse::<u64>().unwrap();
    let status = "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'";
    let before = prepared(tx.fetch(status, &[]).await.unwrap());

    // When statements with text, integer and NULL arguments run and read rows.
    use read_model::db::Arg;
    let insert = "INSERT INTO projection_positions (source, sequence, last_changed_at, applied_at) VALUES (?, ?, ?, ?)";
    // (the source column is ASCII, as ids are; the sequence column takes any text)
    let hostile = "x'); DROP TABLE orders; -- \\";
    let args = [
        Arg::Text(hostile.into()),
        Arg::Text("é ünïcode".into()),
        Arg::Text("2026-11-21 10:00:00.000".into()),
        Arg::Text("2026-11-21 10:00:01.000".into()),
    ];
    assert_eq!(tx.run(insert, &args).await.unwrap(), 1);
    let read = "SELECT source, sequence, ? FROM projection_positions WHERE source = ? AND ? IS NULL";
    let rows = tx.fetch(read, &[Arg::Int(-7), args[0].clone(), Arg::OptText(None)]).await.unwrap();

    // Then they did what they say, hostile text stayed a value, and the session prepared nothing.
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0).unwrap(), hostile);
    assert_eq!(rows[0].text(1).unwrap(), "é ünïcode");
    assert_eq!(rows[0].int(2).unwrap(), -7);
    assert_eq!(prepared(tx.fetch(status, &[]).await.unwrap()), before, "statements prepared");
    tx.commit().await.unwrap();
    pool.close().await;
    assert!(db.rows_in("orders").await == 0);
    db.drop_database().await;
}
