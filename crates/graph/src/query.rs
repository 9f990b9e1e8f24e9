//! Parsing of `GET /v1/graph` query strings as Zincati sends them, and the client's wariness.
//!
//! Wariness (0.0 eager … 1.0 cautious) is `rollout_wariness` when given; otherwise it is derived
//! from `node_uuid` with a specified, stable hash: the first 8 bytes of SHA-256(node_uuid) read
//! as a big-endian u64, divided by 2^64 (so it lies in [0, 1) and never changes between server
//! builds or versions). Without either parameter the client is treated as fully cautious (1.0):
//! it sees completed rollouts only.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Longest accepted value of any parameter we read.
const MAX_LEN: usize = 128;

/// A validated graph query.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphQuery {
    pub basearch: String,
    pub stream: String,
    pub wariness: f64,
}

/// An error answered as `{"kind": ..., "value": ...}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// Bounded-cardinality identifier (usable as a metric label by clients).
    pub kind: &'static str,
    /// Human-readable detail.
    pub value: String,
}

impl ApiError {
    pub fn new(status: u16, kind: &'static str, value: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            value: value.into(),
        }
    }

    fn bad(kind: &'static str, value: String) -> ApiError {
        ApiError::new(400, kind, value)
    }
}

/// Wariness of a node from its UUID (see the module documentation for the exact hash).
pub fn wariness_of_uuid(node_uuid: &str) -> f64 {
    let digest = Sha256::digest(node_uuid.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0
}

fn valid_token(value: &str, extra: &[char]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Parses and validates a raw query string (without the `?`).
pub fn parse(raw: &str) -> Result<GraphQuery, ApiError> {
    let mut basearch = None;
    let mut stream = None;
    let mut explicit = None;
    let mut uuid = None;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let slot = match key.as_ref() {
            "basearch" => &mut basearch,
            "stream" => &mut stream,
            "rollout_wariness" => &mut explicit,
            "node_uuid" => &mut uuid,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::bad(
                "invalid_parameter",
                format!("parameter {key} given more than once"),
            ));
        }
    }
    let basearch = basearch
        .ok_or_else(|| ApiError::bad("missing_parameter", "basearch is required".into()))?;
    if !valid_token(&basearch, &['_']) {
        return Err(ApiError::bad(
            "invalid_parameter",
            format!("basearch {basearch:?} is not an architecture name"),
        ));
    }
    let stream =
        stream.ok_or_else(|| ApiError::bad("missing_parameter", "stream is required".into()))?;
    if !valid_token(&stream, &['-', '_', '.']) {
        return Err(ApiError::bad(
            "invalid_parameter",
            format!("stream {stream:?} is not a stream name"),
        ));
    }
    let wariness = match (explicit, uuid) {
        (Some(w), _) => match w.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => v,
            _ => {
                return Err(ApiError::bad(
                    "invalid_parameter",
                    format!("rollout_wariness {w:?} is not a number between 0.0 and 1.0"),
                ))
            }
        },
        (None, Some(u)) if valid_token(&u, &['-']) => wariness_of_uuid(&u),
        (None, Some(u)) => {
            return Err(ApiError::bad(
                "invalid_parameter",
                format!("node_uuid {u:?} is not a hex identifier"),
            ));
        }
        (None, None) => 1.0,
    };
    Ok(GraphQuery {
        basearch,
        stream,
        wariness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_hash_is_specified_and_stable() {
        // SHA-256("") = e3b0c442 98fc1c14 ...; 0xe3b0c44298fc1c14 / 2^64.
        assert!(
            (wariness_of_uuid("") - 0xe3b0c44298fc1c14u64 as f64 / 2f64.powi(64)).abs() < 1e-15
        );
        let w = wariness_of_uuid("e0fd4f3e6e8b4e2d9c1c1d0a3b2f4e5d");
        assert!((0.0..1.0).contains(&w));
        assert_eq!(w, wariness_of_uuid("e0fd4f3e6e8b4e2d9c1c1d0a3b2f4e5d"));
    }

    #[test]
    fn parse_table() {
        let ok = |a: &str, s: &str, w: f64| {
            Ok(GraphQuery {
                basearch: a.into(),
                stream: s.into(),
                wariness: w,
            })
        };
        let bad = |kind| Err(kind);
        let uuid = "0123456789abcdef0123456789abcdef";
        let cases: Vec<(String, Result<GraphQuery, &str>)> = vec![
            ("basearch=x86_64&stream=stable".into(), ok("x86_64", "stable", 1.0)),
            ("basearch=x86_64&stream=stable&rollout_wariness=0.250000".into(), ok("x86_64", "stable", 0.25)),
            ("basearch=aarch64&stream=next&rollout_wariness=0".into(), ok("aarch64", "next", 0.0)),
            (format!("basearch=x86_64&stream=stable&node_uuid={uuid}"), ok("x86_64", "stable", wariness_of_uuid(uuid))),
            (
                format!("basearch=x86_64&stream=stable&node_uuid={uuid}&rollout_wariness=1.0&os_version=44.1&group=default&platform=qemu&os_checksum=abc"),
                ok("x86_64", "stable", 1.0),
            ),
            ("stream=stable".into(), bad("missing_parameter")),
            ("basearch=x86_64".into(), bad("missing_parameter")),
            ("".into(), bad("missing_parameter")),
            ("basearch=&stream=stable".into(), bad("invalid_parameter")),
            ("basearch=x86%2F64&stream=stable".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=st%20able".into(), bad("invalid_parameter")),
            ("basearch=x86_64&basearch=aarch64&stream=stable".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=stable&rollout_wariness=1.5".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=stable&rollout_wariness=-0.1".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=stable&rollout_wariness=NaN".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=stable&rollout_wariness=high".into(), bad("invalid_parameter")),
            ("basearch=x86_64&stream=stable&node_uuid=a%20b".into(), bad("invalid_parameter")),
            (format!("basearch={}&stream=stable", "a".repeat(200)), bad("invalid_parameter")),
        ];
        for (raw, want) in cases {
            let got = parse(&raw).map_err(|e| {
                assert_eq!(e.status, 400, "{raw}");
                e.kind
            });
            assert_eq!(got, want, "{raw}");
        }
    }
}
