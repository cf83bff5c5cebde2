//! Login users for the two roles the migrations create: the projector's (`orders_writer`: rows, no schema) and
//! the query side's (`orders_reader`: SELECT only). Run as the database owner after the migrations (the stack's
//! migrations function, crate `migrator`); safe to run again.

use super::{ProjectionError, ReadModel, Result};
use crate::dialect::Dialect;

/// Which of the migrations' roles a login holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    Writer,
    Reader,
}

impl DbRole {
    pub fn name(self) -> &'static str {
        match self {
            DbRole::Writer => "orders_writer",
            DbRole::Reader => "orders_reader",
        }
    }
}

/// How a login proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoginAuth {
    /// RDS IAM tokens (PostgreSQL: member of `rds_iam`; MySQL: `AWSAuthenticationPlugin`), created if missing.
    /// Fails on a server that is not RDS or Aurora, saying so, rather than creating a login nobody can use.
    #[value(name = "iam")]
    RdsIam,
    /// The login exists already, with credentials managed elsewhere: only the role is granted.
    Existing,
}

/// A user name safe to write into DDL unquoted: lowercase letters, digits and `_`, not starting with a digit, at
/// most 32 characters (MySQL's limit), and not one of the roles themselves or a reserved prefix.
fn checked(user: &str) -> Result<&str> {
    let well_formed = !user.is_empty()
        && user.len() <= 32
        && user.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !user.as_bytes()[0].is_ascii_digit();
    let reserved = ["orders_writer", "orders_reader", "rds_iam", "public"].contains(&user)
        || user.starts_with("pg_")
        || user.starts_with("rds");
    if well_formed && !reserved {
        Ok(user)
    } else {
        Err(ProjectionError::Config(format!(
            "database user {user:?}: use 1 to 32 of a-z, 0-9 and _, not starting with a digit, not a role's name or \
             pg_/rds prefixed"
        )))
    }
}

/// The statements that give `user` `role` (and create it for `auth`), in order, for `dialect`. `mariadb` picks
/// MariaDB's `SET DEFAULT ROLE ... FOR` over MySQL's `... TO`.
fn statements(dialect: Dialect, mariadb: bool, user: &str, role: DbRole, auth: LoginAuth) -> Vec<String> {
    let role = role.name();
    match dialect {
        Dialect::Postgres => {
            let mut sql = Vec::new();
            if auth == LoginAuth::RdsIam {
                sql.push(format!(
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') THEN \
                     CREATE ROLE {user} LOGIN; END IF; END $$"
                ));
                sql.push(format!("GRANT rds_iam TO {user}"));
            }
            sql.push(format!("GRANT {role} TO {user}"));
            sql
        }
        Dialect::MySql => {
            let account = format!("'{user}'@'%'");
            let mut sql = Vec::new();
            if auth == LoginAuth::RdsIam {
                sql.push(format!(
                    "CREATE USER IF NOT EXISTS {account} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
                ));
            }
            sql.push(format!("GRANT {role} TO {account}"));
            sql.push(if mariadb {
                format!("SET DEFAULT ROLE {role} FOR {account}")
            } else {
                format!("SET DEFAULT ROLE {role} TO {account}")
            });
            sql
        }
        Dialect::Sqlite => Vec::new(),
    }
}

impl ReadModel {
    /// Gives `user` the role `role`: creates the login for `auth` if missing, grants the role (and, on MySQL,
    /// makes it the login's default role, active at every connection). SQLite has no users: nothing to do.
    pub async fn grant_login(&self, user: &str, role: DbRole, auth: LoginAuth) -> Result<()> {
        let user = checked(user)?;
        let mut conn = self.pool.read().await?;
        let mariadb = match self.dialect {
            Dialect::MySql => {
                let version = conn.fetch("SELECT VERSION()", &[]).await?;
                version.first().map(|r| r.text(0)).transpose()?.is_some_and(|v| v.contains("MariaDB"))
            }
            _ => false,
        };
        for sql in statements(self.dialect, mariadb, user, role, auth) {
            conn.execute_raw(&sql).await.map_err(|e| match (&e, auth) {
                (sqlx::Error::Database(db), LoginAuth::RdsIam)
                    if db.message().contains("rds_iam") || db.message().contains("AWSAuthenticationPlugin") =>
                {
                    ProjectionError::Config(format!(
                        "{sql}: {db} (RDS IAM logins need RDS or Aurora; elsewhere create the login yourself and \
                         grant it with LoginAuth::Existing)"
                    ))
                }
                _ => ProjectionError::Database(e),
            })?;
        }
        tracing::info!(user, role = role.name(), ?auth, "login granted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names_then_only_plain_lowercase_identifiers_that_are_not_roles_are_accepted() {
        for ok in ["orders_projector", "reader2", "_x"] {
            assert!(checked(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Orders",
            "2fast",
            "a-b",
            "x'; DROP TABLE orders; --",
            "orders_writer",
            "orders_reader",
            "rds_iam",
            "rdsadmin",
            "pg_monitor",
            "public",
            "a_name_that_is_longer_than_thirty_two",
        ] {
            assert!(checked(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn given_each_dialect_then_the_grant_statements_are_the_servers_own_syntax() {
        let pg = statements(Dialect::Postgres, false, "w", DbRole::Writer, LoginAuth::RdsIam);
        assert_eq!(pg[1..], ["GRANT rds_iam TO w", "GRANT orders_writer TO w"]);
        assert!(pg[0].contains("CREATE ROLE w LOGIN"), "{}", pg[0]);
        assert_eq!(
            statements(Dialect::Postgres, false, "r", DbRole::Reader, LoginAuth::Existing),
            ["GRANT orders_reader TO r"]
        );

        let mysql = statements(Dialect::MySql, false, "w", DbRole::Writer, LoginAuth::RdsIam);
        assert_eq!(
            mysql,
            [
                "CREATE USER IF NOT EXISTS 'w'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
                "GRANT orders_writer TO 'w'@'%'",
                "SET DEFAULT ROLE orders_writer TO 'w'@'%'",
            ]
        );
        let mariadb = statements(Dialect::MySql, true, "r", DbRole::Reader, LoginAuth::Existing);
        assert_eq!(mariadb, ["GRANT orders_reader TO 'r'@'%'", "SET DEFAULT ROLE orders_reader FOR 'r'@'%'"]);
        assert!(statements(Dialect::Sqlite, false, "w", DbRole::Writer, LoginAuth::RdsIam).is_empty());
    }
}
