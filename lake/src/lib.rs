//! The orders lake: every applied change as rows of Parquet under `<root>/order_lines/dt=YYYY-MM-DD/` (Hive-style,
//! by the order's UTC date), one row per order line, a tombstone row for a removal. One code path for the local
//! filesystem (`DATA_DIR/lake`, the default) and S3 (`LAKE_URL=s3://bucket/prefix`), through `object_store`.
//!
//! The lake is append-only: it keeps history, and `order_lines_current` (defined once, in SQL both engines run)
//! reduces it to current state. Files are written per batch, never per record; a batch's files are named by a digest
//! of the batch's positions, so a retried batch overwrites its own files instead of adding copies (the view also
//! drops exact duplicates, for retries that regroup records differently).

pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use domain::{ChangeKind, Order, OrderChange};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

/// The table of every change's rows.
pub const TABLE: &str = "order_lines";
/// The view of current state: latest version per order, without removed or cancelled orders.
pub const CURRENT_VIEW: &str = "order_lines_current";
/// Unit prices: up to 14 digits before the point and the domain's 4 after.
pub const PRICE_PRECISION: u8 = 18;
pub const PRICE_SCALE: i8 = 4;

/// The columns of `order_lines` as stored in each file (the partition column `dt` comes from the path).
pub fn schema() -> SchemaRef {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("orderid", DataType::Utf8, false),
        Field::new("itemid", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("unitprice", DataType::Decimal128(PRICE_PRECISION, PRICE_SCALE), true),
        Field::new("orderdate", utc(), false),
        // With `version`, the order's revision: an id can be reused after a removal, starting again at version 1.
        Field::new("created_at", utc(), false),
        Field::new("orderstatus", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("op", DataType::Utf8, false),
        Field::new("changed_at", utc(), false),
    ]))
}

/// The body of `order_lines_current` over `table`, in SQL that DataFusion, Athena (Trino) and DuckDB all run the
/// same way: per order, the rows of its latest revision's latest version, unless a tombstone erased that version or
/// the order is cancelled.
///
/// A revision is an order's life between creation and removal (`created_at` names it; an id can be reused after a
/// removal, starting again at version 1). `revisions` is one row per revision: its highest version, and the highest
/// version a tombstone erased (nothing follows a removal within a revision, so that is never above it). Only an
/// order's newest revision can be live: an id is reused only after a removal, and the stream delivers the removal
/// before the new creation, so every older revision has its tombstone here. The view therefore needs no "newest
/// revision" step: no window (the embedded engine numbers the rows of many small partitions slowly: a ROW_NUMBER
/// over 3.3 million revisions took 4.3 s of compute at 10 million lake rows) and no third read of the lake.
/// The revisions come first in the join: a hash join's build side cannot spill, so it must be the smaller one (the
/// embedded engine keeps the order written). The last GROUP BY drops the copies a retried batch may have written:
/// an order has each item once (the domain refuses duplicates), so copies agree on every column and MAX is each
/// one's value; grouping on two keys costs less than DISTINCT on nine.
pub fn current_view_query(table: &str) -> String {
    format!(
        "SELECT l.orderid, l.itemid, MAX(l.quantity) AS quantity, MAX(l.unitprice) AS unitprice, \
           MAX(l.orderdate) AS orderdate, MAX(l.orderstatus) AS orderstatus, MAX(l.version) AS version, \
           MAX(l.created_at) AS created_at, MAX(l.dt) AS dt \
         FROM (SELECT orderid, created_at, MAX(version) AS version, \
                 MAX(CASE WHEN op = 'REMOVE' THEN version END) AS removed_version \
               FROM {table} GROUP BY orderid, created_at) revisions \
         JOIN {table} l \
           ON l.orderid = revisions.orderid AND l.created_at = revisions.created_at \
             AND l.version = revisions.version \
         WHERE (revisions.removed_version IS NULL OR revisions.removed_version < revisions.version) \
           AND l.orderstatus <> 'cancelled' \
         GROUP BY l.orderid, l.itemid"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("LAKE_URL {0:?}: {1}")]
    Url(String, String),
    #[error("LAKE_URL is not set (s3://bucket/prefix)")]
    NoUrl,
    #[error("lake storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("stored position {0:?} is not a number")]
    Position(String),
}

/// What one `write` produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub rows: usize,
}

/// The lake writer's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LakeArgs {
    /// The lake: s3://bucket/prefix or a directory (the runner's default: DATA_DIR/lake; the Lambda needs it).
    #[arg(long, env = "LAKE_URL")]
    pub lake_url: Option<String>,
}

impl LakeArgs {
    /// `LAKE_URL`, which the Lambda must be given.
    pub fn url(&self) -> Result<&str, LakeError> {
        self.lake_url.as_deref().ok_or(LakeError::NoUrl)
    }
}

/// A client for `bucket` configured as the AWS SDK configures itself: credentials and region from the standard
/// `AWS_*` variables, and the endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (moto locally), which
/// object_store does not read on its own. These are AWS's variables, not this project's settings.
pub fn s3_store(bucket: &str) -> Result<object_store::aws::AmazonS3, object_store::Error> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    if let Some(endpoint) = endpoint {
        builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
    }
    builder.build()
}

/// The lake: where it is and how to write to it.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.url).finish()
    }
}

impl Lake {
    /// `s3://bucket/prefix` (credentials, region and endpoint from the usual `AWS_*` variables; path-style
    /// requests, which S3 and moto both take), or a local directory, created if missing.
    pub fn open(url: &str) -> Result<Lake, LakeError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LakeError::Url(url.into(), "no bucket".into()));
            }
            let store = s3_store(bucket).map_err(|e| LakeError::Url(url.into(), e.to_string()))?;
            return Ok(Lake { store: Arc::new(store), root: Path::from(prefix), url: url.into() });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir).map_err(|e| LakeError::Url(url.into(), e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| LakeError::Url(url.into(), e.to_string()))?;
        let abs = std::fs::canonicalize(dir).map_err(|e| LakeError::Url(url.into(), e.to_string()))?;
        Ok(Lake { store: Arc::new(store), root: Path::default(), url: abs.display().to_string() })
    }

    /// A lake over any store (tests, S3 clients built elsewhere).
    pub fn with_store(store: Arc<dyn ObjectStore>, root: Path, url: String) -> Lake {
        Lake { store, root, url }
    }

    /// Where the lake is: an absolute directory or the `s3://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `<root>/order_lines`, the table's location.
    pub fn table_path(&self) -> Path {
        self.root.clone().join(TABLE)
    }

    /// Appends the rows of `changes`: one Parquet file per UTC order date in the batch.
    pub async fn write(&self, changes: &[OrderChange]) -> Result<Written, LakeError> {
        if changes.is_empty() {
            return Ok(Written::default());
        }
        let mut digest = Sha256::new();
        for c in changes {
            digest.update(c.position().source.as_bytes());
            digest.update([0]);
            digest.update(c.position().sequence.as_str().as_bytes());
            digest.update([1]);
        }
        let batch_id: String = digest.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
        let mut written = Written::default();
        for (day, rows) in partition(changes) {
            let batch = rows.finish()?;
            let bytes = encode(&batch)?;
            let path =
                self.table_path().join(format!("dt={day}").as_str()).join(format!("part-{batch_id}.parquet").as_str());
            self.store.put(&path, bytes.into()).await?;
            written.files += 1;
            written.rows += batch.num_rows();
        }
        Ok(written)
    }

    fn position_path(&self, source: &str) -> Path {
        self.root.clone().join("_positions").join(source)
    }

    /// The last change of `source` (an embedded log sequence) the lake has.
    pub async fn position(&self, source: &str) -> Result<Option<u64>, LakeError> {
        match self.store.get(&self.position_path(source)).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                text.parse().map(Some).map_err(|_| LakeError::Position(text))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_position(&self, source: &str, sequence: u64) -> Result<(), LakeError> {
        self.store.put(&self.position_path(source), sequence.to_string().into_bytes().into()).await?;
        Ok(())
    }
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Rows of one partition, column by column.
struct Rows {
    orderid: StringBuilder,
    itemid: StringBuilder,
    quantity: Int32Builder,
    unitprice: Decimal128Builder,
    orderdate: TimestampMicrosecondBuilder,
    created_at: TimestampMicrosecondBuilder,
    orderstatus: StringBuilder,
    version: Int64Builder,
    op: StringBuilder,
    changed_at: TimestampMicrosecondBuilder,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            orderid: StringBuilder::new(),
            itemid: StringBuilder::new(),
            quantity: Int32Builder::new(),
            unitprice: Decimal128Builder::new(),
            orderdate: TimestampMicrosecondBuilder::new(),
            created_at: TimestampMicrosecondBuilder::new(),
            orderstatus: StringBuilder::new(),
            version: Int64Builder::new(),
            op: StringBuilder::new(),
            changed_at: TimestampMicrosecondBuilder::new(),
        }
    }

    fn push_order(&mut self, order: &Order, op: ChangeKind, changed_at: i64) {
        let version = i64::try_from(order.version.get()).unwrap_or(i64::MAX);
        let mut row = |itemid: Option<&str>, quantity: Option<i32>, price: Option<i128>| {
            self.orderid.append_value(order.order_id.as_str());
            self.itemid.append_option(itemid);
            self.quantity.append_option(quantity);
            self.unitprice.append_option(price);
            self.orderdate.append_value(order.order_date.timestamp_micros());
            self.created_at.append_value(order.created_at.timestamp_micros());
            self.orderstatus.append_value(order.status.as_str());
            self.version.append_value(version);
            self.op.append_value(op.as_str());
            self.changed_at.append_value(changed_at);
        };
        if op == ChangeKind::Remove {
            row(None, None, None);
            return;
        }
        for line in order.items.as_slice() {
            let quantity = i32::try_from(line.quantity.get()).unwrap_or(i32::MAX);
            row(Some(line.itemid.as_str()), Some(quantity), line.unit_price.map(|p| scaled(p.get())));
        }
    }

    fn finish(mut self) -> Result<RecordBatch, LakeError> {
        let utc = |b: &mut TimestampMicrosecondBuilder| -> ArrayRef { Arc::new(b.finish().with_timezone("UTC")) };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.orderid.finish()),
            Arc::new(self.itemid.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.unitprice.finish().with_precision_and_scale(PRICE_PRECISION, PRICE_SCALE)?),
            utc(&mut self.orderdate),
            utc(&mut self.created_at),
            Arc::new(self.orderstatus.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.op.finish()),
            utc(&mut self.changed_at),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// A price as the integer count of 1/10^4 (the domain keeps at most 4 decimal places).
fn scaled(price: rust_decimal::Decimal) -> i128 {
    let mut p = price;
    p.rescale(PRICE_SCALE as u32);
    p.mantissa()
}

/// The rows of `changes`, by UTC order date.
fn partition(changes: &[OrderChange]) -> BTreeMap<NaiveDate, Rows> {
    let mut days: BTreeMap<NaiveDate, Rows> = BTreeMap::new();
    for change in changes {
        let order = match change.kind() {
            ChangeKind::Remove => change.before(),
            ChangeKind::Insert | ChangeKind::Modify => change.after(),
        };
        let Some(order) = order else { continue };
        let day = order.order_date.date_naive();
        days.entry(day).or_insert_with(Rows::new).push_order(
            order,
            change.kind(),
            change.changed_at().timestamp_micros(),
        );
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int32Type, Int64Type};
    use domain::testkit::{change, order};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn read_all(dir: &std::path::Path) -> BTreeMap<String, Vec<RecordBatch>> {
        let mut out = BTreeMap::new();
        for day in std::fs::read_dir(dir.join(TABLE)).unwrap() {
            let day = day.unwrap();
            let name = day.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(day.path()).unwrap() {
                let file = std::fs::File::open(file.unwrap().path()).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
                out.entry(name.clone()).or_insert_with(Vec::new).extend(reader.map(Result::unwrap));
            }
        }
        out
    }

    #[tokio::test]
    async fn given_a_batch_of_changes_when_written_then_each_line_is_a_row_in_its_orders_utc_day() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let a = order(
            r#"{"orderId":"a","orderDate":"2022-12-31T23:30:00Z","items":[{"itemid":"x","quantity":2,"unitPrice":"1.25"},{"itemid":"y","quantity":1}]}"#,
            "2023-01-02T00:00:00Z",
        );
        let b = order(
            r#"{"orderId":"b","orderDate":"2023-01-01T00:10:00Z","items":[{"itemid":"x","quantity":5}]}"#,
            "2023-01-02T00:00:00Z",
        );
        let changes = vec![
            change(ChangeKind::Insert, None, Some(&a), "embedded", 1),
            change(ChangeKind::Insert, None, Some(&b), "embedded", 2),
            change(ChangeKind::Remove, Some(&b), None, "embedded", 3),
        ];

        let written = lake.write(&changes).await.unwrap();

        assert_eq!(written, Written { files: 2, rows: 4 });
        let files = read_all(dir.path());
        assert_eq!(files.keys().collect::<Vec<_>>(), ["dt=2022-12-31", "dt=2023-01-01"]);
        let old_year = &files["dt=2022-12-31"][0];
        assert_eq!(old_year.num_rows(), 2);
        assert_eq!(old_year.column(1).as_string::<i32>().value(0), "x");
        assert_eq!(old_year.column(2).as_primitive::<Int32Type>().value(0), 2);
        assert_eq!(old_year.column(3).as_primitive::<Decimal128Type>().value(0), 12_500);
        assert!(old_year.column(3).is_null(1), "an unknown price is NULL, not 0");
        let new_year = &files["dt=2023-01-01"][0];
        assert_eq!(new_year.column(8).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("INSERT"), Some("REMOVE")]);
        assert!(new_year.column(1).is_null(1), "a tombstone has no item");
        assert_eq!(
            new_year.column(7).as_primitive::<Int64Type>().value(1),
            1,
            "the tombstone carries the erased version"
        );
    }

    #[tokio::test]
    async fn given_the_same_batch_twice_when_written_then_its_files_are_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let a = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":2}]}"#, "2023-01-02T00:00:00Z");
        let batch = vec![change(ChangeKind::Insert, None, Some(&a), "embedded", 7)];

        lake.write(&batch).await.unwrap();
        lake.write(&batch).await.unwrap();

        let rows: usize = read_all(dir.path()).values().flatten().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn positions_are_kept_per_source_in_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(lake.position("embedded").await.unwrap(), None);
        lake.set_position("embedded", 42).await.unwrap();
        assert_eq!(Lake::open(dir.path().to_str().unwrap()).unwrap().position("embedded").await.unwrap(), Some(42));
    }

    #[test]
    fn prices_are_scaled_exactly() {
        assert_eq!(scaled("1.5".parse().unwrap()), 15_000);
        assert_eq!(scaled("0.0001".parse().unwrap()), 1);
        assert_eq!(scaled("12345678901234.9999".parse().unwrap()), 123_456_789_012_349_999);
    }

    /// The Glue catalog in template.yaml is the same table and view Athena runs in AWS.
    fn template() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
    }

    #[test]
    fn given_the_template_then_athenas_view_is_the_same_sql_as_the_embedded_engines() {
        let text = template();
        let start = text.find(r#"{"originalSql":""#).expect("the view's Presto definition") + 16;
        let end = start + text[start..].find(r#"","catalog""#).expect("the end of originalSql");
        assert_eq!(&text[start..end], current_view_query(TABLE));
    }

    #[test]
    fn given_the_template_then_the_glue_table_has_the_lakes_columns_in_order() {
        let text = template();
        let table = &text[text.find("  OrderLinesTable:").expect("OrderLinesTable")..];
        let table = &table[..table.find("\n\n").unwrap_or(table.len())];
        let columns: Vec<(&str, &str)> = table
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- {Name: "))
            .filter_map(|l| l.strip_suffix('}'))
            .filter_map(|l| l.split_once(", Type: "))
            .map(|(name, ty)| (name, ty.trim_matches('"')))
            .collect();
        let expected: Vec<(String, &str)> = schema()
            .fields()
            .iter()
            .map(|f| {
                let hive = match f.data_type() {
                    DataType::Utf8 => "string",
                    DataType::Int32 => "int",
                    DataType::Int64 => "bigint",
                    DataType::Decimal128(18, 4) => "decimal(18,4)",
                    DataType::Timestamp(_, _) => "timestamp",
                    other => panic!("no Hive type for {other}"),
                };
                (f.name().clone(), hive)
            })
            .chain([("dt".to_owned(), "string")])
            .collect();
        let got: Vec<(String, &str)> = columns.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect();
        // The partition key is declared apart from the columns: compare both.
        let dt = table.contains("- Name: dt\n            Type: string");
        assert!(dt, "dt is the partition key");
        assert_eq!(got, expected[..expected.len() - 1]);
    }
}
