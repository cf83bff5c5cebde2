//! The read model on PostgreSQL, MariaDB and SQLite, one suite for all three, each test in a fresh database.
//! PostgreSQL and MariaDB must be running (127.0.0.1:5432 trust auth, 127.0.0.1:3306 root without password, or
//! TEST_POSTGRES_URL / TEST_MYSQL_URL); a test that cannot reach them fails and says so.

mod common;

use domain::testkit::{History, Rng, at, order};
use domain::{ChangeKind, Lines};
use sqlx::Executor;

use test_support::databases::*;

use common::{change, item};

#[tokio::test]
async fn given_the_samples_example_when_projected_then_orders_lines_and_aggregates_hold_it_on_every_backend() {
    for backend in ALL {
        let db = fresh(backend).await;
        let o1 = order(
            r#"{"orderId":"6119","orderDate":"2022-10-13T09:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"},{"itemid":"z4444","quantity":3}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let o2 = order(
            r#"{"orderId":"6120","orderDate":"2022-11-02T00:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"0.0001"}]}"#,
            "2026-11-21T09:00:01Z",
        );
        let applied = db
            .model
            .apply(&[change(ChangeKind::Insert, None, Some(&o1), 1), change(ChangeKind::Insert, None, Some(&o2), 2)])
            .await
            .unwrap();
        assert_eq!((applied.received, applied.applied), (2, 2), "{backend:?}");

        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(
            snap.orders.values().cloned().collect::<Vec<_>>(),
            vec![canonical(&o1), canonical(&o2)],
            "{backend:?}"
        );
        let z3 = &snap.items[&item("z3333")];
        assert_eq!(
            (z3.quantity, z3.revenue.to_string(), z3.priced_quantity, z3.orders),
            (12, "15.0006".to_owned(), 12, 2),
            "{backend:?}"
        );
        assert_eq!(z3.last_order_date, Some(at("2022-11-02T00:00:00Z")), "{backend:?}");
        let z4 = &snap.items[&item("z4444")];
        assert_eq!(
            (z4.quantity, z4.revenue.to_string(), z4.priced_quantity, z4.orders),
            (3, "0".to_owned(), 0, 1),
            "{backend:?}: no price known, so no units priced"
        );
        let months: Vec<(String, String, i64)> =
            snap.months.iter().map(|((i, m), q)| (i.to_string(), m.to_string(), *q)).collect();
        assert_eq!(
            months,
            [
                ("z3333".into(), "2022-10".into(), 6),
                ("z3333".into(), "2022-11".into(), 6),
                ("z4444".into(), "2022-10".into(), 3)
            ],
            "{backend:?}"
        );
        assert_eq!(snap.positions["shard-1"].0.as_str(), "2", "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_read_model_projected_before_priced_units_were_kept_when_migrated_then_they_are_filled_from_the_lines()
{
    for backend in ALL {
        let db = fresh(backend).await;
        let mut rng = Rng::new(7);
        let history = History::random(&mut rng, 12, 60);
        for batch in history.batches(&mut rng) {
            db.model.apply(&batch).await.unwrap();
        }
        let expected = db.model.snapshot().await.unwrap().items;
        assert!(expected.values().any(|t| t.priced_quantity > 0), "{backend:?}: some units are priced");
        assert!(expected.values().any(|t| t.priced_quantity < t.quantity), "{backend:?}: some are not");

        // Given the schema as migration 5 left it (no pricedordered column, migration 6 not recorded)
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        conn.execute("ALTER TABLE item_sales DROP COLUMN pricedordered").await.unwrap();
        conn.execute("DELETE FROM _sqlx_migrations WHERE version = 6").await.unwrap();
        drop(conn);

        // When migrated, then every item's priced units are what the projection itself keeps
        db.model.migrate().await.unwrap();
        assert_eq!(db.model.snapshot().await.unwrap().items, expected, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_projected_history_when_it_is_delivered_again_then_nothing_changes_but_a_newer_position_is_kept() {
    for backend in ALL {
        let db = fresh(backend).await;
        let v1 = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":2}]}"#, "2026-11-21T09:00:00Z");
        let mut v2 = v1.clone();
        v2.version = v1.version.next();
        v2.items = Lines::new(vec![domain::OrderLine {
            quantity: domain::Quantity::new(5).unwrap(),
            ..v1.items.as_slice()[0].clone()
        }])
        .unwrap();
        let history =
            [change(ChangeKind::Insert, None, Some(&v1), 1), change(ChangeKind::Modify, Some(&v1), Some(&v2), 2)];
        db.model.apply(&history).await.unwrap();
        let before = db.model.snapshot().await.unwrap();
        let again = db.model.apply(&history).await.unwrap();
        assert_eq!(again.applied, 0, "{backend:?}: duplicates are no-ops");
        let late = db.model.apply(&history[..1]).await.unwrap();
        assert_eq!(late.applied, 0, "{backend:?}");
        assert_eq!(
            db.model.snapshot().await.unwrap(),
            before,
            "{backend:?}: the read model and the position are unchanged"
        );
        assert_eq!(before.items[&item("x")].quantity, 5, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_removed_order_then_it_leaves_a_tombstone_that_late_changes_cannot_pass_but_a_new_order_can() {
    for backend in ALL {
        let db = fresh(backend).await;
        let v1 = order(
            r#"{"orderId":"a","orderDate":"2022-12-31T23:00:00Z","items":[{"itemid":"x","quantity":2}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let mut cancelled = v1.clone();
        cancelled.version = v1.version.next();
        cancelled.status = domain::OrderStatus::Cancelled;
        db.model.apply(&[change(ChangeKind::Insert, None, Some(&v1), 1)]).await.unwrap();
        db.model
            .apply(&[
                change(ChangeKind::Modify, Some(&v1), Some(&cancelled), 2),
                change(ChangeKind::Remove, Some(&cancelled), None, 3),
            ])
            .await
            .unwrap();
        let snap = db.model.snapshot().await.unwrap();
        assert!(snap.orders.is_empty() && snap.items.is_empty() && snap.months.is_empty(), "{backend:?}: {snap:?}");
        assert_eq!(snap.tombstones.len(), 1, "{backend:?}");

        let late = db.model.apply(&[change(ChangeKind::Insert, None, Some(&v1), 1)]).await.unwrap();
        assert_eq!(late.applied, 0, "{backend:?}: a late INSERT does not resurrect the order");

        let reborn = order(
            r#"{"orderId":"a","orderDate":"2023-01-01T00:30:00Z","items":[{"itemid":"y","quantity":1}]}"#,
            "2026-11-21T10:00:00Z",
        );
        assert_eq!(db.model.apply(&[change(ChangeKind::Insert, None, Some(&reborn), 4)]).await.unwrap().applied, 1);
        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(snap.orders.values().cloned().collect::<Vec<_>>(), vec![canonical(&reborn)], "{backend:?}");
        assert!(snap.tombstones.is_empty(), "{backend:?}");
        assert_eq!(db.rows_in("order_tombstones").await, 0, "{backend:?}: the new order's row replaced the tombstone");
        assert_eq!(snap.months.keys().map(|(_, m)| m.to_string()).collect::<Vec<_>>(), ["2023-01"], "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_the_latest_order_of_an_item_is_cancelled_then_its_last_order_date_falls_back_to_the_previous_one() {
    for backend in ALL {
        let db = fresh(backend).await;
        let early = order(
            r#"{"orderId":"e","orderDate":"2022-01-05T00:00:00Z","items":[{"itemid":"x","quantity":1}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let late = order(
            r#"{"orderId":"l","orderDate":"2022-03-05T00:00:00Z","items":[{"itemid":"x","quantity":1}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let mut cancelled = late.clone();
        cancelled.version = late.version.next();
        cancelled.status = domain::OrderStatus::Cancelled;
        db.model
            .apply(&[
                change(ChangeKind::Insert, None, Some(&early), 1),
                change(ChangeKind::Insert, None, Some(&late), 2),
            ])
            .await
            .unwrap();
        assert_eq!(db.model.snapshot().await.unwrap().items[&item("x")].last_order_date, Some(late.order_date));
        db.model.apply(&[change(ChangeKind::Modify, Some(&late), Some(&cancelled), 3)]).await.unwrap();
        let x = db.model.snapshot().await.unwrap().items[&item("x")].clone();
        assert_eq!((x.quantity, x.orders, x.last_order_date), (1, 1, Some(early.order_date)), "{backend:?}");
        db.drop_database().await;
    }
}
