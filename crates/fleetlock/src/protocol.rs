//! FleetLock wire format shared by the server and the client.

use serde::{Deserialize, Serialize};

/// Error body: `{"kind": "<bounded id>", "value": "<human text>"}` (the one of every Keel server).
pub use keel_httpd::ErrorBody;

/// Header every FleetLock request must carry with value `true`.
pub const HEADER: &str = "fleet-lock-protocol";
/// Path of the lock request.
pub const PRE_REBOOT: &str = "/v1/pre-reboot";
/// Path of the unlock request.
pub const STEADY_STATE: &str = "/v1/steady-state";

/// Request body: `{"client_params": {"id": "...", "group": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub client_params: ClientParams,
}

/// Who asks: node id (case-sensitive, unique per node) and its reboot group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientParams {
    pub id: String,
    pub group: String,
}
