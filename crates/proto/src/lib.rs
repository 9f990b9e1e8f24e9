//! Keel's contracts: what crosses a process or crate boundary is declared once, here, and
//! every side uses these types and names instead of its own copy.
//!
//! - [`error`]: the `{kind, value}` error body of every Keel server.
//! - [`fleetlock`]: the FleetLock protocol (paths, header, request body).
//! - [`cincinnati`]: the update graph on the wire (nodes, edges, metadata keys), as Fedora
//!   CoreOS's graph server and Zincati speak it.
//! - [`disk`]: the disk layout every Keel image has (the image builder writes it, first-boot
//!   growfs and the initramfs read it).
//! - [`node`]: a node's paths and kernel argument names, shared by the programs that write and
//!   read them.
//! - [`agent`]: the update agent's published state; [`staged`]: the staged-deployment record;
//!   [`health`]: the health checks' results and failure record; [`freshness`]: how old a
//!   remote's summary was.
//! - [`output`]: the schema version every `--json` output carries.
//! - [`docs`]: the documentation site's addresses that errors and help texts point to.
//!
//! This crate is the ground floor: it depends on serde only, so a node-side client can use a
//! protocol without linking the server that speaks it.

pub mod agent;
pub mod cincinnati;
pub mod disk;
pub mod docs;
pub mod error;
pub mod fleetlock;
pub mod freshness;
pub mod health;
pub mod node;
pub mod output;
pub mod staged;

pub use error::ErrorBody;
