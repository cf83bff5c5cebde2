//! Order commands over HTTP. One axum `Router` (`app`) serves locally and, unchanged, on Lambda; it turns wire
//! requests into domain commands and runs them against an `OrderStore` (DynamoDB or the embedded SQLite store).

pub mod config;
pub mod error;
pub mod http;
pub mod openapi;
pub mod store;

pub use error::ApiError;
pub use http::app;
pub use store::{OrderStore, StoreError};
