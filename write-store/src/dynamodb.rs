//! The DynamoDB write store: one table keyed by `orderId`, the order stored in `codec`'s shape (lines as a
//! native list of maps). Every write is conditional: `attribute_not_exists` on create, the version that was read
//! on amend / cancel / delete, so concurrent commands cannot overwrite each other. Works against any endpoint
//! given by `AWS_ENDPOINT_URL` (moto in tests).

use std::collections::HashMap;
use std::time::Duration;

use crate::codec::{self as image, Item, item_from_aws, item_to_aws};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use chrono::{DateTime, Utc};
use domain::{CreateDecision, Decision, Fingerprint, Order, OrderCommand, OrderDraft, OrderId, decide_create};

use crate::{Created, Executed, OrderStore, StoreError};

/// How often a command re-reads and re-decides after losing a race to a concurrent write before giving up.
const MAX_ATTEMPTS: usize = 5;

pub struct DynamoDbStore {
    client: Client,
    table: String,
}

/// A client with bounded time per call, so a slow or unreachable endpoint becomes a 503, never a hang.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    let conf = aws_sdk_dynamodb::config::Builder::from(config).timeout_config(timeouts).build();
    Client::from_conf(conf)
}

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "ResourceNotFoundException",
];

/// Maps an SDK failure to the store's error: anything that says "not now" (throttling, 5xx, timeouts, no
/// connection, table missing) is `Unavailable`; the rest is `Internal`. Condition failures are handled by callers.
fn classify<E>(op: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!("{op}: {}", DisplayErrorContext(&e));
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            if RETRYABLE_CODES.contains(&code) || status >= 500 {
                StoreError::Unavailable(text)
            } else {
                StoreError::Internal(text)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Internal(text),
    }
}

impl DynamoDbStore {
    pub fn new(client: Client, table: String) -> DynamoDbStore {
        DynamoDbStore { client, table }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn load(&self, id: &OrderId) -> Result<Option<(Order, Fingerprint)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(image::KEY, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        let Some(raw) = out.item else { return Ok(None) };
        let (order, fingerprint) = image::from_item(&item_from_aws(&raw))?;
        Ok(Some((order, fingerprint.unwrap_or_else(|| Fingerprint::from_stored(String::new())))))
    }

    /// Writes `item` if the order is still at `expected` (or, with `None`, if there is no order yet).
    /// Ok(false) when the condition failed: somebody else wrote first.
    async fn put(&self, item: &Item, expected: Option<domain::Version>) -> Result<bool, StoreError> {
        let mut req = self.client.put_item().table_name(&self.table).set_item(Some(item_to_aws(item)));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(#k)").expression_attribute_names("#k", image::KEY),
            Some(v) => req
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", image::VERSION)
                .expression_attribute_values(":v", AttributeValue::N(v.get().to_string())),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn delete(&self, id: &OrderId, expected: domain::Version) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(image::KEY, AttributeValue::S(id.to_string()))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", image::VERSION)
            .expression_attribute_values(":v", AttributeValue::N(expected.get().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }

    /// One page of a consistent Scan of the table, or of one segment of a parallel Scan (`Some((segment, total))`):
    /// its orders, and where the next page starts (None at the end).
    pub async fn scan_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        segment: Option<(i32, i32)>,
    ) -> Result<(Vec<Order>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .set_segment(segment.map(|(s, _)| s))
            .set_total_segments(segment.map(|(_, t)| t))
            .send()
            .await
            .map_err(|e| classify("Scan", e))?;
        let orders = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|raw| image::from_item(&item_from_aws(raw)).map(|(o, _)| o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((orders, out.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// Creates the orders table as the template does (on-demand, stream with both images). For tests and local
    /// use against moto or DynamoDB Local; in AWS the stack owns the table.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(image::KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(image::KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| classify("CreateTable", e))?;
        Ok(())
    }
}

#[async_trait]
impl OrderStore for DynamoDbStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    async fn create(&self, draft: OrderDraft, now: DateTime<Utc>) -> Result<Created, StoreError> {
        let fingerprint = draft.fingerprint();
        for _ in 0..MAX_ATTEMPTS {
            let CreateDecision::Create(order) = decide_create(draft.clone(), None, now)? else {
                unreachable!("with nothing stored, a create always creates")
            };
            if self.put(&image::to_item(&order, &fingerprint), None).await? {
                return Ok(Created { order, replayed: false });
            }
            // The id is taken: a retry of this create, or a different order.
            if let Some((existing, stored_fp)) = self.load(&draft.order_id).await? {
                return match decide_create(draft, Some((&existing, &stored_fp)), now)? {
                    CreateDecision::Replay(order) => Ok(Created { order, replayed: true }),
                    CreateDecision::Create(_) => unreachable!("an existing order is never created over"),
                };
            }
            // Deleted between our write and our read: try again.
        }
        Err(StoreError::Unavailable(format!("order {} is being changed concurrently; retry", draft.order_id)))
    }

    async fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.load(id).await?.map(|(o, _)| o))
    }

    async fn execute(&self, id: &OrderId, command: OrderCommand, now: DateTime<Utc>) -> Result<Executed, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let loaded = self.load(id).await?;
            let decision = command.decide(loaded.as_ref().map(|(o, _)| o), id, now)?;
            let Some((current, fingerprint)) = loaded else { unreachable!("deciding on an absent order is NotFound") };
            let written = match &decision {
                Decision::Unchanged => return Ok(Executed::Unchanged(current)),
                Decision::Replace(next) => self.put(&image::to_item(next, &fingerprint), Some(current.version)).await?,
                Decision::Remove => self.delete(id, current.version).await?,
            };
            if written {
                return Ok(match decision {
                    Decision::Replace(next) => Executed::Replaced(next),
                    _ => Executed::Removed(current),
                });
            }
            // Lost a race: re-read and decide again (a client-supplied version will now conflict).
        }
        Err(StoreError::Unavailable(format!("order {id} is being changed concurrently; retry")))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client.describe_table().table_name(&self.table).send().await.map_err(|e| classify("DescribeTable", e))?;
        Ok(())
    }
}
