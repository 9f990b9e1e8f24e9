//! The FleetLock protocol (as Zincati and Fedora CoreOS's airlock speak it): a node takes a
//! reboot slot of its group before finalizing an update and releases it once up and healthy.

use serde::{Deserialize, Serialize};

/// Header every FleetLock request must carry with value `true`.
pub const HEADER: &str = "fleet-lock-protocol";
/// Path of the lock request.
pub const PRE_REBOOT: &str = "/v1/pre-reboot";
/// Path of the unlock request.
pub const STEADY_STATE: &str = "/v1/steady-state";

/// Request body: `{"client_params": {"id": "...", "group": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client_params: ClientParams,
}

/// Who asks: node id (case-sensitive, unique per node) and its reboot group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientParams {
    pub id: String,
    pub group: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_is_zincatis() {
        let r = Request {
            client_params: ClientParams {
                id: "e0f3745b108f471cbd4883c6fbed8cdd".into(),
                group: "workers".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"client_params":{"id":"e0f3745b108f471cbd4883c6fbed8cdd","group":"workers"}}"#
        );
    }
}
