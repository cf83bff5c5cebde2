//! The read model's migrations, compiled in.

use super::*;

/// The migrations of `migrations/<dialect>`, compiled in (sqlx's layout: `<version>_<description>.sql`). Listed
/// here rather than found by sqlx's `migrate!` macro, which would pull its proc-macro build into every binary.
const MIGRATIONS: &[(i64, &str, &str, &str, &str)] = &[
    (
        1,
        "read model",
        include_str!("../../../migrations/postgres/0001_read_model.sql"),
        include_str!("../../../migrations/mysql/0001_read_model.sql"),
        include_str!("../../../migrations/sqlite/0001_read_model.sql"),
    ),
    (
        2,
        "reports and reader",
        include_str!("../../../migrations/postgres/0002_reports_and_reader.sql"),
        include_str!("../../../migrations/mysql/0002_reports_and_reader.sql"),
        include_str!("../../../migrations/sqlite/0002_reports_and_reader.sql"),
    ),
    (
        3,
        "projection epoch",
        include_str!("../../../migrations/postgres/0003_projection_epoch.sql"),
        include_str!("../../../migrations/mysql/0003_projection_epoch.sql"),
        include_str!("../../../migrations/sqlite/0003_projection_epoch.sql"),
    ),
    (
        4,
        "writer role",
        include_str!("../../../migrations/postgres/0004_writer_role.sql"),
        include_str!("../../../migrations/mysql/0004_writer_role.sql"),
        include_str!("../../../migrations/sqlite/0004_writer_role.sql"),
    ),
    (
        5,
        "report fillfactor",
        include_str!("../../../migrations/postgres/0005_report_fillfactor.sql"),
        include_str!("../../../migrations/mysql/0005_report_fillfactor.sql"),
        include_str!("../../../migrations/sqlite/0005_report_fillfactor.sql"),
    ),
    (
        6,
        "priced quantity",
        include_str!("../../../migrations/postgres/0006_priced_quantity.sql"),
        include_str!("../../../migrations/mysql/0006_priced_quantity.sql"),
        include_str!("../../../migrations/sqlite/0006_priced_quantity.sql"),
    ),
    (
        7,
        "dead letters and backlog",
        include_str!("../../../migrations/postgres/0007_dead_letters_and_backlog.sql"),
        include_str!("../../../migrations/mysql/0007_dead_letters_and_backlog.sql"),
        include_str!("../../../migrations/sqlite/0007_dead_letters_and_backlog.sql"),
    ),
    (
        8,
        "rebuild marker",
        include_str!("../../../migrations/postgres/0008_rebuild_marker.sql"),
        include_str!("../../../migrations/mysql/0008_rebuild_marker.sql"),
        include_str!("../../../migrations/sqlite/0008_rebuild_marker.sql"),
    ),
];

pub(super) fn migrator(dialect: Dialect) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, pg, my, lite)| {
                let sql = match dialect {
                    Dialect::Postgres => *pg,
                    Dialect::MySql => *my,
                    Dialect::Sqlite => *lite,
                };
                Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}
