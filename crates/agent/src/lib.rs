//! Keel's update agent (`keel agent`, `keel update check|now`), modelled on Zincati: it polls
//! the update graph (`keel graph serve`, Cincinnati JSON), picks the newest release reachable
//! from the booted one that never failed to boot, stages it with finalization locked, and
//! finalizes and reboots when its strategy allows (weekly windows, a FleetLock slot, or both)
//! and no interactive session is open; after boot it reports steady state (releasing the slot).
//!
//! - [`config`]: TOML drop-ins; [`window`]: maintenance windows; [`identity`]: node id;
//! - [`graph`]: graph request and target choice; [`strategy`]: finalization decisions;
//! - [`fleetlock`]: the FleetLock client (protocol in `keel_proto::fleetlock`);
//! - [`agent`]: the cycle; [`sessions`], [`motd`], [`state`], [`metrics`]: what it reads and
//!   publishes; [`cli`]: the commands. Documentation: `docs/src/updates/agent.md`.

pub mod agent;
pub mod cli;
pub mod config;
pub mod fleetlock;
pub mod graph;
pub mod identity;
pub mod metrics;
pub mod motd;
pub mod sessions;
pub mod state;
pub mod strategy;
pub mod window;
