//! The shared client over real TLS (a CA made with openssl, a Python HTTPS server on
//! 127.0.0.1): which CAs it trusts for each [`CaRoots`] choice and extra bundles, and the
//! error when the server's certificate chains to none of them.

use keel_http::{CaRoots, Client, HttpError, HttpOptions};
use keel_testsupport::tls::{Pki, TlsServer};
use std::fs;

fn client(roots: CaRoots, extra: Vec<Vec<u8>>) -> Client {
    Client::new(&HttpOptions {
        roots,
        extra_ca_pem: extra,
        ..HttpOptions::default()
    })
    .unwrap()
}

#[test]
fn trusts_the_store_it_is_given_and_names_it_when_the_certificate_is_refused() {
    if !keel_testsupport::require("tls_trust", &["python3", "openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "Keel test CA");
    let other = Pki::new(&dir.path().join("other"), "Another CA");
    let site = dir.path().join("site");
    fs::create_dir(&site).unwrap();
    fs::write(site.join("hello"), "hello over TLS").unwrap();
    let server = TlsServer::start(&site, &pki);
    let url = format!("{}hello", server.url);
    let ca = fs::read(&pki.ca).unwrap();

    // A node store holding the CA among others (as update-ca-certificates writes it).
    let store = dir.path().join("etc/ssl/certs/ca-certificates.crt");
    fs::create_dir_all(store.parent().unwrap()).unwrap();
    let mut bundle = fs::read(&other.ca).unwrap();
    bundle.extend_from_slice(&ca);
    fs::write(&store, &bundle).unwrap();

    for (name, c) in [
        (
            "node store",
            client(CaRoots::SystemAt(store.clone()), vec![]),
        ),
        ("tls-ca-path", client(CaRoots::Only(pki.ca.clone()), vec![])),
        ("extra bundle", client(CaRoots::System, vec![ca.clone()])),
    ] {
        assert_eq!(c.get(&url, &[]).unwrap(), b"hello over TLS", "{name}");
    }

    let wrong = dir.path().join("wrong.crt");
    fs::copy(&other.ca, &wrong).unwrap();
    for (roots, names) in [
        (CaRoots::System, "/etc/ssl/certs/ca-certificates.crt"),
        (CaRoots::SystemAt(wrong.clone()), "wrong.crt (1 CAs)"),
        (CaRoots::Only(wrong.clone()), "tls-ca-path"),
    ] {
        let err = client(roots.clone(), vec![]).get(&url, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, HttpError::Certificate { .. }),
            "{roots:?}: {msg}"
        );
        assert!(
            err.is_retryable(),
            "callers waiting for a network keep waiting: {msg}"
        );
        for want in [
            url.as_str(),
            "TLS certificate refused (invalid peer certificate: UnknownIssuer)",
            "not signed by a CA this client trusts",
            names,
            "update-ca-certificates",
        ] {
            assert!(msg.contains(want), "{roots:?}: missing {want:?} in {msg}");
        }
    }
    assert_eq!(
        server.get_paths(),
        vec!["hello"; 3],
        "refused handshakes must not reach the server's handler"
    );
}

#[test]
fn a_refused_connection_is_not_a_certificate_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/x", listener.local_addr().unwrap());
    drop(listener);
    let err = client(CaRoots::System, vec![]).get(&url, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, HttpError::Transport { .. }) && !msg.contains("not signed by a CA"),
        "{msg}"
    );
}
