//! What both APIs share at the HTTP edge: serving a `Router` locally with timeouts on every connection and a
//! bounded shutdown (`serve`), and the layers every request passes on any host, Lambda included (`edge`): tracing,
//! a request time limit, and a body limit that answers 413 before reading a body declared too large.

pub mod edge;
pub mod envelope;
pub mod serve;

pub use edge::{EdgeSettings, edge};
pub use serve::{ServeSettings, serve};
pub mod openapi;
