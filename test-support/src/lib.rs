//! What tests of several crates share, and nothing else uses: a local Lambda Runtime API that runs a Lambda binary
//! on events (`lambda`), a TCP proxy that cuts connections or goes silent (`proxy`), moto (`moto`), and fresh
//! read-model databases with the recomputation projections are compared with (`databases`).

pub mod databases;
pub mod lambda;
pub mod moto;
pub mod proxy;

pub use lambda::{event, run};
pub use proxy::FaultProxy;
