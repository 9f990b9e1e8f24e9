//! Keel's reboot coordination: a FleetLock server whose per-group counting semaphores live in
//! etcd v3 (compare-and-swap on the key's mod_revision, failover across endpoints), with slot
//! counts changeable at run time and locks that expire when a node never comes back. The wire
//! format is `keel_proto::fleetlock`; the node's client is `keel_agent::fleetlock`.
//!
//! - [`semaphore`]: stored document and state transitions; [`store`]: CAS operations on etcd;
//! - [`etcd`]: etcd JSON gateway client; [`limits`]: slot counts and TTL;
//! - [`server`], [`metrics`], [`cli`]: the service.

pub mod cli;
pub mod etcd;
pub mod limits;
pub mod metrics;
pub mod semaphore;
pub mod server;
pub mod store;
