//! Starting a project: the questions `bulletin init` asks (the example project itself is
//! written by `cmd/init.rs`).

pub(crate) mod questions;
