//! The node's identity towards the graph server and FleetLock.
//!
//! `node_uuid` is an app-specific machine id, derived exactly as systemd's
//! `sd_id128_get_machine_app_specific()` (and `systemd-id128 machine-id --app-specific=APP`):
//! the 16 bytes of `/etc/machine-id` (32 hex digits) are the HMAC-SHA256 key, the 16 bytes of
//! [`APP_ID`] the message; the first 16 bytes of the MAC, with the UUID version set to 4
//! (`b[6] = b[6] & 0x0f | 0x40`) and the variant to RFC 4122 (`b[8] = b[8] & 0x3f | 0x80`),
//! printed as 32 lowercase hex digits. The machine id itself never leaves the node, and other
//! tools can compute the same id from it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

/// Keel's update agent application id (a fixed random 128-bit value).
pub const APP_ID: &str = "5b1f0c8e2d7a4e6f9c3b8a1d4e7f2a90";

fn parse_id128(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The app-specific id of `machine_id` for `app_id` (both 32 hex digits).
pub fn app_specific(machine_id: &str, app_id: &str) -> Option<String> {
    let key = parse_id128(machine_id)?;
    let app = parse_id128(app_id)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(&app);
    let mut b: [u8; 16] = mac.finalize().into_bytes()[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The node id for `root`: `override_id` when set (checked), else derived from
/// `<root>/etc/machine-id`.
pub fn node_uuid(root: &Path, override_id: Option<&str>) -> Result<String, String> {
    if let Some(id) = override_id {
        return parse_id128(id)
            .filter(|_| {
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .map(|_| id.to_string())
            .ok_or_else(|| format!("identity.node_uuid `{id}` is not 32 lowercase hex digits"));
    }
    let p = root.join("etc/machine-id");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("{}: {e} (the node id is derived from it)", p.display()))?;
    app_specific(&text, APP_ID).ok_or_else(|| {
        format!(
            "{}: `{}` is not a machine id (32 hex digits); systemd-machine-id-setup writes one",
            p.display(),
            text.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_specific_ids() {
        // Zincati's documented app id and systemd's derivation.
        let zincati = "de35106b6ec24688b63afddaa156679b";
        let cases = [
            ("00000000000000000000000000000000", APP_ID),
            ("3d1219c7c4c5404aaa1f6d2a48adfda4", zincati),
            ("3d1219c7c4c5404aaa1f6d2a48adfda4\n", APP_ID),
        ];
        for (machine, app) in cases {
            let id = app_specific(machine, app).unwrap();
            assert_eq!(id.len(), 32);
            assert_eq!(&id[12..13], "4", "version 4: {id}");
            assert!("89ab".contains(&id[16..17]), "RFC 4122 variant: {id}");
            // Stable and specific to the app.
            assert_eq!(app_specific(machine, app), Some(id.clone()));
            assert_ne!(
                app_specific(machine, "0123456789abcdef0123456789abcdef"),
                Some(id)
            );
        }
        for bad in [
            "",
            "xyz",
            "3d1219c7c4c5404aaa1f6d2a48adfda",
            "3d1219c7c4c5404aaa1f6d2a48adfdag",
        ] {
            assert_eq!(app_specific(bad, APP_ID), None, "{bad:?}");
        }
    }

    /// systemd itself is the oracle: `systemd-id128 machine-id --app-specific` on this host.
    #[test]
    fn matches_systemd_id128() {
        let machine = match std::fs::read_to_string("/etc/machine-id") {
            Ok(m) if m.trim().len() == 32 => m,
            _ => return keel_testsupport::skip("matches_systemd_id128: no /etc/machine-id"),
        };
        if !keel_utils::cmd::have("systemd-id128") {
            return keel_testsupport::skip(
                "matches_systemd_id128: systemd-id128 missing (apt-get install systemd)",
            );
        }
        let mut c = std::process::Command::new("systemd-id128");
        c.args(["machine-id", "--app-specific", APP_ID]);
        let out = keel_utils::cmd::run_stdout(&mut c).unwrap();
        assert_eq!(out.trim(), app_specific(&machine, APP_ID).unwrap());
    }

    #[test]
    fn node_uuid_from_root_or_override() {
        let t = tempfile::tempdir().unwrap();
        assert!(node_uuid(t.path(), None)
            .unwrap_err()
            .contains("etc/machine-id"));
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/machine-id"), "uninitialized\n").unwrap();
        assert!(node_uuid(t.path(), None)
            .unwrap_err()
            .contains("uninitialized"));
        std::fs::write(
            t.path().join("etc/machine-id"),
            "3d1219c7c4c5404aaa1f6d2a48adfda4\n",
        )
        .unwrap();
        assert_eq!(
            node_uuid(t.path(), None).unwrap(),
            app_specific("3d1219c7c4c5404aaa1f6d2a48adfda4", APP_ID).unwrap()
        );
        let o = "0123456789abcdef0123456789abcdef";
        assert_eq!(node_uuid(t.path(), Some(o)).unwrap(), o);
        assert!(node_uuid(t.path(), Some("0123456789ABCDEF0123456789ABCDEF")).is_err());
    }
}
