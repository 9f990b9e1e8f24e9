//! TLS for tests: a throwaway certificate authority made with `openssl`, a server certificate
//! it signs for 127.0.0.1, and [`TlsServer`], a static HTTPS server (Python's `http.server`
//! behind its `ssl` module) serving a directory with that certificate.

use crate::http::PyServer;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate for `127.0.0.1`/`localhost` signed by it.
pub struct Pki {
    /// The CA certificate (PEM): what a client must trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Makes a CA named `name` and a server certificate in `dir` (created if needed).
    pub fn new(dir: &Path, name: &str) -> Pki {
        fs::create_dir_all(dir).expect("create the PKI directory");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                &["req", "-x509", "-nodes", "-days", "2"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-subj", &subject],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                &["req", "-nodes"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
                &["-subj", "/CN=127.0.0.1"],
            ]
            .concat(),
        );
        fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

const SERVER: &str = r#"
import functools, http.server, ssl, sys
root, cert, key = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"Serving HTTPS on 127.0.0.1 port {srv.server_address[1]} (https)", flush=True)
srv.serve_forever()
"#;

/// A static HTTPS server on 127.0.0.1 serving `dir` with the certificate of a [`Pki`];
/// stopped on drop. A client that refuses the certificate only fails its own handshake.
pub struct TlsServer {
    /// Base URL (`https://127.0.0.1:PORT/`).
    pub url: String,
    server: PyServer,
}

impl TlsServer {
    /// Starts serving `dir` on a free port.
    pub fn start(dir: &Path, pki: &Pki) -> TlsServer {
        let mut cmd = Command::new("python3");
        cmd.args(["-u", "-c", SERVER])
            .arg(dir)
            .arg(&pki.cert)
            .arg(&pki.key);
        let server = PyServer::spawn(cmd);
        TlsServer {
            url: server.url.replacen("http://", "https://", 1),
            server,
        }
    }

    /// Paths of the GET requests served so far.
    pub fn get_paths(&self) -> Vec<String> {
        self.server.get_paths()
    }
}
