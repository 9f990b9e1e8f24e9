//! Which certificate authorities a [`super::Client`] trusts: the node's trust store (Debian's
//! `ca-certificates` bundle, which `update-ca-certificates` extends with the node's own CAs),
//! the same store of another root (a sysroot's deployment), or one bundle in its place (OSTree's
//! `tls-ca-path`); plus any extra PEM bundles a caller adds. TLS failures caused by an untrusted
//! certificate are explained with the store that was used.

use super::HttpError;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};

/// Where Debian keeps the system's trusted CA bundle.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CA bundle of the node whose `/etc` is `etc`.
pub fn node_ca_bundle(etc: &Path) -> PathBuf {
    etc.join("ssl/certs/ca-certificates.crt")
}

/// The certificate authorities a client trusts, besides [`super::HttpOptions::extra_ca_pem`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CaRoots {
    /// The running node's trust store, [`SYSTEM_CA_BUNDLE`]. A missing bundle trusts nothing;
    /// broken entries are skipped.
    #[default]
    System,
    /// The trust store at this path, under the same rules as [`CaRoots::System`]: the node's
    /// store as seen from outside it (a sysroot's merge deployment, `…/etc/ssl/certs/…`).
    SystemAt(PathBuf),
    /// Only this PEM bundle, in place of the node's store (OSTree's `tls-ca-path`); it must be
    /// readable and hold at least one valid certificate.
    Only(PathBuf),
}

/// A loaded root store and a description of where it came from, for error messages.
pub(super) struct Trust {
    pub(super) store: RootCertStore,
    pub(super) from: String,
}

impl Trust {
    /// Loads `roots` and every bundle of `extra`.
    pub(super) fn load(roots: &CaRoots, extra: &[Vec<u8>]) -> Result<Trust, HttpError> {
        let mut store = RootCertStore::empty();
        let from = match roots {
            CaRoots::System => lenient(&mut store, Path::new(SYSTEM_CA_BUNDLE)),
            CaRoots::SystemAt(path) => lenient(&mut store, path),
            CaRoots::Only(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    HttpError::BadCa(format!(
                        "{}: {e} (tls-ca-path must name a readable PEM bundle)",
                        path.display()
                    ))
                })?;
                let n = add_pem(&mut store, &pem, true)
                    .map_err(|e| HttpError::BadCa(format!("{}: {e}", path.display())))?;
                format!("only {} ({n} CAs, tls-ca-path)", path.display())
            }
        };
        for pem in extra {
            add_pem(&mut store, pem, true).map_err(HttpError::BadCa)?;
        }
        let from = match extra.len() {
            0 => from,
            n => format!("{from} and {n} extra CA bundle(s)"),
        };
        Ok(Trust { store, from })
    }
}

/// Adds the node store at `path`; a missing or unreadable file adds nothing.
fn lenient(store: &mut RootCertStore, path: &Path) -> String {
    match std::fs::read(path) {
        Ok(pem) => {
            let n = add_pem(store, &pem, false).unwrap_or(0);
            format!("{} ({n} CAs)", path.display())
        }
        Err(e) => format!("{} (not read: {e})", path.display()),
    }
}

/// Adds every certificate of a PEM bundle and returns how many were added. A `strict` bundle
/// (one the user named) must hold at least one certificate and no broken entry; broken
/// entries of the node's store are skipped.
fn add_pem(store: &mut RootCertStore, pem: &[u8], strict: bool) -> Result<usize, String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        match cert
            .map_err(|e| e.to_string())
            .and_then(|c| store.add(c).map_err(|e| e.to_string()))
        {
            Ok(()) => added += 1,
            Err(e) if strict => return Err(e),
            Err(_) => {}
        }
    }
    if strict && added == 0 {
        return Err("no PEM certificate found".into());
    }
    Ok(added)
}

/// The reason a server's certificate was refused, if that is what `e` (a transport failure)
/// is.
pub(super) fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(e @ rustls::Error::InvalidCertificate(_)) = tls {
            return Some(e.to_string());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_node_store_trusts_nothing_but_a_missing_tls_ca_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.crt");
        let t = Trust::load(&CaRoots::SystemAt(gone.clone()), &[]).unwrap();
        assert!(t.store.is_empty());
        assert!(t.from.contains("gone.crt (not read"), "{}", t.from);
        let err = Trust::load(&CaRoots::Only(gone), &[]).err().unwrap();
        assert!(err.to_string().contains("gone.crt"), "{err}");
        std::fs::write(dir.path().join("junk.crt"), "junk").unwrap();
        let junk = Trust::load(&CaRoots::SystemAt(dir.path().join("junk.crt")), &[]).unwrap();
        assert!(junk.store.is_empty());
        let err = Trust::load(&CaRoots::Only(dir.path().join("junk.crt")), &[])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("junk.crt: no PEM certificate found"),
            "{err}"
        );
    }

    #[test]
    fn node_bundle_path() {
        assert_eq!(
            node_ca_bundle(Path::new("/sysroot/ostree/deploy/keel/deploy/c.0/etc")),
            Path::new("/sysroot/ostree/deploy/keel/deploy/c.0/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(
            node_ca_bundle(Path::new("/etc")),
            Path::new(SYSTEM_CA_BUNDLE)
        );
    }
}
