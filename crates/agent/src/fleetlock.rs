//! FleetLock client for the node agent: `pre_reboot` before finalizing an update (takes a slot
//! of the node's group), `steady_state` once the node is up and healthy (releases it).

use std::time::Duration;

use keel_http::{Client, HttpError, HttpOptions};

use keel_proto::fleetlock::{ClientParams, Request, HEADER, PRE_REBOOT, STEADY_STATE};
use keel_proto::ErrorBody;

/// Why a FleetLock request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum FleetLockError {
    /// The server answered with an error (`kind` is bounded, usable as a metric label).
    #[error("FleetLock server refused ({status} {kind}): {value}")]
    Refused {
        status: u16,
        kind: String,
        value: String,
    },
    /// The server could not be reached.
    #[error(transparent)]
    Transport(#[from] HttpError),
}

impl FleetLockError {
    /// The error kind: the server's, or `transport` when it could not be reached.
    pub fn kind(&self) -> &str {
        match self {
            FleetLockError::Refused { kind, .. } => kind,
            FleetLockError::Transport(_) => "transport",
        }
    }
}

/// A node's FleetLock identity and server.
pub struct FleetLockClient {
    base_url: String,
    body: Vec<u8>,
    http: Client,
}

impl FleetLockClient {
    /// `base_url` like `http://fleetlock.example:8080` (a trailing `/` is fine).
    pub fn new(base_url: &str, id: &str, group: &str) -> Result<FleetLockClient, HttpError> {
        let body = serde_json::to_vec(&Request {
            client_params: ClientParams {
                id: id.into(),
                group: group.into(),
            },
        })
        .expect("request serializes");
        Ok(FleetLockClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            body,
            http: Client::new(&HttpOptions {
                response_header_timeout: Some(Duration::from_secs(60)),
                request_timeout: Some(Duration::from_secs(120)),
                user_agent: Some(concat!("keel-fleetlock/", env!("CARGO_PKG_VERSION")).into()),
                ..Default::default()
            })?,
        })
    }

    fn call(&self, path: &str) -> Result<(), FleetLockError> {
        let headers = [
            (HEADER.to_string(), "true".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        let (status, body) =
            self.http
                .post(&format!("{}{path}", self.base_url), &headers, &self.body)?;
        if status == 200 {
            return Ok(());
        }
        let (kind, value) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.kind, e.value),
            Err(_) => (
                format!("generic_http_{status}"),
                String::from_utf8_lossy(&body).into_owned(),
            ),
        };
        Err(FleetLockError::Refused {
            status,
            kind,
            value,
        })
    }

    /// Asks for a reboot slot (recursive: succeeds again while the slot is held).
    pub fn pre_reboot(&self) -> Result<(), FleetLockError> {
        self.call(PRE_REBOOT)
    }

    /// Releases the slot if held (succeeds when none is held).
    pub fn steady_state(&self) -> Result<(), FleetLockError> {
        self.call(STEADY_STATE)
    }
}
