//! The projector: turns the write model's changes (DynamoDB Streams, or the embedded change log) into the
//! relational read model and the analytics lake.
//!
//! Not built yet (issue 3). The input it will consume already exists: `domain::OrderChange`, produced by the
//! embedded store's change log (`command_api::store::embedded`) and, in AWS, by the orders table's stream in the
//! image format of `domain::image`. Nothing here claims to project anything until then.
