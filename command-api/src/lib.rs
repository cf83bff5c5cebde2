//! Order commands over HTTP. One axum `Router` (`app`) serves locally and, unchanged, on Lambda; it turns wire
//! requests into domain commands and runs them against an `OrderStore` (`write-store`).

pub mod error;
pub mod http;
pub mod openapi;

pub use error::ApiError;
pub use http::{app, app_with_origins};
