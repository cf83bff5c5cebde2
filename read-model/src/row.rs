//! Result rows: read where the backend left them (`RowRef`), or as a vector of cells (`DbRow`); on PostgreSQL
//! decoded from the binary values it sends.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use rust_decimal::Decimal;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, ColumnIndex, Decode, Row, Type, TypeInfo, ValueRef};

use crate::value::PgTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// PostgreSQL's TIMESTAMPTZ.
    Time(DateTime<Utc>),
    /// PostgreSQL's NUMERIC.
    Decimal(Decimal),
}

/// One result row.
#[derive(Debug, Clone)]
pub struct DbRow(pub(crate) Vec<Cell>);

impl DbRow {
    pub fn cell(&self, i: usize) -> Result<&Cell, sqlx::Error> {
        self.0.get(i).ok_or_else(|| sqlx::Error::ColumnIndexOutOfBounds { index: i, len: self.0.len() })
    }

    fn mismatch(i: usize, want: &str, got: &Cell) -> sqlx::Error {
        sqlx::Error::ColumnDecode { index: i.to_string(), source: format!("expected {want}, found {got:?}").into() }
    }

    pub fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        match self.cell(i)? {
            Cell::Int(v) => Ok(*v),
            other => Err(DbRow::mismatch(i, "an integer", other)),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        match self.cell(i)? {
            Cell::Text(s) => Ok(s.clone()),
            other => Err(DbRow::mismatch(i, "text", other)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Column `i` as an integer where its type is one (of any width), else as text.
    fn plain_cell<'r, R: Row>(row: &'r R, i: usize) -> Result<Cell, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        i64: Type<R::Database> + Decode<'r, R::Database>,
        i32: Type<R::Database> + Decode<'r, R::Database>,
        String: Type<R::Database> + Decode<'r, R::Database>,
    {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        // The value's own type where the backend has one per value (SQLite), else the column's.
        let integer = raw.type_info().name().contains("INT") || row.columns()[i].type_info().name().contains("INT");
        if !integer {
            return row.try_get::<String, _>(i).map(Cell::Text);
        }
        match row.try_get::<i64, _>(i) {
            Ok(v) => Ok(Cell::Int(v)),
            Err(_) => row.try_get::<i32, _>(i).map(|v| Cell::Int(i64::from(v))),
        }
    }

    fn pg_cell(row: &PgRow, i: usize, kind: PgKind) -> Result<Cell, sqlx::Error> {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        if raw.format() != PgValueFormat::Binary {
            return DbRow::plain_cell(row, i);
        }
        let decode = |e: String| sqlx::Error::ColumnDecode { index: i.to_string(), source: e.into() };
        let bytes = raw.as_bytes().map_err(|e| decode(e.to_string()))?;
        let int = |bytes: &[u8]| -> Result<i64, sqlx::Error> {
            match bytes.len() {
                8 => Ok(i64::from_be_bytes(bytes.try_into().map_err(|_| decode("INT8".into()))?)),
                4 => Ok(i64::from(i32::from_be_bytes(bytes.try_into().map_err(|_| decode("INT4".into()))?))),
                2 => Ok(i64::from(i16::from_be_bytes(bytes.try_into().map_err(|_| decode("INT2".into()))?))),
                n => Err(decode(format!("an integer of {n} bytes"))),
            }
        };
        Ok(match kind {
            PgKind::Int => Cell::Int(int(bytes)?),
            PgKind::Text => Cell::Text(std::str::from_utf8(bytes).map_err(|e| decode(e.to_string()))?.to_owned()),
            PgKind::Time => {
                Cell::Time(pg_time(int(bytes)?).ok_or_else(|| decode("an infinite or out-of-range time".into()))?)
            }
            PgKind::Decimal => Cell::Decimal(
                pg_numeric(bytes)
                    .ok_or_else(|| decode("a NUMERIC that is not a finite decimal of 28 digits".into()))?,
            ),
            PgKind::Other => return DbRow::plain_cell(row, i),
        })
    }
}

/// One result row where the backend left it, read column by column: for reads that map rows straight into their
/// own types, without a `DbRow` (a vector of cells) per row first.
pub enum RowRef<'r> {
    /// With each column's kind, looked at once per result.
    Pg(&'r PgRow, &'r [PgKind]),
    MySql(&'r MySqlRow),
    Sqlite(&'r SqliteRow),
}

impl RowRef<'_> {
    /// Column `i` as `DbRow` would hold it: on PostgreSQL decoded straight from the binary form the server sends
    /// (integers, text, TIMESTAMPTZ, NUMERIC); any other type, or a text-format value, as an integer or text.
    pub fn cell(&self, i: usize) -> Result<Cell, sqlx::Error> {
        match self {
            RowRef::Pg(row, kinds) => DbRow::pg_cell(row, i, kinds.get(i).copied().unwrap_or(PgKind::Other)),
            RowRef::MySql(row) => DbRow::plain_cell(*row, i),
            RowRef::Sqlite(row) => DbRow::plain_cell(*row, i),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RowRef::Pg(row, _) => row.len(),
            RowRef::MySql(row) => row.len(),
            RowRef::Sqlite(row) => row.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn to_db_row(&self) -> Result<DbRow, sqlx::Error> {
        (0..self.len()).map(|i| self.cell(i)).collect::<Result<_, _>>().map(DbRow)
    }
}

/// Each row of `rows` mapped by `f` as it arrives (no vector of backend rows held first), in order; the first error
/// ends it.
pub(crate) async fn map_rows<R, T, E: From<sqlx::Error>>(
    mut rows: BoxStream<'_, Result<R, sqlx::Error>>,
    mut f: impl FnMut(&R) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        out.push(f(&row)?);
    }
    Ok(out)
}

/// `map_rows` for PostgreSQL, each column's kind looked at once (on the first row).
pub(crate) async fn map_pg<T, E: From<sqlx::Error>>(
    rows: BoxStream<'_, Result<PgRow, sqlx::Error>>,
    mut f: impl FnMut(RowRef<'_>) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut kinds: Option<Vec<PgKind>> = None;
    map_rows(rows, |row: &PgRow| {
        let kinds =
            kinds.get_or_insert_with(|| row.columns().iter().map(|c| PgKind::of(c.type_info().name())).collect());
        f(RowRef::Pg(row, kinds))
    })
    .await
}

/// How a PostgreSQL column's binary values decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    Int,
    Text,
    Time,
    Decimal,
    Other,
}

impl PgKind {
    pub(crate) fn of(type_name: &str) -> PgKind {
        match type_name {
            "INT2" | "INT4" | "INT8" => PgKind::Int,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => PgKind::Text,
            "TIMESTAMPTZ" => PgKind::Time,
            "NUMERIC" => PgKind::Decimal,
            _ => PgKind::Other,
        }
    }
}

/// PostgreSQL's binary NUMERIC: digit count, weight, sign and display scale (each 16 bits), then base-10000
/// digits, the first worth 10000^weight; `None` for NaN, the infinities, and what `Decimal` cannot hold.
fn pg_numeric(bytes: &[u8]) -> Option<Decimal> {
    let word = |i: usize| bytes.get(2 * i..2 * i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (ndigits, weight, sign, scale) = (word(0)? as i16, word(1)? as i16, word(2)?, word(3)?);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let ndigits = usize::try_from(ndigits).ok()?;
    if bytes.len() != 8 + 2 * ndigits || scale > 28 {
        return None;
    }
    let mut mantissa: i128 = 0;
    for i in 0..ndigits {
        mantissa = mantissa.checked_mul(10_000)?.checked_add(i128::from(word(4 + i)?))?;
    }
    // mantissa x 10^-exponent is the value; bring it to `scale` digits after the point (digits past the display
    // scale are zeros, so the division is exact).
    let exponent = 4 * (ndigits as i64 - 1 - i64::from(weight));
    let shift = i64::from(scale) - exponent;
    let ten = |n: i64| 10i128.checked_pow(u32::try_from(n.unsigned_abs()).ok()?);
    mantissa = if shift >= 0 { mantissa.checked_mul(ten(shift)?)? } else { mantissa / ten(shift)? };
    Decimal::try_from_i128_with_scale(if negative { -mantissa } else { mantissa }, u32::from(scale)).ok()
}

/// PostgreSQL's binary TIMESTAMPTZ: microseconds since 2000-01-01 UTC; `None` for its infinities.
fn pg_time(micros: i64) -> Option<DateTime<Utc>> {
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    DateTime::from_timestamp_micros(micros.checked_add(PgTime::UNIX_TO_2000_MICROS)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_integers_text_and_null_and_says_when_a_column_is_not_what_was_asked() {
        let row = DbRow(vec![Cell::Int(7), Cell::Text("x".into()), Cell::Null]);
        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.text(1).unwrap(), "x");
        assert_eq!(row.cell(2).unwrap(), &Cell::Null);
        assert!(row.text(0).is_err());
        assert!(row.int(1).is_err());
        assert!(row.int(3).is_err());
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, scale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits as u16, weight as u16, sign, scale].into_iter().chain(digits.iter().map(|d| *d as u16)) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn given_postgres_binary_numerics_then_they_decode_exactly_with_their_scale() {
        let cases: [(Vec<u8>, &str); 7] = [
            (numeric(2, 0, 0, 4, &[15, 6]), "15.0006"),
            (numeric(0, 0, 0, 4, &[]), "0.0000"),
            (numeric(3, 1, 0x4000, 1, &[123, 4567, 5000]), "-1234567.5"),
            (numeric(1, 5, 0, 0, &[1]), "100000000000000000000"),
            (numeric(1, -1, 0, 4, &[1]), "0.0001"),
            (numeric(1, -2, 0, 8, &[1234]), "0.00001234"),
            (numeric(2, 6, 0, 0, &[7922, 8162]), "7922816200000000000000000000"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(pg_numeric(&bytes).map(|d| d.to_string()).as_deref(), Some(expected), "{bytes:?}");
        }
        // NaN, +/-infinity, a truncated value, a scale past Decimal's and a value past its 96 bits.
        for bad in [
            numeric(0, 0, 0xC000, 0, &[]),
            numeric(0, 0, 0xD000, 0, &[]),
            numeric(0, 0, 0xF000, 0, &[]),
            numeric(2, 0, 0, 0, &[1])[..10].to_vec(),
            numeric(1, 0, 0, 29, &[1]),
            numeric(1, 8, 0, 0, &[1]),
        ] {
            assert_eq!(pg_numeric(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn given_postgres_binary_times_then_they_count_from_2000_in_utc_and_infinities_are_refused() {
        assert_eq!(pg_time(0).unwrap().to_rfc3339(), "2000-01-01T00:00:00+00:00");
        assert_eq!(pg_time(-946_684_800_000_000).unwrap().timestamp(), 0);
        // 2022-10-13T10:00:00.123Z
        let at = DateTime::parse_from_rfc3339("2022-10-13T10:00:00.123Z").unwrap().with_timezone(&Utc);
        assert_eq!(pg_time(at.timestamp_micros() - 946_684_800_000_000), Some(at));
        assert_eq!(pg_time(i64::MAX), None);
        assert_eq!(pg_time(i64::MIN), None);
    }
}
