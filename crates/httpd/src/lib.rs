//! Keel's one way of serving HTTP (the graph and FleetLock servers): an HTTP/1.1 connection
//! layer in front of an axum [`Router`](axum::Router) that outlasts bad clients.
//!
//! - every connection has deadlines: the request head ([`Limits::header_timeout`]), the body
//!   ([`Limits::body_timeout`]), the wait for the next request on a kept-alive connection
//!   ([`Limits::idle_timeout`]) and writing the answer ([`Limits::send_timeout`]);
//! - at most [`Limits::max_connections`] are open, below the process's open-file limit; when
//!   the cap is reached, the connection that has waited longest without a complete request
//!   (idle, or dripping its head or body) is closed for the newcomer;
//! - every refusal, the connection layer's own included (400, 408, 413, 414, 431, 501), is
//!   the `{"kind": ..., "value": ...}` JSON of [`ErrorBody`].
//!
//! Modules: [`error`] (the body), [`options`] (limits, their CLI flags, the file limit),
//! [`head`] (reading and framing one request), [`conn`] (one connection), [`listener`] (accept
//! loop, cap, shutdown), [`stats`] (counters for `/metrics`).

pub mod conn;
pub mod error;
pub mod head;
pub mod listener;
pub mod options;
pub mod stats;

pub use error::{error_response, ErrorBody};
pub use listener::{run_blocking, serve, shutdown_signal, STOP_GRACE};
pub use options::{HttpArgs, Limits};
pub use stats::Stats;
