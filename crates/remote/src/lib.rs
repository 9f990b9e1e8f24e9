//! Remotes for Keel's OSTree-compatible store: pulling over HTTP(S) and from local
//! repositories, repository summaries, and ed25519 signatures in OSTree's formats.
//!
//! - [`config`]: `[remote "NAME"]` sections in the repository config (readable by `ostree`).
//! - [`keys`], [`sign`]: libsodium-format ed25519 keys; commit and summary signatures.
//! - [`summary`]: the `summary` / `summary.sig` files.
//! - [`freshness`]: how old a remote's summary is (a frozen mirror is reported).
//! - [`downgrade`]: whether a commit offered for a ref or a node is newer than the current one.
//! - [`fetch`]: the HTTP client (pool, timeouts, retries, bounded bodies).
//! - [`source`], [`pull`]: where objects come from, and the verified parallel pull.
//! - [`serve`]: a development static file server for a repository on loopback.
//! - [`cli`]: the `keel repo` subcommands for all of the above.

pub mod cli;
pub mod config;
pub mod downgrade;
mod error;
pub mod fetch;
pub mod freshness;
pub mod keys;
pub mod pull;
pub mod serve;
pub mod sign;
pub mod source;
pub mod summary;

pub use error::PullError;
