//! The dashboard as a person sees it: the local system on free ports, orders placed over HTTP, then the page in
//! headless Chromium (WebDriver) at desktop and phone width. Screenshots go to `target/dashboard/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (./scripts/test installs them); without them this test fails
//! with what to install.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::browser::{Browser, ENTER, TAB};

/// Where the screenshots go: `target/dashboard/` of this build.
fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/").join("dashboard")
}

/// 26 items: z3333 in two months (one line priced), `nop` never priced, and i01..i24 once each with a price.
async fn place_orders(url: &str) {
    let mut bodies = vec![
        json!({"orderId": "d1", "orderDate": "2022-10-15", "items": [{"itemid": "z3333", "quantity": 6}]}),
        json!({"orderId": "d2", "orderDate": "2022-11-02T10:00:00Z",
               "items": [{"itemid": "z3333", "quantity": 4, "unitPrice": "2.50"}, {"itemid": "nop", "quantity": 3}]}),
    ];
    for i in 1..=24 {
        bodies.push(json!({"orderId": format!("e{i}"), "orderDate": "2022-11-20",
                           "items": [{"itemid": format!("i{i:02}"), "quantity": 1, "unitPrice": format!("{i}.25")}]}));
    }
    for body in bodies {
        let (status, _, answer) = support::post(url, &body.to_string()).await;
        assert_eq!(status, 201, "{answer}");
    }
}

/// Waits until the lake (written every LAKE_FLUSH_MS) holds every order placed so far, so a console query sees them.
async fn await_lake(query_url: &str, lines: i64) {
    for _ in 0..100 {
        let (id, status) = support::adhoc(query_url, "SELECT COUNT(*) AS n FROM order_lines_current", false).await;
        assert_eq!(status["state"], "SUCCEEDED", "{status}");
        let (_, page) = support::get(query_url, &format!("/queries/{id}/results")).await;
        if page["rows"][0][0].as_i64() == Some(lines) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the lake did not reach {lines} lines");
}

/// The visible rows of `table` (a CSS selector) as arrays of cell texts.
async fn rows(browser: &Browser, table: &str) -> Vec<Vec<String>> {
    let js = format!(
        "return [...document.querySelectorAll({})].map(r => [...r.cells].map(c => c.innerText.trim()));",
        json!(format!("{table} tbody tr"))
    );
    serde_json::from_value(browser.script(&js, json!([])).await).expect("rows")
}

/// Fails on anything the page or the browser logged as an error, except the browser's own note of an answer whose
/// status the test provoked on purpose (`expected`, e.g. "400" for a refused query).
async fn assert_console_clean(browser: &Browser, expected: &[&str]) {
    let bad: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            !(m.contains("Failed to load resource") && expected.iter().any(|s| m.contains(&format!("status of {s} "))))
        })
        .collect();
    assert!(bad.is_empty(), "errors in the browser console: {bad:#?}");
}

/// The page as the screenshot shows it: fresh, an item chosen, a short query run.
async fn showcase(browser: &Browser, query_url: &str, sql: &str) {
    browser.goto(&format!("{query_url}/")).await;
    browser.wait("the table", "return document.querySelectorAll('#items-table tbody tr').length === 20;").await;
    browser.fill("#monthly-item", "z3333").await;
    browser.keys(ENTER).await;
    browser.fill("#sql", &format!("{sql} LIMIT 5")).await;
    browser.click("#console-run").await;
    browser.wait("the results", "return !document.querySelector('#console-table').hidden;").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn given_orders_then_the_dashboard_shows_them_and_places_and_queries_like_a_person_would() {
    // Given the system on free ports, with orders placed over HTTP and in the lake.
    let dir = tempfile::tempdir().unwrap();
    let running = support::start(dir.path(), &[("LAKE_FLUSH_MS", "100")]);
    let (url, query_url) = (running.url.clone(), running.query_url.clone());
    place_orders(&url).await;
    await_lake(&query_url, 27).await;

    // When the dashboard opens at desktop width.
    let browser = Browser::start(1440, 1000).await;
    browser.goto(&format!("{query_url}/")).await;

    // Then the chart and the table show the posted items with their totals.
    let chart = browser.wait("the item chart", "const c = document.querySelector('#items-chart'); \
        return c.querySelector('canvas') && c.getAttribute('aria-label').startsWith('Top') && c.getAttribute('aria-label');").await;
    let chart = chart.as_str().unwrap_or_default();
    assert!(chart.starts_with("Top 10 items by units: z3333 10, nop 3, i24 1"), "{chart}");
    let first = rows(&browser, "#items-table").await;
    assert_eq!(first.len(), 20, "a page of 20: {first:?}");
    let (_, api) = support::get(&query_url, "/itemSalesReport?limit=20").await;
    for (row, item) in first.iter().zip(api.as_array().unwrap()) {
        let revenue = item["totalrevenue"].as_str().unwrap_or("unknown");
        let want = [item["itemid"].as_str().unwrap(), &item["totalordered"].to_string(), revenue];
        assert_eq!(row[..3], want, "the table shows what the API answers");
    }

    // When the chart switches to revenue, then its bars follow revenue.
    browser.click("input[name=chart-by][value=totalrevenue]").await;
    browser.wait("the revenue chart", "return document.querySelector('#items-chart').getAttribute('aria-label').includes('by revenue: i24 24.25');").await;

    // When the table is sorted by units (descending first), then paged forward and back by the Link cursor.
    browser.click("#items-table th[data-sort=totalordered] button").await;
    browser.wait("sorted by units", "return document.querySelector('#items-table th[data-sort=totalordered]').getAttribute('aria-sort') === 'descending' \
        && document.querySelector('#items-table tbody tr td').innerText === 'z3333';").await;
    let by_units = rows(&browser, "#items-table").await;
    assert_eq!(
        by_units[0][..5],
        ["z3333", "10", "10", "4", "2"],
        "units, revenue of the priced line, priced units, orders"
    );
    assert_eq!(by_units[1][..3], ["nop", "3", "unknown"], "no price known: unknown, not 0");
    browser.click("#items-next").await;
    browser
        .wait("page 2", "return document.querySelector('#items-where').innerText.startsWith('Page 2, 6 items');")
        .await;
    let second = rows(&browser, "#items-table").await;
    assert!(second.iter().all(|r| r[1] == "1"), "page 2 holds the single units: {second:?}");
    browser.click("#items-prev").await;
    browser
        .wait("page 1 again", "return document.querySelector('#items-where').innerText.startsWith('Page 1, 20 items');")
        .await;

    // When an item is chosen from the table, then its months are drawn, newest first in the table.
    browser.click("#items-table tbody tr:first-child button").await;
    browser
        .wait(
            "z3333's months",
            "return document.querySelector('#monthly-caption').innerText === 'z3333, newest month first';",
        )
        .await;
    assert_eq!(rows(&browser, "#monthly-table").await, [["November 2022", "4"], ["October 2022", "6"]]);
    let label =
        browser.script("return document.querySelector('#monthly-chart').getAttribute('aria-label');", json!([])).await;
    assert_eq!(label, "Units of z3333 by UTC month: October 2022 6, November 2022 4", "drawn oldest to newest");
    // And an id the API refuses shows the API's message.
    browser.fill("#monthly-item", "no good").await;
    browser.keys(ENTER).await;
    let refused = browser
        .wait("the refusal", "const e = document.querySelector('#monthly-error'); return !e.hidden && e.innerText;")
        .await;
    assert!(refused.as_str().unwrap_or_default().starts_with("invalid_itemid: itemid"), "{refused}");

    // Then the lag panel shows the source.
    browser.wait("the lag panel", "const r = document.querySelector('#status-table tbody tr'); return r && r.cells[0].innerText === 'embedded';").await;
    let status = rows(&browser, "#status-table").await;
    assert!(status[0][1].ends_with(" s") && status[0][2] == "0" && status[0][4] == "26", "{status:?}");

    // When an order is placed through the form by keyboard alone: Tab from the top of the page to its fields.
    browser.script("document.activeElement.blur(); window.scrollTo(0, 0);", json!([])).await;
    let mut tabs = 0;
    while browser.focused().await != "input#order-id" {
        browser.keys(TAB).await;
        tabs += 1;
        assert!(tabs < 80, "the order form cannot be reached by Tab");
    }
    // First with faults: every violation shows next to its field.
    browser.keys(&format!("{TAB}web-item{TAB}0{ENTER}")).await;
    browser.wait("the violations", "return document.querySelector('[data-error-for=\"orderId\"]').innerText;").await;
    let violations = browser
        .script(
            "return [...document.querySelectorAll('#order-form [aria-invalid=true]')].map(e => e.dataset.field);",
            json!([]),
        )
        .await;
    assert_eq!(violations, json!(["orderId", "items[0].quantity"]), "both fields flagged");
    assert!(browser.text("#order-result").await.starts_with("validation_failed"));
    browser.fill("#order-id", "web-1").await;
    browser.fill("#line-0-quantity", "7").await;
    browser.keys(ENTER).await;
    // Then the answer says so, and both charts show it at once (read-your-writes).
    let placed = browser
        .wait(
            "the order placed",
            "const t = document.querySelector('#order-result').innerText; return t.startsWith('orderCreated') && t;",
        )
        .await;
    assert_eq!(placed, "orderCreated: order web-1, version 1. The reports below now include it.");
    browser.click("input[name=chart-by][value=totalordered]").await;
    browser.wait("web-item in the chart", "return document.querySelector('#items-chart').getAttribute('aria-label').includes('z3333 10, web-item 7, nop 3');").await;
    let top = rows(&browser, "#items-table").await;
    assert_eq!(top[1][..2], ["web-item", "7"], "the sorted table shows it second: {top:?}");

    // When a query is typed in the console, then its rows come back, paged, with a CSV link.
    await_lake(&query_url, 28).await;
    let sql =
        "SELECT itemid, SUM(quantity) AS units FROM order_lines_current GROUP BY itemid ORDER BY units DESC, itemid";
    browser.fill("#sql", sql).await;
    browser.click("#console-run").await;
    browser.wait("the results", "return !document.querySelector('#console-table').hidden;").await;
    let results = rows(&browser, "#console-table").await;
    assert_eq!(results.len(), 25, "a page of 25");
    assert_eq!(results[..3], [["z3333", "10"], ["web-item", "7"], ["nop", "3"]]);
    assert!(browser.text("#console-state").await.starts_with("Query succeeded"));
    browser.click("#console-next").await;
    browser
        .wait("the second page", "return document.querySelector('#console-table tbody tr td').innerText === 'i23';")
        .await;
    assert_eq!(rows(&browser, "#console-table").await, [["i23", "1"], ["i24", "1"]], "27 rows in all");
    let href = browser.script("return document.querySelector('#console-download').href;", json!([])).await;
    let csv = reqwest::get(href.as_str().unwrap()).await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("itemid,units\nz3333,10\nweb-item,7\n"), "{csv}");
    // And a refused query shows its code as the API words it.
    browser.fill("#sql", "DELETE FROM order_lines").await;
    browser.click("#console-run").await;
    let refusal = browser
        .wait("the refusal", "const e = document.querySelector('#console-error'); return !e.hidden && e.innerText;")
        .await;
    assert!(refusal.as_str().unwrap_or_default().starts_with("sql_not_a_query: "), "{refusal}");

    // And a query that would run long is cancelled from the page.
    let endless = "SELECT COUNT(*) AS n FROM order_lines_current a, order_lines_current b, order_lines_current c, \
                   order_lines_current d, order_lines_current e, order_lines_current f, order_lines_current g";
    browser.fill("#sql", endless).await;
    browser.click("#console-run").await;
    browser
        .wait(
            "it to run",
            "return document.querySelector('#console-state').innerText.startsWith('Query running') \
        && !document.querySelector('#console-cancel').disabled;",
        )
        .await;
    browser.click("#console-cancel").await;
    browser
        .wait(
            "it cancelled",
            "return document.querySelector('#console-state').innerText.startsWith('Query cancelled');",
        )
        .await;
    assert!(browser.script("return document.querySelector('#console-cancel').disabled;", json!([])).await == true);

    // Then nothing went wrong in the page (the provoked 400s and the 422 aside).
    assert_console_clean(&browser, &["400", "422"]).await;

    // The page for the screenshot, measured first at this width, then taken in a window as tall as the page.
    showcase(&browser, &query_url, sql).await;
    let height = browser.script("return document.documentElement.scrollHeight;", json!([])).await;
    browser.quit().await;
    let desktop = Browser::start(1440, height.as_u64().unwrap_or(1800) as u32).await;
    showcase(&desktop, &query_url, sql).await;
    desktop.wait("the months", "return document.querySelector('#monthly-chart canvas');").await;
    desktop.screenshot(&shots().join("desktop.png")).await;
    assert_console_clean(&desktop, &[]).await;
    desktop.quit().await;

    // At a phone's width everything is there, in one column, and nothing is wider than the screen.
    let phone = Browser::start(360, 800).await;
    phone.goto(&format!("{query_url}/")).await;
    phone.wait("the table", "return document.querySelectorAll('#items-table tbody tr').length === 20;").await;
    let widths = phone.script("return [window.innerWidth, document.documentElement.scrollWidth];", json!([])).await;
    assert_eq!(widths, json!([360, 360]), "[viewport, page] width: nothing sticks out");
    let clipped = phone
        .script(
            "return [...document.querySelectorAll('section, canvas, input, textarea, button')] \
        .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > 360).map(e => e.id || e.tagName);",
            json!([]),
        )
        .await;
    assert_eq!(clipped, json!([]), "no control or chart runs off the screen");
    phone.screenshot(&shots().join("phone.png")).await;
    assert_console_clean(&phone, &[]).await;
    phone.quit().await;
    support::interrupt(running);
}

#[tokio::test(flavor = "multi_thread")]
async fn given_jwt_auth_then_the_page_takes_the_token_from_the_login_fragment_and_sends_it_on_every_call() {
    // Given the system saying its APIs take bearer tokens.
    let dir = tempfile::tempdir().unwrap();
    let running = support::start(dir.path(), &[("API_AUTH", "JWT")]);
    let browser = Browser::start(1024, 800).await;

    // When the page opens without a token, then it asks for one and calls no report.
    browser.goto(&format!("{}/", running.query_url)).await;
    browser.wait("the sign-in form", "return !document.querySelector('#signin').hidden;").await;
    let early = browser.requests().await;
    assert!(!early.iter().any(|(url, _)| url.contains("itemSalesReport")), "no call before a token: {early:?}");

    // When the issuer's hosted login sends the browser back with a token in the fragment.
    browser.goto("about:blank").await;
    browser.goto(&format!("{}/#access_token=header.payload.signature&token_type=Bearer", running.query_url)).await;
    browser
        .wait(
            "the reports",
            "return document.querySelector('#signin').hidden && document.querySelector('#items-where').innerText;",
        )
        .await;
    // Then the fragment is gone from the address bar, and every data call carried the token.
    let hash = browser.script("return window.location.hash;", json!([])).await;
    assert_eq!(hash, "", "the token is not left in the address bar");
    tokio::time::sleep(Duration::from_millis(3500)).await; // one refresh of the lag panel
    let calls: Vec<(String, Value)> = browser
        .requests()
        .await
        .into_iter()
        // The page's own config.json is read before the token is known, from the open page route.
        .filter(|(url, _)| ["itemSalesReport", "projection/status"].iter().any(|p| url.contains(p)))
        .collect();
    assert!(calls.iter().filter(|(url, _)| url.contains("projection/status")).count() >= 2, "{calls:?}");
    // The console's calls and its CSV download too (a plain link could not carry the token).
    browser.fill("#sql", "SELECT 1 AS one").await;
    browser.click("#console-run").await;
    browser.wait("the result", "return !document.querySelector('#console-table').hidden;").await;
    browser.click("#console-download").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let console: Vec<(String, Value)> =
        browser.requests().await.into_iter().filter(|(url, _)| url.contains("/queries")).collect();
    assert!(console.iter().any(|(url, _)| url.ends_with("/download")), "the download was fetched: {console:?}");
    for (url, headers) in calls.iter().chain(&console) {
        assert_eq!(headers["authorization"], "Bearer header.payload.signature", "{url} {headers}");
    }
    assert_console_clean(&browser, &[]).await;
    browser.quit().await;
    support::interrupt(running);
}

#[tokio::test(flavor = "multi_thread")]
async fn given_a_stalled_projection_then_the_lag_panel_warns_until_it_catches_up() {
    use sqlx::{Connection, Executor};
    // Given the system projecting into PostgreSQL with a 1 s lag threshold, and the page open.
    let db = test_support::databases::fresh(test_support::databases::Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let running = support::start(dir.path(), &[("READ_MODEL_URL", &db.url), ("PROJECTION_LAG_THRESHOLD_SECS", "1")]);
    let browser = Browser::start(1024, 800).await;
    browser.goto(&format!("{}/", running.query_url)).await;
    browser.wait("the lag panel", "return document.querySelector('#status-table tbody tr');").await;
    let warning = "const w = document.querySelector('#status-warning'); return !w.hidden && w.innerText;";
    assert_eq!(browser.script(warning, json!([])).await, false, "no warning while caught up");

    // When the projector is held at a lock another session keeps on a report table while an order arrives.
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    blocker.execute("BEGIN").await.unwrap();
    blocker.execute("LOCK TABLE item_sales IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let (status, _, _) =
        support::post(&running.url, r#"{"orderId":"late","items":[{"itemid":"z3333","quantity":1}]}"#).await;
    assert_eq!(status, 201);

    // Then the panel warns, naming the source, and flags its lag.
    let shown = browser.wait("the warning", warning).await;
    assert_eq!(shown, "Lag over 1.0 s on embedded: the reports are behind the orders.");
    let flagged = browser.script("return document.querySelector('#status-table td.over') !== null;", json!([])).await;
    assert_eq!(flagged, true);

    // When the lock goes, then the warning does too.
    blocker.execute("ROLLBACK").await.unwrap();
    blocker.close().await.unwrap();
    browser.wait("the warning to go", "return document.querySelector('#status-warning').hidden;").await;
    assert_console_clean(&browser, &[]).await;
    browser.quit().await;
    support::interrupt(running);
    db.drop_database().await;
}
