//! ed25519 keys in OSTree's (libsodium's) text format.
//!
//! A secret key is the 64 bytes `seed ‖ public key`, a public key is 32 bytes; both are written
//! as standard base64, one key per line. Key files may hold several keys (one per line); empty
//! lines and lines starting with `#` are ignored. Secret key files are created with mode 0600.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::{Path, PathBuf};

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A line is not a valid key.
    #[error("{}: line {line}: {reason}", path.display())]
    Parse {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no key at all.
    #[error("{}: no key found (expected one base64 key per line; make a pair with `keel repo keygen OUT`)", path.display())]
    Empty {
        /// The key file.
        path: PathBuf,
    },
}

/// Make a new random key pair.
pub fn generate() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The libsodium form of a secret key: base64 of `seed ‖ public key`.
pub fn secret_to_base64(key: &SigningKey) -> String {
    STANDARD.encode(key.to_keypair_bytes())
}

/// The base64 form of a public key.
pub fn public_to_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Parse a libsodium secret key (64 bytes, base64); the embedded public key must match.
pub fn parse_secret(text: &str) -> Result<SigningKey, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "an ed25519 secret key is 64 bytes (seed and public key), this is {} bytes",
            bytes.len()
        )
    })?;
    SigningKey::from_keypair_bytes(&arr)
        .map_err(|_| "the public half does not belong to the seed".to_string())
}

/// Parse a public key (32 bytes, base64).
pub fn parse_public(text: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "an ed25519 public key is 32 bytes, this is {} bytes",
            bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(&arr).map_err(|_| "not a valid ed25519 point".to_string())
}

fn key_lines(path: &Path) -> Result<Vec<(usize, String)>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(lines)
}

fn parse_lines<T>(
    path: &Path,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, KeyError> {
    key_lines(path)?
        .into_iter()
        .map(|(line, text)| {
            parse(&text).map_err(|reason| KeyError::Parse {
                path: path.to_path_buf(),
                line,
                reason,
            })
        })
        .collect()
}

/// Every secret key in a file.
pub fn load_secret_file(path: &Path) -> Result<Vec<SigningKey>, KeyError> {
    parse_lines(path, parse_secret)
}

/// Every public key in a file (a remote's `verification-ed25519-file`).
pub fn load_public_file(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
    parse_lines(path, parse_public)
}

/// Write a new key pair: the secret key to `out` (mode 0600) and the public key to
/// `out.pub`; returns the public key file's path.
pub fn write_new_pair(out: &Path) -> Result<(SigningKey, PathBuf), KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| KeyError::Io { path, error }
    };
    let key = generate().map_err(|e| io(out)(std::io::Error::other(e.to_string())))?;
    let mut pub_name = out.as_os_str().to_os_string();
    pub_name.push(".pub");
    let pub_path = PathBuf::from(pub_name);
    for p in [out, pub_path.as_path()] {
        if p.exists() {
            return Err(io(p)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; remove it first or choose another name",
            )));
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let secret = format!("{}\n", secret_to_base64(&key));
    keel_utils::fsutil::write_atomic(out, secret.as_bytes(), 0o600).map_err(io(out))?;
    let public = format!("{}\n", public_to_base64(&key.verifying_key()));
    keel_utils::fsutil::write_atomic(&pub_path, public.as_bytes(), 0o644).map_err(io(&pub_path))?;
    Ok((key, pub_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// RFC 8032 test 1: seed and public key.
    const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUB_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn libsodium_layout_is_seed_then_public() {
        let seed: [u8; 32] = hex(SEED_HEX).try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        let b64 = secret_to_base64(&key);
        let raw = STANDARD.decode(&b64).unwrap();
        assert_eq!(&raw[..32], &hex(SEED_HEX)[..]);
        assert_eq!(&raw[32..], &hex(PUB_HEX)[..]);
        assert_eq!(parse_secret(&b64).unwrap().to_bytes(), seed);
        let pk = public_to_base64(&key.verifying_key());
        assert_eq!(STANDARD.decode(&pk).unwrap(), hex(PUB_HEX));
    }

    #[test]
    fn parse_errors_table() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut mismatched = key.to_keypair_bytes();
        mismatched[40] ^= 1;
        for (text, secret, want) in [
            ("%%%", true, "not base64"),
            (&STANDARD.encode([1u8; 32]) as &str, true, "64 bytes"),
            (&STANDARD.encode(mismatched), true, "does not belong"),
            (&STANDARD.encode([1u8; 64]), false, "32 bytes"),
            ("", false, "32 bytes"),
        ] {
            let err = if secret {
                parse_secret(text).unwrap_err()
            } else {
                parse_public(text).unwrap_err()
            };
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn key_pair_in_a_new_directory_and_errors_said_once() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("keys/release");
        let (_, pub_path) = write_new_pair(&out).unwrap();
        assert!(out.is_file() && pub_path.is_file());
        let e = load_public_file(&d.path().join("missing.pub")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(
            chain.matches("No such file").count(),
            1,
            "the OS error is said once: {chain}"
        );
    }

    #[test]
    fn key_pair_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("k");
        let (key, pub_path) = write_new_pair(&out).unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_secret_file(&out).unwrap()[0].to_bytes(),
            key.to_bytes()
        );
        assert_eq!(
            load_public_file(&pub_path).unwrap(),
            vec![key.verifying_key()]
        );
        assert!(matches!(write_new_pair(&out), Err(KeyError::Io { .. })));
        std::fs::write(&pub_path, "# comment\n\n").unwrap();
        assert!(matches!(
            load_public_file(&pub_path),
            Err(KeyError::Empty { .. })
        ));
        std::fs::write(&pub_path, "# c\nAAAA\n").unwrap();
        let err = load_public_file(&pub_path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
