//! The projector: the read model as a sink of the change feed (`sink`), with the batch rule that sets aside what a
//! backend cannot apply, and its Lambda (`projector-lambda`) on the orders table's stream.

pub mod sink;

pub use sink::{ReadModelSink, project};
