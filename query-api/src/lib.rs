//! The query API: the item-sales and monthly reports, read from the aggregates the projector maintains, with
//! read-your-writes (`consistentWith`), the projection position and epoch of every answer (header and `ETag`),
//! answers kept per epoch, the projection's status, and its OpenAPI document and docs page. One `Router` (`app`)
//! for the local server and, unchanged, the Lambda (`query-api-lambda`).
//!
//! Ad-hoc SQL (`/queries`, from the `adhoc` crate) is mounted on the same Router by `app_with_queries`: Athena in
//! the Lambda, the embedded engine in the local runner.

pub mod dashboard;
pub mod error;
pub mod feed;
pub mod http;
pub mod reports;
pub mod settings;
mod state;
pub mod status;
pub mod wire;

pub use error::QueryError;
pub use feed::{FeedBacklog, FeedWatch};
pub use http::{app, app_watching, app_with_queries, openapi};
pub use settings::Settings;
