//! The reports' bodies as they go on the wire: the sample's keys, numbers as numbers, exact decimals as their
//! shortest text, dates as UTC days, months with their names.

use chrono::{Datelike, NaiveDate};
use read_model::{ItemRow, MonthRow};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

/// One item of `GET /itemSalesReport` (the sample's keys, numbers as numbers).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemSales<'a> {
    #[schema(example = "z3333", value_type = String)]
    pub itemid: &'a str,
    /// Units ordered, over orders that count (not cancelled, not removed).
    #[schema(example = 12)]
    pub totalordered: i64,
    /// Exact decimal: the sum of quantity × unit price over the lines whose price is known; `null` when no price
    /// is known for any unit counted (never "0" for unknown).
    #[schema(example = "15.0006", value_type = Option<String>)]
    pub totalrevenue: Option<PlainDecimal>,
    /// Units on the lines whose price is known: the part of `totalordered` that `totalrevenue` covers.
    #[schema(example = 12)]
    pub pricedordered: i64,
    /// Orders with this item.
    #[schema(example = 2)]
    pub ordercount: i64,
    /// The latest order date (UTC) among them.
    #[schema(example = "2022-11-02", format = Date, value_type = Option<String>)]
    pub lastorderdate: Option<UtcDate>,
}

/// Short ASCII text (a decimal, a date) built on the stack, then serialised as one string: no `String` per value,
/// and no trip through `fmt` and serde_json's escaping writer per piece (the full item report has 5,000 rows).
struct Ascii {
    buf: [u8; Ascii::CAPACITY],
    len: usize,
}

impl Ascii {
    /// Room for any `Decimal` (a sign, "0.", 27 zeros and 29 digits at most) and any 4-digit-year date.
    const CAPACITY: usize = 64;

    fn new() -> Ascii {
        Ascii { buf: [0; Ascii::CAPACITY], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// `n` in decimal, left-padded with zeros to `width` digits.
    fn push_number(&mut self, n: u128, width: usize) {
        let mut digits = [b'0'; 40];
        let mut at = digits.len();
        // 64-bit division where the value allows (a 128-bit one is a library call per digit).
        match u64::try_from(n) {
            Ok(mut small) => loop {
                at -= 1;
                digits[at] = b'0' + (small % 10) as u8;
                small /= 10;
                if small == 0 {
                    break;
                }
            },
            Err(_) => {
                let mut big = n;
                while big > 0 {
                    at -= 1;
                    digits[at] = b'0' + (big % 10) as u8;
                    big /= 10;
                }
            }
        }
        at = at.min(digits.len().saturating_sub(width));
        self.push(&digits[at..]);
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' are ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// A decimal as its shortest exact text ("15.0006", "12", "-0.5"): the mantissa's digits with the point put in and
/// trailing zeros after it dropped (`Decimal`'s own `Display` divides the 96-bit mantissa once per digit).
#[derive(Debug)]
pub struct PlainDecimal(Decimal);

impl PlainDecimal {
    fn text(&self) -> Ascii {
        let (mut mantissa, mut scale) = (self.0.mantissa(), self.0.scale() as usize);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        let mut out = Ascii::new();
        if mantissa < 0 {
            out.push(b"-");
        }
        let mut digits = Ascii::new();
        digits.push_number(mantissa.unsigned_abs(), 1);
        let digits = &digits.buf[..digits.len];
        if scale == 0 {
            out.push(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push(int);
            out.push(b".");
            out.push(frac);
        } else {
            out.push(b"0.");
            for _ in digits.len()..scale {
                out.push(b"0");
            }
            out.push(digits);
        }
        out
    }
}

impl std::fmt::Display for PlainDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl Serialize for PlainDecimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text().as_str())
    }
}

/// A UTC date as `YYYY-MM-DD`, written out (chrono's strftime re-parses its pattern on every call).
#[derive(Debug)]
pub struct UtcDate(NaiveDate);

impl std::fmt::Display for UtcDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), self.0.month(), self.0.day())
    }
}

impl Serialize for UtcDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Ok(year @ 0..=9_999) = u16::try_from(self.0.year()) else {
            return serializer.collect_str(self); // years before 0 or past 9999: chrono's range, never an order's
        };
        let mut out = Ascii::new();
        out.push_number(u128::from(year), 4);
        out.push(b"-");
        out.push_number(u128::from(self.0.month()), 2);
        out.push(b"-");
        out.push_number(u128::from(self.0.day()), 2);
        serializer.serialize_str(out.as_str())
    }
}

impl<'a> From<&'a ItemRow> for ItemSales<'a> {
    fn from(row: &'a ItemRow) -> ItemSales<'a> {
        ItemSales {
            itemid: row.itemid.as_str(),
            totalordered: row.totalordered,
            totalrevenue: row.known_revenue().map(PlainDecimal),
            pricedordered: row.pricedordered,
            ordercount: row.ordercount,
            lastorderdate: row.lastorderdate.map(|d| UtcDate(d.date_naive())),
        }
    }
}

/// One month of `GET /monthlySalesByItem/{itemid}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlySales {
    #[schema(example = "October 2022")]
    pub monthyear: String,
    /// The UTC month, `YYYY-MM`.
    #[schema(example = "2022-10")]
    pub month: String,
    #[schema(example = 12)]
    pub monthlyordered: i64,
}

impl From<&MonthRow> for MonthlySales {
    fn from(row: &MonthRow) -> MonthlySales {
        let month = row.month.as_str();
        let (y, m) = month.split_once('-').unwrap_or(("", ""));
        let name = y
            .parse::<i32>()
            .ok()
            .zip(m.parse::<u32>().ok())
            .and_then(|(y, m)| NaiveDate::from_ymd_opt(y, m, 1))
            .map(|d| format!("{} {}", d.format("%B"), d.year()))
            .unwrap_or_else(|| month.to_owned());
        MonthlySales { monthyear: name, month: month.to_owned(), monthlyordered: row.monthlyordered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_decimals_then_their_text_is_exact_and_shortest() {
        for (raw, text) in [
            ("15.0006", "15.0006"),
            ("12.0000", "12"),
            ("0", "0"),
            ("0.0000", "0"),
            ("-0.5000", "-0.5"),
            ("0.0001", "0.0001"),
            ("-0.0123", "-0.0123"),
            ("100", "100"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
            ("1234567.8900", "1234567.89"),
        ] {
            let d: Decimal = raw.parse().unwrap();
            assert_eq!(PlainDecimal(d).to_string(), text, "{raw}");
            assert_eq!(PlainDecimal(d).to_string(), d.normalize().to_string(), "as Decimal's own normalised text");
            assert_eq!(serde_json::to_string(&PlainDecimal(d)).unwrap(), format!("\"{text}\""), "{raw} in JSON");
        }
    }

    #[test]
    fn given_an_item_with_no_priced_units_then_its_revenue_is_null_but_a_known_price_of_zero_gives_zero() {
        let row = |revenue: &str, pricedordered| ItemRow {
            itemid: domain::ItemId::parse("z4444").unwrap(),
            totalordered: 3,
            totalrevenue: revenue.parse().unwrap(),
            pricedordered,
            ordercount: 1,
            lastorderdate: None,
        };
        let json = |r: &ItemRow| serde_json::to_value(ItemSales::from(r)).unwrap();
        assert_eq!(json(&row("0", 0))["totalrevenue"], serde_json::Value::Null, "no price known");
        assert_eq!(json(&row("0", 3))["totalrevenue"], "0", "priced at 0");
        assert_eq!(
            (json(&row("7.5", 2))["totalrevenue"].clone(), json(&row("7.5", 2))["pricedordered"].clone()),
            (serde_json::json!("7.5"), serde_json::json!(2))
        );
    }

    #[test]
    fn given_dates_then_json_has_them_as_four_digit_year_month_day() {
        for (y, m, d, text) in [(2022, 10, 3, "2022-10-03"), (999, 1, 31, "0999-01-31"), (9999, 12, 31, "9999-12-31")] {
            let date = UtcDate(NaiveDate::from_ymd_opt(y, m, d).unwrap());
            assert_eq!(serde_json::to_string(&date).unwrap(), format!("\"{text}\""));
            assert_eq!(date.to_string(), text);
        }
        let far = UtcDate(NaiveDate::from_ymd_opt(12_345, 6, 7).unwrap());
        assert_eq!(
            serde_json::to_string(&far).unwrap(),
            format!("\"{far}\""),
            "outside 4 digits: as Display writes it"
        );
    }
}
