//! The query API: the item-sales and monthly reports, read from the aggregates the projector maintains, with
//! read-your-writes (`consistentWith`), the projection position of every answer (header and `ETag`), and the
//! projection's status. One `Router` (`app`) for the local server and Lambda alike.
//!
//! Not built yet: OpenAPI at `/openapi.json` and `/docs`, the reader role, the Lambda binary (issue 4) and ad-hoc
//! SQL (issue 5).

pub mod error;
pub mod http;

pub use error::QueryError;
pub use http::{Settings, app};
