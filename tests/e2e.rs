//! End-to-end: the real `orders` binary on a free port with a temp data dir, driven over HTTP.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{adhoc, await_read_model, command, dynamodb_env, get, interrupt, post, start};

const SAMPLE: &str = r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]}"#;

#[tokio::test]
async fn given_the_running_system_when_an_order_is_posted_or_amended_then_reports_with_consistent_with_show_it_at_once()
{
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);
    let client = reqwest::Client::new();
    let report = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", running.query_url);
        async move {
            let r = client.get(url).send().await.unwrap();
            let position = r.headers().get("x-projection-position").map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), position, r.json::<Value>().await.unwrap())
        }
    };

    // Given an order posted with its date
    let (status, _, created) = post(
        &running.url,
        r#"{"orderId":"6119","orderDate":"2022-10-13","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"},{"itemid":"z4444","quantity":3}]}"#,
    )
    .await;
    assert_eq!(status, 201);
    let v1 = created["version"].as_u64().unwrap();

    // When both reports are read with consistentWith, then the same call has the new numbers
    let (status, position, items) = report(format!("/itemSalesReport?consistentWith=6119:{v1}")).await;
    assert_eq!(status, 200);
    assert!(position.unwrap().starts_with("embedded="), "the position read at is in a header");
    assert_eq!(
        items,
        json!([
            {"itemid":"z3333","totalordered":6,"totalrevenue":"15","pricedordered":6,"ordercount":1,"lastorderdate":"2022-10-13"},
            {"itemid":"z4444","totalordered":3,"totalrevenue":null,"pricedordered":0,"ordercount":1,"lastorderdate":"2022-10-13"}
        ])
    );
    let (status, _, months) = report(format!("/monthlySalesByItem/z3333?consistentWith=6119:{v1}")).await;
    assert_eq!((status, months), (200, json!([{"monthyear":"October 2022","month":"2022-10","monthlyordered":6}])));

    // When it is amended, then the report read with the new version shows the amendment
    let r = client
        .put(format!("{}/orders/6119", running.url))
        .header("content-type", "application/json")
        .header("if-match", format!("\"{v1}\""))
        .body(r#"{"items":[{"itemid":"z3333","quantity":10}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v2 = r.json::<Value>().await.unwrap()["version"].as_u64().unwrap();
    let (status, _, items) = report(format!("/itemSalesReport?consistentWith=6119:{v2}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        items,
        json!([{"itemid":"z3333","totalordered":10,"totalrevenue":null,"pricedordered":0,"ordercount":1,"lastorderdate":"2022-10-13"}])
    );

    // And a version that will never be projected is answered 503 with Retry-After once the bound passes
    let started = Instant::now();
    let r = client.get(format!("{}/itemSalesReport?consistentWith=6119:99", running.query_url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (503, "1"));
    assert!(started.elapsed() < Duration::from_secs(7), "bounded wait (5 s)");
    interrupt(running);
}

#[tokio::test]
async fn with_no_configuration_it_serves_the_samples_request_and_keeps_it_in_data_across_restarts() {
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);

    let (status, location, body) = post(&running.url, SAMPLE).await;
    assert_eq!((status, location.as_deref()), (201, Some("/orders/6119")));
    assert_eq!(body, json!({"commandResult":"orderCreated","orderId":"6119","version":1}));
    let (status, _, _) = post(&running.url, SAMPLE).await;
    assert_eq!(status, 200, "a retried create is idempotent");
    let (status, order) = get(&running.url, "/orders/6119").await;
    assert_eq!(status, 200);
    assert_eq!(order["items"], json!([{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]));
    interrupt(running);

    assert!(cwd.path().join("data/orders.db").exists(), "state lives under ./data by default");
    let running = start(cwd.path(), &[]);
    let (status, again) = get(&running.url, "/orders/6119").await;
    assert_eq!((status, &again), (200, &order), "the order survives a restart unchanged");
    let (status, health) = get(&running.url, "/health").await;
    assert_eq!((status, health), (200, json!({"status":"ok","store":"embedded"})));
    interrupt(running);
}

#[test]
fn a_missing_or_malformed_variable_fails_start_up_naming_it() {
    let cwd = tempfile::tempdir().unwrap();
    for (env, name) in [
        (vec![("COMMAND_API_ADDR", "not-an-address")], "COMMAND_API_ADDR"),
        (vec![("QUERY_API_ADDR", "3001")], "QUERY_API_ADDR"),
        (vec![("ORDERS_STORE", "postgres")], "ORDERS_STORE"),
        (vec![("ORDERS_STORE", "dynamodb")], "ORDERS_TABLE"),
        // Blank counts as unset, for every variable.
        (vec![("ORDERS_STORE", "dynamodb"), ("ORDERS_TABLE", " ")], "ORDERS_TABLE"),
        (vec![("QUERY_ENGINE", "athena"), ("ATHENA_WORKGROUP", "")], "ATHENA_WORKGROUP"),
        (vec![("READ_MODEL_MAX_STATEMENT_BYTES", "4096")], "READ_MODEL_MAX_STATEMENT_BYTES"),
        (vec![("READ_MODEL_AUTH", "kerberos")], "READ_MODEL_AUTH"),
        (
            vec![
                ("READ_MODEL_AUTH", "iam"),
                ("AWS_REGION", "eu-west-1"),
                ("READ_MODEL_URL", "postgres://projector@127.0.0.1:1/orders"),
            ],
            "READ_MODEL_URL must require TLS",
        ),
        (
            vec![
                ("READ_MODEL_AUTH", "iam"),
                ("AWS_REGION", "eu-west-1"),
                ("READ_MODEL_URL", "mysql://projector@127.0.0.1:1/orders?ssl-mode=PREFERRED"),
            ],
            "READ_MODEL_URL must require TLS (ssl-mode=REQUIRED",
        ),
    ] {
        let out = command(cwd.path(), &env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} must fail start-up");
        assert!(stderr.contains(name), "{env:?}: the error names {name}: {stderr}");
    }
}

#[tokio::test]
async fn with_dynamodb_configured_the_same_binary_writes_to_dynamodb() {
    let endpoint = std::env::var("MOTO_ENDPOINT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        panic!("MOTO_ENDPOINT is not set: run ./scripts/test (it starts moto), or start `moto_server -H 127.0.0.1 -p 5000` and set MOTO_ENDPOINT")
    });
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("e2e-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    write_store::dynamodb::DynamoDbStore::create_table(&client, &table).await.expect("create table on moto");

    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &dynamodb_env(&table, &endpoint));
    let (status, _, body) = post(&running.url, SAMPLE).await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(1)));

    let item = client
        .get_item()
        .table_name(&table)
        .key("orderId", aws_sdk_dynamodb::types::AttributeValue::S("6119".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the order is in the DynamoDB table");
    let lines = item["items"].as_l().expect("lines are a native list");
    let first = lines[0].as_m().expect("of maps");
    assert_eq!(first["itemid"].as_s().unwrap(), "z3333");
    assert_eq!(first["quantity"].as_n().unwrap(), "6");
    assert!(!cwd.path().join("data/orders.db").exists(), "the embedded write store was not used");
    interrupt(running);

    // The stream poller projects what the API wrote.
    let env = dynamodb_env(&table, &endpoint);
    let out = command(cwd.path(), &env).args(["project", "--source", "dynamodb", "--once"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "projected 1 stream records (1 applied)");
    let model =
        read_model::ReadModel::connect(&format!("sqlite://{}?mode=ro", cwd.path().join("data/readmodel.db").display()))
            .unwrap();
    let snap = model.snapshot().await.unwrap();
    assert_eq!(snap.items[&domain::ItemId::parse("z3333").unwrap()].quantity, 6);
    let out = command(cwd.path(), &env).args(["project", "--source", "dynamodb", "--once"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "projected 0 stream records (0 applied)", "it resumes");

    // A rebuild from a consistent scan of the table gives the same read model.
    let rebuilt_url = format!("sqlite://{}?mode=rwc", cwd.path().join("rebuilt.db").display());
    let mut rebuild_env = env.to_vec();
    rebuild_env.push(("READ_MODEL_URL", &rebuilt_url));
    let out = command(cwd.path(), &rebuild_env).arg("rebuild").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("rebuilt the read model from 1 orders: "), "{summary}");
    let rebuilt = read_model::ReadModel::connect(&rebuilt_url).unwrap().snapshot().await.unwrap();
    assert_eq!((rebuilt.orders, rebuilt.items), (snap.orders, snap.items));
}

#[tokio::test]
async fn orders_posted_to_the_running_system_reach_the_read_model_within_a_second() {
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);
    let model =
        read_model::ReadModel::connect(&format!("sqlite://{}?mode=ro", cwd.path().join("data/readmodel.db").display()))
            .unwrap();
    let item = |s: &str| domain::ItemId::parse(s).unwrap();
    let client = reqwest::Client::new();

    let (status, _, _) = post(&running.url, SAMPLE).await;
    assert_eq!(status, 201);
    let took = await_read_model(&model, Duration::from_secs(1), |s| {
        s.items.get(&item("z3333")).is_some_and(|t| t.quantity == 6)
    })
    .await;
    eprintln!("first order visible in the read model after {took:?}");

    post(&running.url, r#"{"orderId":"6120","items":[{"itemid":"z3333","quantity":4,"unitPrice":"1.25"}]}"#).await;
    let amend = client
        .put(format!("{}/orders/6119", running.url))
        .header("content-type", "application/json")
        .header("if-match", "\"1\"")
        .body(r#"{"items":[{"itemid":"z3333","quantity":1}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(amend.status(), 200);
    await_read_model(&model, Duration::from_secs(1), |s| {
        s.items.get(&item("z3333")).is_some_and(|t| t.quantity == 5 && t.revenue.to_string() == "5" && t.orders == 2)
            && !s.items.contains_key(&item("z4444"))
    })
    .await;

    let cancel = client.post(format!("{}/orders/6120/cancel", running.url)).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    let delete = client.delete(format!("{}/orders/6119", running.url)).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    await_read_model(&model, Duration::from_secs(1), |s| {
        s.items.is_empty() && s.orders.len() == 1 && s.tombstones.len() == 1
    })
    .await;
    let snap = model.snapshot().await.unwrap();
    assert_eq!(snap.orders.values().next().unwrap().status, domain::OrderStatus::Cancelled);
    assert_eq!(snap.positions["embedded"].0.as_str(), "5", "five changes, projected in order");

    // A busier history, then a rebuild from the write model must equal what was built incrementally.
    for i in 0..40 {
        let body = format!(
            r#"{{"orderId":"b{i}","orderDate":"2022-{:02}-15T12:00:00Z","items":[{{"itemid":"i{}","quantity":{},"unitPrice":"{}.25"}},{{"itemid":"i{}","quantity":1}}]}}"#,
            i % 12 + 1,
            i % 5,
            i + 1,
            i % 7,
            (i + 1) % 5 + 5
        );
        assert_eq!(post(&running.url, &body).await.0, 201);
        if i % 3 == 0 {
            let r = client
                .put(format!("{}/orders/b{i}", running.url))
                .header("content-type", "application/json")
                .header("if-match", "1")
                .body(r#"{"items":[{"itemid":"i9","quantity":2}]}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        if i % 5 == 0 {
            assert_eq!(client.post(format!("{}/orders/b{i}/cancel", running.url)).send().await.unwrap().status(), 200);
        }
        if i % 7 == 0 {
            assert_eq!(client.delete(format!("{}/orders/b{i}", running.url)).send().await.unwrap().status(), 204);
        }
    }
    let quiet = Instant::now();
    let mut last = String::new();
    loop {
        let snap = model.snapshot().await.unwrap();
        let pos = snap.positions["embedded"].0.as_str().to_owned();
        if pos == last && quiet.elapsed() > Duration::from_millis(300) {
            break;
        }
        last = pos;
        assert!(quiet.elapsed() < Duration::from_secs(5), "projection did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    interrupt(running);
    let incremental = model.snapshot().await.unwrap();

    let rebuilt_url = format!("sqlite://{}?mode=rwc", cwd.path().join("rebuilt.db").display());
    let out = command(cwd.path(), &[("READ_MODEL_URL", &rebuilt_url)]).arg("rebuild").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let live = incremental.orders.len();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with(&format!("rebuilt the read model from {live} orders: ")), "{summary}");
    let rebuilt = read_model::ReadModel::connect(&rebuilt_url).unwrap().snapshot().await.unwrap();
    assert_eq!(rebuilt.orders, incremental.orders);
    assert_eq!(rebuilt.items, incremental.items);
    assert_eq!(rebuilt.months, incremental.months);
    assert_eq!(rebuilt.positions["embedded"].0, incremental.positions["embedded"].0, "the tail continues from here");

    let again = command(cwd.path(), &[("READ_MODEL_URL", &rebuilt_url)]).arg("rebuild").output().unwrap();
    assert!(!again.status.success(), "a rebuild never writes over a projection");
    assert!(String::from_utf8_lossy(&again.stderr).contains("READ_MODEL_URL already holds a projection"));
}

#[tokio::test]
async fn given_a_reader_url_then_the_query_api_reads_through_it_and_not_the_projectors() {
    // Given a reader URL naming another (empty, unmigrated) database than the projector's
    let cwd = tempfile::tempdir().unwrap();
    let other = format!("sqlite://{}?mode=rwc", cwd.path().join("elsewhere.db").display());
    let running = start(cwd.path(), &[("READ_MODEL_READER_URL", other.as_str())]);

    // When the query API is asked, then it answers from there: no tables, so unavailable
    let r = reqwest::get(format!("{}/health", running.query_url)).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let r = reqwest::get(format!("{}/health", running.url)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the command side is unaffected");
    interrupt(running);
}

#[tokio::test]
async fn given_orders_posted_to_the_running_system_then_ad_hoc_sql_over_the_lake_returns_their_numbers_paged_and_as_csv()
 {
    // Given: the running system (embedded engine by default), orders posted, one amended and one cancelled.
    let dir = tempfile::tempdir().unwrap();
    let sys = start(dir.path(), &[("LAKE_FLUSH_MS", "100")]);
    for n in 0..30 {
        let body = format!(
            r#"{{"orderId":"o{n}","orderDate":"2022-10-{:02}T10:00:00Z","items":[{{"itemid":"item{n:02}","quantity":{},"unitPrice":"2.50"}},{{"itemid":"z3333","quantity":1}}]}}"#,
            1 + n % 28,
            n + 1
        );
        assert_eq!(post(&sys.url, &body).await.0, 201);
    }
    let client = reqwest::Client::new();
    let amend = client
        .put(format!("{}/orders/o0", sys.url))
        .header("if-match", "\"1\"")
        .json(&json!({"items": [{"itemid": "item00", "quantity": 100, "unitPrice": "2.50"}]}))
        .send()
        .await
        .unwrap();
    assert!(amend.status().is_success(), "{:?}", amend.text().await);
    let cancel = client.post(format!("{}/orders/o1/cancel", sys.url)).send().await.unwrap();
    assert!(cancel.status().is_success(), "{:?}", cancel.text().await);

    // When: the lake has caught up (it writes every 100 ms here), an ad-hoc query over the current view.
    let sql = "SELECT itemid, SUM(quantity) AS total, SUM(quantity * unitprice) AS revenue \
               FROM order_lines_current GROUP BY itemid ORDER BY itemid";
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (id, status) =
            adhoc(&sys.query_url, "SELECT COUNT(DISTINCT orderid) AS n, MAX(version) AS v FROM order_lines", false)
                .await;
        assert_eq!(status["state"], "SUCCEEDED", "{status}");
        let (_, page) = get(&sys.query_url, &format!("/queries/{id}/results")).await;
        if page["rows"][0] == json!([30, 2]) {
            let (id, status) = adhoc(&sys.query_url, sql, true).await;
            assert_eq!(status["state"], "SUCCEEDED", "{status}");
            // What it read from the lake's (small) files: at least their footers, so never 0.
            assert!(status["bytesScanned"].as_u64().is_some_and(|n| n > 0), "{status}");
            break id;
        }
        assert!(Instant::now() < deadline, "the lake did not catch up within 20 s: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Then: pages of 12 rows (3 pages for 30 items), typed, with the right numbers.
    let mut rows = Vec::new();
    let mut path = format!("/queries/{id}/results?maxResults=12");
    let mut pages = 0;
    loop {
        let (status, page) = get(&sys.query_url, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["columns"][1], json!({"name": "total", "type": "bigint"}));
        rows.extend(page["rows"].as_array().unwrap().clone());
        pages += 1;
        match page["nextToken"].as_str() {
            Some(token) => path = format!("/queries/{id}/results?maxResults=12&nextToken={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 30, "29 items (item01 was only in the cancelled order) and z3333");
    assert_eq!(rows[0], json!(["item00", 100, "250.0000"]), "the amended quantity, exact decimal revenue");
    assert!(!rows.iter().any(|r| r[0] == "item01"), "the cancelled order counts for nothing");
    assert_eq!(
        rows[29],
        json!(["z3333", 28, null]),
        "28 live orders with z3333 (o0 amended it away, o1 cancelled), no price"
    );

    // And the CSV download holds exactly the paged rows.
    let csv = client.get(format!("{}/queries/{id}/download", sys.query_url)).send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("itemid,total,revenue"));
    let from_csv: Vec<String> = lines.map(str::to_owned).collect();
    let from_pages: Vec<String> = rows
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(from_csv, from_pages);

    // And the notice went to the caller's registered address (the dev identity's), with the download link.
    let outbox = dir.path().join("data/outbox");
    let notice = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{}: {e}", outbox.display()))
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .find(|m| m.contains(&id))
        .unwrap_or_else(|| panic!("no notice for {id}"));
    assert!(notice.contains("To: dev@localhost\r\n"), "{notice}");
    assert!(notice.contains(&format!("{}/queries/{id}/download", sys.query_url)), "{notice}");

    // And hostile SQL is refused over HTTP too.
    let r = client
        .post(format!("{}/queries", sys.query_url))
        .json(&json!({"sql": "DROP TABLE order_lines"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    interrupt(sys);
}
