//! A small etcd v3 client over the JSON gRPC gateway (`POST /v3/kv/range`, `/v3/kv/txn`):
//! keys and values are base64, 64-bit numbers are JSON strings, zero values are omitted.
//! Requests go to the current endpoint; when it cannot be reached (or answers 5xx) the next
//! endpoint is tried, and the one that answered becomes current.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keel_http::{Client, HttpOptions};
use serde::Deserialize;
use serde_json::{json, Value};

/// Failure talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint could be reached or all answered with server errors.
    #[error("no etcd endpoint answered ({endpoints}): {last}")]
    Unavailable { endpoints: String, last: String },
    /// etcd rejected the request or answered something unexpected.
    #[error("etcd {endpoint}{path}: {message}")]
    Protocol {
        endpoint: String,
        path: String,
        message: String,
    },
}

/// A key's value and its modification revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Client for a set of etcd endpoints (`http://host:port`).
pub struct Etcd {
    endpoints: Vec<String>,
    current: AtomicUsize,
    http: Client,
}

#[derive(Deserialize)]
struct RawKv {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    mod_revision: Option<String>,
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<RawKv>,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    succeeded: bool,
}

impl Etcd {
    /// A client for `endpoints` (comma-separated or a list; `http://` is added when missing).
    pub fn new(endpoints: &[String], timeout: Duration) -> anyhow::Result<Etcd> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = e.trim_end_matches('/');
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        anyhow::ensure!(
            !endpoints.is_empty(),
            "no etcd endpoint given (e.g. --etcd http://127.0.0.1:2379)"
        );
        let http = Client::new(&HttpOptions {
            response_header_timeout: Some(timeout),
            request_timeout: Some(timeout),
            ..Default::default()
        })?;
        Ok(Etcd {
            endpoints,
            current: AtomicUsize::new(0),
            http,
        })
    }

    /// POSTs a gateway request, failing over across endpoints.
    fn call(&self, path: &str, body: &Value) -> Result<Vec<u8>, EtcdError> {
        let body = serde_json::to_vec(body).expect("JSON value serializes");
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for step in 0..self.endpoints.len() {
            let i = (start + step) % self.endpoints.len();
            let endpoint = &self.endpoints[i];
            let url = format!("{endpoint}{path}");
            match self.http.post(&url, &[], &body) {
                Ok((200, answer)) => {
                    if i != start {
                        tracing::info!("etcd: switched to endpoint {endpoint}");
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Ok((status, answer)) if status >= 500 => {
                    last = format!(
                        "{endpoint}: HTTP {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
                Ok((status, answer)) => {
                    return Err(EtcdError::Protocol {
                        endpoint: endpoint.clone(),
                        path: path.into(),
                        message: format!("HTTP {status}: {}", String::from_utf8_lossy(&answer)),
                    })
                }
                Err(e) => last = e.to_string(),
            }
            tracing::warn!("etcd endpoint failed, trying the next one: {last}");
        }
        Err(EtcdError::Unavailable {
            endpoints: self.endpoints.join(","),
            last,
        })
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        answer: &[u8],
    ) -> Result<T, EtcdError> {
        serde_json::from_slice(answer).map_err(|e| EtcdError::Protocol {
            endpoint: self.endpoints[self.current.load(Ordering::Relaxed)].clone(),
            path: path.into(),
            message: format!(
                "unexpected answer ({e}): {}",
                String::from_utf8_lossy(answer)
            ),
        })
    }

    fn decode(&self, kv: RawKv) -> Result<(Vec<u8>, Versioned), EtcdError> {
        let bad = |what: &str| EtcdError::Protocol {
            endpoint: self.endpoints[self.current.load(Ordering::Relaxed)].clone(),
            path: "/v3/kv/range".into(),
            message: format!("bad {what} in range answer"),
        };
        let key = B64.decode(kv.key).map_err(|_| bad("key"))?;
        let value = B64.decode(kv.value).map_err(|_| bad("value"))?;
        let mod_revision = kv
            .mod_revision
            .as_deref()
            .unwrap_or("0")
            .parse()
            .map_err(|_| bad("mod_revision"))?;
        Ok((
            key,
            Versioned {
                value,
                mod_revision,
            },
        ))
    }

    /// The value of `key`, if present (linearizable read).
    pub fn get(&self, key: &[u8]) -> Result<Option<Versioned>, EtcdError> {
        let path = "/v3/kv/range";
        let answer = self.call(path, &json!({"key": B64.encode(key)}))?;
        let range: RangeResponse = self.parse(path, &answer)?;
        match range.kvs.into_iter().next() {
            Some(kv) => Ok(Some(self.decode(kv)?.1)),
            None => Ok(None),
        }
    }

    /// Every key starting with `prefix`, with its value.
    pub fn get_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Versioned)>, EtcdError> {
        let path = "/v3/kv/range";
        let mut end = prefix.to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let answer = self.call(
            path,
            &json!({"key": B64.encode(prefix), "range_end": B64.encode(end)}),
        )?;
        let range: RangeResponse = self.parse(path, &answer)?;
        range.kvs.into_iter().map(|kv| self.decode(kv)).collect()
    }

    /// Writes `value` to `key` only if the key's mod_revision is still `mod_revision` (0: the
    /// key must not exist). Returns whether the write happened.
    pub fn compare_and_put(
        &self,
        key: &[u8],
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, EtcdError> {
        let value = B64.encode(value);
        self.if_unchanged(
            key,
            mod_revision,
            |key| json!({"request_put": {"key": key, "value": value}}),
        )
    }

    /// Deletes `key` only if its mod_revision is still `mod_revision`. Returns whether it
    /// was deleted.
    pub fn compare_and_delete(&self, key: &[u8], mod_revision: i64) -> Result<bool, EtcdError> {
        self.if_unchanged(
            key,
            mod_revision,
            |key| json!({"request_delete_range": {"key": key}}),
        )
    }

    /// Runs the operation `op` builds for the base64 key in a transaction that requires the
    /// key's mod_revision to be `mod_revision`; returns whether it ran.
    fn if_unchanged(
        &self,
        key: &[u8],
        mod_revision: i64,
        op: impl FnOnce(&str) -> Value,
    ) -> Result<bool, EtcdError> {
        let path = "/v3/kv/txn";
        let key = B64.encode(key);
        let body = json!({
            "compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision.to_string()}],
            "success": [op(&key)],
        });
        let answer = self.call(path, &body)?;
        let txn: TxnResponse = self.parse(path, &answer)?;
        Ok(txn.succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_list_table() {
        for (given, want) in [
            (vec!["127.0.0.1:2379"], vec!["http://127.0.0.1:2379"]),
            (
                vec!["http://a:1, http://b:2/"],
                vec!["http://a:1", "http://b:2"],
            ),
            (
                vec!["https://a:1", "b:2"],
                vec!["https://a:1", "http://b:2"],
            ),
        ] {
            let given: Vec<String> = given.into_iter().map(String::from).collect();
            let etcd = Etcd::new(&given, Duration::from_secs(1)).unwrap();
            assert_eq!(etcd.endpoints, want);
        }
        assert!(Etcd::new(&[" , ".into()], Duration::from_secs(1)).is_err());
    }
}
