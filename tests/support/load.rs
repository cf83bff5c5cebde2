//! Concurrent clients creating, amending, cancelling and deleting orders, each remembering what the command API
//! acknowledged, and the checks that nothing acknowledged was lost and that every read side equals a
//! recomputation from the write model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::testkit::Rng;
use serde_json::{Value, json};

/// What the command API acknowledged last for one order.
#[derive(Debug, Clone, PartialEq)]
pub enum Acked {
    Live {
        version: u64,
        items: Value,
        cancelled: bool,
    },
    Deleted,
    /// A request whose answer never came (the process died, a connection broke): either outcome is right, so the
    /// order is left alone from then on.
    Uncertain,
}

/// Acknowledged writes, by order id.
pub type Ledger = BTreeMap<String, Acked>;

const ITEMS: [&str; 5] = ["z3333", "z4444", "a-1", "b.2", "c:3"];

fn lines(rng: &mut Rng) -> Value {
    let start = rng.below(ITEMS.len() as u64) as usize;
    let n = 1 + rng.below(3) as usize;
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let mut line = json!({"itemid": ITEMS[(start + i) % ITEMS.len()], "quantity": 1 + rng.below(20)});
            if rng.chance(60) {
                line["unitPrice"] = json!(format!("{}.{:02}", rng.below(100), rng.below(100)));
            }
            line
        })
        .collect();
    Value::Array(items)
}

/// What an acknowledgement of a request means for its order, from the answer's body.
type Outcome = Box<dyn Fn(&Value) -> Acked + Send>;

/// One client: until `stop`, writes orders `<prefix>-<n>` and records what was acknowledged in `ledger`.
pub async fn client(url: String, prefix: String, seed: u64, stop: Arc<AtomicBool>, mut ledger: Ledger) -> Ledger {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut rng = Rng::new(seed);
    let mut next = ledger.len();
    while !stop.load(Ordering::Relaxed) {
        let known: Vec<(String, u64)> = ledger
            .iter()
            .filter_map(|(id, a)| match a {
                Acked::Live { version, cancelled: false, .. } => Some((id.clone(), *version)),
                _ => None,
            })
            .collect();
        let pick = rng.below(10);
        if known.is_empty() || pick < 5 {
            let id = format!("{prefix}-{next}");
            next += 1;
            let items = lines(&mut rng);
            let month = 1 + rng.below(12);
            let body = json!({"orderId": id, "orderDate": format!("2022-{month:02}-15T12:00:00Z"), "items": items});
            let sent = http.post(format!("{url}/orders")).json(&body).send().await;
            let acked = match sent {
                Ok(r) if r.status().as_u16() == 201 => Acked::Live { version: 1, items, cancelled: false },
                Ok(r) if r.status().is_client_error() => panic!("{id}: create refused: {:?}", r.text().await),
                _ => Acked::Uncertain,
            };
            ledger.insert(id, acked);
            continue;
        }
        let (id, version) = &known[rng.below(known.len() as u64) as usize];
        let (request, outcome): (_, Outcome) = match pick {
            5..=7 => {
                let items = lines(&mut rng);
                let body = json!({"items": items});
                (
                    http.put(format!("{url}/orders/{id}")).header("if-match", format!("\"{version}\"")).json(&body),
                    Box::new(move |r: &Value| Acked::Live {
                        version: r["version"].as_u64().unwrap(),
                        items: items.clone(),
                        cancelled: false,
                    }),
                )
            }
            8 => {
                let items = match &ledger[id] {
                    Acked::Live { items, .. } => items.clone(),
                    _ => unreachable!("only live orders are picked"),
                };
                (
                    http.post(format!("{url}/orders/{id}/cancel")).header("if-match", format!("\"{version}\"")),
                    Box::new(move |r: &Value| Acked::Live {
                        version: r["version"].as_u64().unwrap(),
                        items: items.clone(),
                        cancelled: true,
                    }),
                )
            }
            _ => (
                http.delete(format!("{url}/orders/{id}")).header("if-match", format!("\"{version}\"")),
                Box::new(|_: &Value| Acked::Deleted),
            ),
        };
        let acked = match request.send().await {
            Ok(r) if r.status().as_u16() == 204 => outcome(&Value::Null),
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(body) => outcome(&body),
                Err(_) => Acked::Uncertain,
            },
            Ok(r) if r.status().is_client_error() => panic!("{id}: refused: {} {:?}", r.status(), r.text().await),
            _ => Acked::Uncertain,
        };
        ledger.insert(id.clone(), acked);
    }
    ledger
}

/// Every acknowledged write is what the command API reads back now.
pub async fn assert_nothing_acknowledged_was_lost(url: &str, ledger: &Ledger) -> usize {
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (id, acked) in ledger {
        let r = http.get(format!("{url}/orders/{id}")).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match acked {
            Acked::Uncertain => continue,
            Acked::Deleted => assert_eq!(status, 404, "{id} was deleted (acknowledged): {body}"),
            Acked::Live { version, items, cancelled } => {
                assert_eq!(status, 200, "{id} v{version} was acknowledged: {body}");
                assert_eq!(body["version"].as_u64(), Some(*version), "{id}: {body}");
                let want = if *cancelled { "cancelled" } else { "created" };
                assert_eq!(body["status"], want, "{id}");
                let mut got: Vec<Value> = body["items"].as_array().unwrap().clone();
                let mut sent: Vec<Value> = items.as_array().unwrap().clone();
                let key = |v: &Value| v["itemid"].as_str().unwrap_or_default().to_owned();
                got.sort_by_key(key);
                sent.sort_by_key(key);
                for (g, s) in got.iter().zip(&sent) {
                    assert_eq!((&g["itemid"], &g["quantity"]), (&s["itemid"], &s["quantity"]), "{id}");
                    let price =
                        |v: &Value| v.get("unitPrice").and_then(Value::as_str).map(|p| p.parse::<f64>().unwrap());
                    assert_eq!(price(g), price(s), "{id}: {g} vs {s}");
                }
                assert_eq!(got.len(), sent.len(), "{id}");
            }
        }
        checked += 1;
    }
    checked
}

/// The item report and each item's monthly report, over HTTP, equal a recomputation from `orders` (the write
/// model's final state).
pub async fn assert_reports_equal_a_recomputation(query_url: &str, orders: &[domain::Order]) {
    let totals = domain::projection::Totals::recompute(orders.iter());
    let (status, report) = super::get(query_url, "/itemSalesReport").await;
    assert_eq!(status, 200, "{report}");
    let expected: Vec<Value> = totals
        .items
        .iter()
        .map(|(item, t)| {
            json!({
                "itemid": item.as_str(),
                "totalordered": t.quantity,
                "totalrevenue": (t.priced_quantity > 0).then(|| t.revenue.normalize().to_string()),
                "pricedordered": t.priced_quantity,
                "ordercount": t.orders,
                "lastorderdate": t.last_order_date.map(|d| d.format("%Y-%m-%d").to_string()),
            })
        })
        .collect();
    assert_eq!(report, Value::Array(expected), "the item report");
    for item in totals.items.keys() {
        let (status, months) = super::get(query_url, &format!("/monthlySalesByItem/{item}")).await;
        assert_eq!(status, 200);
        let mut expected: Vec<(String, i64)> = totals
            .months
            .iter()
            .filter(|((i, _), _)| i == item)
            .map(|((_, m), n)| (m.as_str().to_owned(), *n))
            .collect();
        expected.sort_by(|a, b| b.0.cmp(&a.0));
        let got: Vec<(String, i64)> = months
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["month"].as_str().unwrap().to_owned(), m["monthlyordered"].as_i64().unwrap()))
            .collect();
        assert_eq!(got, expected, "the monthly report of {item}");
    }
}

/// The write model's final state, read from its store in `data_dir` (with the runner stopped).
pub async fn write_model(data_dir: &std::path::Path) -> Vec<domain::Order> {
    let store = write_store::embedded::EmbeddedStore::open(
        &data_dir.join("orders.db"),
        write_store::embedded::EmbeddedOptions::default(),
    )
    .unwrap();
    store.snapshot().await.unwrap().0
}

/// Waits until `/projection/status` says every source has nothing waiting.
pub async fn await_caught_up(query_url: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (status, body) = super::get(query_url, "/projection/status").await;
        if status == 200 && body["sources"].as_array().is_some_and(|s| s.iter().all(|s| s["behind"] == 0)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not caught up within {within:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
