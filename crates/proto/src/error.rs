//! The error body every Keel server answers with.

use serde::{Deserialize, Serialize};

/// Error body: `{"kind": "<bounded id>", "value": "<human text>"}`. `kind` is a short,
/// bounded identifier (usable as a metric label); `value` says what went wrong for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: String,
    pub value: String,
}

impl ErrorBody {
    /// The serialized body.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of two strings always serializes; the fallback keeps the shape regardless.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"kind":"internal","value":""}"#.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_exactly_two_fields() {
        let e = ErrorBody {
            kind: "no_slot".into(),
            value: "all 2 slots of group \"default\" are taken".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(serde_json::from_value::<ErrorBody>(v).unwrap(), e);
    }
}
