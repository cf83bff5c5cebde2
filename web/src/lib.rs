//! What both APIs share at the HTTP edge: serving a `Router` locally with timeouts on every connection and a
//! bounded shutdown (`serve`); the layers every request passes on any host, Lambda included (`edge`: tracing, a
//! request time limit, a body limit that answers 413 before reading a body declared too large); the error envelope
//! (`envelope`); CORS for the dashboard (`cors`); static files sent gzipped (`assets`) and what a request accepts
//! (`negotiate`); the OpenAPI documents' shared parts (`openapi`) and `/docs` (`docs`); and what every binary sets
//! up the same way: logging (`telemetry`) and settings (`settings`).

pub mod assets;
pub mod cors;
pub mod docs;
pub mod edge;
pub mod envelope;
pub mod negotiate;
pub mod openapi;
pub mod serve;
pub mod settings;
pub mod telemetry;

pub use edge::{EdgeSettings, edge};
pub use serve::{ServeSettings, serve};
