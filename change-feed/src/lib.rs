//! Where the read side's changes come from, and how they reach a consumer. Sources: the embedded store's change
//! log (`EmbeddedLog`), DynamoDB Streams records as Lambda delivers them (`lambda`) or as the poller reads them
//! (`poller`). Consumers are `Sink`s (the read model, the lake); `tail` is the one loop that follows a log into a
//! sink, and `lambda::handle` the one batch discipline of a stream consumer on Lambda.

pub mod lambda;
pub mod poller;
mod record;
mod sink;
mod tail;

pub use record::{Decoded, Undecodable};
pub use sink::{Consumed, Sink};
pub use tail::{EmbeddedLog, TailSettings, tail};
