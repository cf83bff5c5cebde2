//! The values statements carry: what a row to insert holds (`Val`, typed by its column's `Col`), and what is
//! bound to a statement (`Arg`), including PostgreSQL's whole columns as binary arrays (`Array`, `PgTime`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, Type};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    /// PostgreSQL only: a column of values as one binary array parameter (`UNNEST` inserts, `= ANY` filters).
    Array(Array),
}

/// A column of values for one PostgreSQL array parameter, sent in binary: the server parses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Time(Vec<Option<PgTime>>),
}

/// A PostgreSQL TIMESTAMPTZ as its binary value: microseconds since 2000-01-01 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTime(i64);

impl PgTime {
    pub(crate) const UNIX_TO_2000_MICROS: i64 = 946_684_800_000_000;
    /// TIMESTAMPTZ and its array type, by their fixed OIDs (no lookup).
    const OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(1184);
    const ARRAY_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(1185);

    #[cfg(test)]
    pub fn from_micros(micros: i64) -> PgTime {
        PgTime(micros)
    }

    /// `at` to the millisecond, as every time the read model stores.
    pub fn new(at: &DateTime<Utc>) -> PgTime {
        PgTime(at.timestamp_millis().saturating_mul(1_000).saturating_sub(PgTime::UNIX_TO_2000_MICROS))
    }
}

impl Type<Postgres> for PgTime {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(PgTime::OID)
    }
}

impl sqlx::postgres::PgHasArrayType for PgTime {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(PgTime::ARRAY_OID)
    }
}

impl sqlx::Encode<'_, Postgres> for PgTime {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        buf.extend(&self.0.to_be_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

/// One value of a row to insert, or of a statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    Decimal(Decimal),
    Null,
}

/// How a bound value is typed in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    Int,
    Time,
    Decimal,
}

impl Array {
    /// Appends `value` to this column; a value of another type is refused (rows are built from their columns'
    /// types, so that is a bug, never data).
    pub(crate) fn push(&mut self, value: Val) -> Result<(), String> {
        match (self, value) {
            (Array::Text(v), Val::Text(t)) => v.push(Some(t)),
            (Array::Text(v), Val::Decimal(d)) => v.push(Some(d.to_string())),
            (Array::Int(v), Val::Int(i)) => v.push(Some(i)),
            (Array::Time(v), Val::Time(at)) => v.push(Some(PgTime::new(&at))),
            (Array::Text(v), Val::Null) => v.push(None),
            (Array::Int(v), Val::Null) => v.push(None),
            (Array::Time(v), Val::Null) => v.push(None),
            (column, value) => return Err(format!("{value:?} in a column of {}", column.kind())),
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        match self {
            Array::Text(_) => "text",
            Array::Int(_) => "integers",
            Array::Time(_) => "times",
        }
    }
}
