//! A change a backend refuses is set aside with its reason, and every other change goes on, on every backend:
//! through the batch rule the Lambda, the poller and the embedded tail share (`feed::project`).

use domain::testkit::{History, Rng, at};
use domain::{ChangeKind, Order, OrderChange, Position};
use projector::sink as feed;
use test_support::databases::{ALL, Backend, assert_equals_recomputation, fresh};

/// Makes `db` refuse any order with the id "poison", as a backend refuses a value it cannot store (MariaDB once
/// refused a leap second): a CHECK constraint on the servers, a trigger on SQLite.
async fn refuse_poison(db: &test_support::databases::Fresh, backend: Backend) {
    let sql = match backend {
        Backend::Postgres | Backend::MariaDb => {
            "ALTER TABLE orders ADD CONSTRAINT no_poison CHECK (orderid <> 'poison')"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON orders WHEN NEW.orderid = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'no poison'); END"
        }
    };
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
}

fn poison_order() -> Order {
    domain::testkit::order(r#"{"orderId":"poison","items":[{"itemid":"z3333","quantity":1}]}"#, "2026-01-01T00:00:00Z")
}

#[tokio::test]
async fn given_a_change_a_backend_refuses_mid_batch_then_it_alone_is_set_aside_and_the_rest_goes_on() {
    for backend in ALL {
        // Given a history with one change in it that the server backends cannot store
        let db = fresh(backend).await;
        refuse_poison(&db, backend).await;
        let mut rng = Rng::new(21);
        let mut history = History::random(&mut rng, 30, 300);
        let poison_at = history.changes.len() / 2;
        let poison = poison_order();
        // Renumber: the poison takes its place, everything after moves one on.
        let mut changes: Vec<OrderChange> = Vec::new();
        for (i, c) in history.changes.iter().enumerate() {
            if i == poison_at {
                let position =
                    Position { source: "test".into(), sequence: domain::change::Sequence::from(i as u64 + 1) };
                changes.push(
                    OrderChange::new(
                        ChangeKind::Insert,
                        None,
                        Some(poison.clone()),
                        position,
                        at("2026-01-01T00:00:00Z"),
                    )
                    .unwrap(),
                );
            }
            let position =
                Position { source: "test".into(), sequence: domain::change::Sequence::from(changes.len() as u64 + 1) };
            changes.push(
                OrderChange::new(c.kind(), c.before().cloned(), c.after().cloned(), position, c.changed_at()).unwrap(),
            );
        }
        history.changes = changes;

        // When it is projected in batches of 64
        let mut set_aside = 0;
        for batch in history.changes.chunks(64) {
            let outcome = feed::project(&db.model, batch.iter().cloned().map(Ok).collect()).await;
            assert_eq!(outcome.failure, None, "{backend:?}");
            set_aside += outcome.set_aside;
        }

        // Then it alone is set aside, with the database's reason; everything else is what the history gives
        let letters = db.model.dead_letters(10).await.unwrap();
        assert_eq!((set_aside, letters.count), (1, 1), "{backend:?}");
        let letter = &letters.newest[0];
        assert_eq!(letter.order_id.as_deref(), Some("poison"));
        assert_eq!(letter.sequence.as_str(), (poison_at as u64 + 1).to_string());
        assert!(letter.reason.contains("read model database error"), "{backend:?}: {}", letter.reason);
        let record: OrderChange = serde_json::from_str(&letter.record).unwrap();
        assert_eq!(record.after(), Some(&poison), "the change itself is kept, to apply again later");
        assert_equals_recomputation(&db.model, &history, &format!("{backend:?}")).await;
        db.drop_database().await;
    }
}
