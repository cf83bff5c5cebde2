//! The AWS path against moto: Athena (canned results injected through moto's API), query records in DynamoDB,
//! presigned S3 download links and the SESv2 notice the notice Lambda sends, read back from moto.

use std::time::Duration;

use adhoc::http::{Queries, fixed_identity, routes};
use adhoc::settings::AthenaLambdaArgs;
use adhoc::{Identity, athena_service};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const REGION: &str = "eu-west-1";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        panic!(
            "MOTO_ENDPOINT is not set: run ./scripts/test (it starts moto), or start `moto_server -H 127.0.0.1 -p 5000` \
             and set MOTO_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn given_athena_when_a_query_is_submitted_polled_paged_and_downloaded_then_one_notice_goes_out_by_ses() {
    let endpoint = endpoint();
    // object_store (presigned links) reads its endpoint and credentials from the environment, as in Lambda.
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", REGION);
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (bucket, table, workgroup) = (format!("results-{run}"), format!("queries-{run}"), format!("wg-{run}"));
    let http = reqwest::Client::new();

    // Given: the results bucket, the workgroup enforcing its output location, the records table, the sender.
    let made = http
        .put(format!("{endpoint}/{bucket}"))
        .body(format!(
            "<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
        ))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "create bucket: {}", made.text().await.unwrap());
    let athena = aws_sdk_athena::Client::new(&config);
    athena
        .create_work_group()
        .name(&workgroup)
        .configuration(
            aws_sdk_athena::types::WorkGroupConfiguration::builder()
                .enforce_work_group_configuration(true)
                .result_configuration(
                    aws_sdk_athena::types::ResultConfiguration::builder()
                        .output_location(format!("s3://{bucket}/athena/"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("queryId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("queryId").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .unwrap();
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity().email_identity("orders@example.com").send().await.unwrap();
    // And Athena's answer, canned: a header row, then two rows.
    let column = |name: &str, kind: &str, precision: i32, scale: i32| {
        json!({"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", "CatalogName": "hive", "SchemaName": "",
               "TableName": "", "Precision": precision, "Scale": scale, "CaseSensitive": false})
    };
    let cell = |v: &str| json!({"VarCharValue": v});
    let canned = json!({"account_id": "123456789012", "region": REGION, "results": [{
        "rows": [
            {"Data": [cell("itemid"), cell("total"), cell("revenue")]},
            {"Data": [cell("z3333"), cell("12"), cell("18.5000")]},
            {"Data": [cell("z4444"), cell("3"), {}]},
        ],
        "column_info": [column("itemid", "varchar", 0, 0), column("total", "bigint", 19, 0), column("revenue", "decimal", 38, 4)],
    }]});
    let injected =
        http.post(format!("{endpoint}/moto-api/static/athena/query-results")).json(&canned).send().await.unwrap();
    assert!(injected.status().is_success());

    let output = format!("s3://{bucket}/athena/");
    let env = [
        ("ATHENA_WORKGROUP", workgroup.clone()),
        ("QUERIES_TABLE", table.clone()),
        ("ATHENA_OUTPUT_LOCATION", output),
        ("NOTICE_LINK_TTL_SECS", "900".to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args: AthenaLambdaArgs = web::settings::parse_pairs(&pairs).unwrap();
    let service = athena_service(&config, &args.settings().unwrap(), None);
    let caller =
        Identity { principal: "arn:aws:iam::123456789012:user/ana".into(), email: Some("ana@example.com".into()) };
    let router = routes(Queries { service: Some(service.clone()), identify: fixed_identity(caller) });

    // When: submitted in the sample's request shape, with a notice.
    let (status, body, _) = call(
        &router,
        "POST",
        "/queries",
        Some(json!({"QueryString": "SELECT itemid, SUM(quantity) AS total FROM order_lines_current GROUP BY itemid",
                    "QueryExecutionContext": {"Database": "orders_lake"}, "notify": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["queryId"].as_str().unwrap().to_owned();

    // Then: its state, a typed page without the header row, a download link.
    let (status, body, _) = call(&router, "GET", &format!("/queries/{id}"), None).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("SUCCEEDED")), "{body}");
    let (status, body, _) = call(&router, "GET", &format!("/queries/{id}/results?maxResults=10"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], json!([["z3333", 12, "18.5000"], ["z4444", 3, null]]));
    assert_eq!(body["columns"][2], json!({"name": "revenue", "type": "decimal(38,4)"}));
    // Athena writes the result file; moto does not, so put it where Athena would.
    let key = format!("athena/{id}.csv");
    let csv = "\"itemid\",\"total\",\"revenue\"\n\"z3333\",\"12\",\"18.5000\"\n\"z4444\",\"3\",\n";
    assert!(http.put(format!("{endpoint}/{bucket}/{key}")).body(csv).send().await.unwrap().status().is_success());
    let (status, _, headers) = call(&router, "GET", &format!("/queries/{id}/download"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let link = headers["location"].to_str().unwrap().to_owned();
    assert!(link.contains("X-Amz-Signature=") && link.contains("X-Amz-Expires=900"), "{link}");
    assert_eq!(http.get(&link).send().await.unwrap().text().await.unwrap(), csv);

    // When: Athena's state-change event (the sample of events/) reaches the notice function's binary, run as Lambda
    // runs it against a local Runtime API, twice (EventBridge delivers at least once).
    let mut event = test_support::lambda::event("athena-query-state-change.json");
    event["detail"]["queryExecutionId"] = id.clone().into();
    event["detail"]["workgroupName"] = workgroup.clone().into();
    let mut function_env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    function_env.extend([
        ("NOTICE_SENDER", "orders@example.com".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
    ]);
    let notice = test_support::lambda::run(
        env!("CARGO_BIN_EXE_query-notice-lambda"),
        &function_env,
        vec![event.clone(), event],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(notice.outcomes.len(), 2, "{:?}\n{}", notice.init_error, notice.logs);
    assert_eq!(notice.outcomes[0].response(), &json!(true), "the first delivery sends the notice");
    assert_eq!(notice.outcomes[1].response(), &json!(false), "a second delivery sends nothing");

    // Then: exactly one message, to the registered address, with the link.
    let data: Value = http.get(format!("{endpoint}/moto-api/data.json")).send().await.unwrap().json().await.unwrap();
    let sent: Vec<&Value> = data["ses"]["Message"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(&id)))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["destinations"]["ToAddresses"], json!(["ana@example.com"]));
    assert_eq!(sent[0]["source"], "orders@example.com");
    assert!(sent[0]["body"].as_str().unwrap().contains(&format!("/{bucket}/{key}?")), "{}", sent[0]["body"]);

    // And the record in DynamoDB expires (TTL) and names the requester.
    let item = dynamo
        .get_item()
        .table_name(&table)
        .key("queryId", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(item["expiresAt"].as_n().unwrap().parse::<i64>().unwrap() > chrono::Utc::now().timestamp());
    assert_eq!(item["requester"].as_s().unwrap(), "arn:aws:iam::123456789012:user/ana");
    assert_eq!(item["state"].as_s().unwrap(), "SUCCEEDED");
}
