//! The query API: reports read from the read model, and ad-hoc SQL over the analytics lake.
//!
//! Not built yet (issues 4 and 5); `cargo run` starts only the command API until then and says so.
