//! Keel's update graph server: joins a Fedora CoreOS release index and updates metadata into a
//! Cincinnati graph per (stream, architecture) and serves it to update agents, hiding rollout
//! edges from nodes whose wariness is above a rollout's current level.
//!
//! - [`metadata`]: the input formats; [`graph`]: edge rules and per-client filtering;
//! - [`query`]: request parsing and the stable wariness hash;
//! - [`config`], [`load`], [`server`], [`metrics`]: the service around it.

pub mod cli;
pub mod config;
pub mod graph;
pub mod load;
pub mod metadata;
pub mod metrics;
pub mod query;
pub mod server;
