//! OSTree-compatible content store (see ARCHITECTURE.md).

pub mod cli;
