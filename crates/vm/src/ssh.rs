//! SSH to a VM through its forwarded loopback port, with a key made for this run.

use anyhow::{Context, Result};
use keel_utils::cmd;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// An ed25519 key pair generated with `ssh-keygen` for one run.
#[derive(Debug, Clone)]
pub struct SshKey {
    /// The private key file.
    pub private: PathBuf,
    /// The public key line (`ssh-ed25519 AAAA… comment`).
    pub public: String,
}

impl SshKey {
    /// Generate a passphrase-less key `dir/id_ed25519`.
    pub fn generate(dir: &Path, comment: &str) -> Result<Self> {
        let private = dir.join("id_ed25519");
        cmd::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&private),
        )
        .context("generating an SSH key for the VM")?;
        let pubfile = dir.join("id_ed25519.pub");
        let public = std::fs::read_to_string(&pubfile)
            .with_context(|| format!("reading {}", pubfile.display()))?
            .trim()
            .to_string();
        Ok(SshKey { private, public })
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; QEMU binds it right after).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// How often a command is sent when ssh could not even connect.
const CONNECT_TRIES: u32 = 4;

/// ssh failed before the remote command started (exit 255 with a connection-setup error), so
/// sending it again cannot run it twice.
fn never_connected(o: &Output) -> bool {
    let err = String::from_utf8_lossy(&o.stderr);
    o.status.code() == Some(255)
        && [
            "connect to host",
            "banner exchange",
            "kex_exchange_identification",
        ]
        .iter()
        .any(|p| err.contains(p))
}

/// How to reach a VM's sshd.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// Remote user.
    pub user: String,
    /// Forwarded loopback port.
    pub port: u16,
    /// Private key; `None` leaves key choice to the user's ssh configuration.
    pub key: Option<PathBuf>,
}

impl SshTarget {
    /// Options shared by the command we run and the one we print: throwaway host keys.
    fn options(&self) -> Vec<String> {
        let mut o = vec![
            "-p".to_string(),
            self.port.to_string(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
        ];
        if let Some(k) = &self.key {
            o.push("-i".into());
            o.push(k.display().to_string());
        }
        o
    }

    /// The command line a person types to log in.
    pub fn login_command(&self) -> String {
        format!("ssh {} {}@127.0.0.1", self.options().join(" "), self.user)
    }

    /// An `ssh` command running `remote` on the VM (batch mode, quiet, short connect timeout).
    pub fn command(&self, remote: &str, tty: bool) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.options());
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "LogLevel=ERROR",
        ]);
        if tty {
            c.arg("-tt");
        }
        c.arg(format!("{}@127.0.0.1", self.user))
            .arg("--")
            .arg(remote);
        c
    }

    /// Run `remote`; fail with its stderr unless it exits 0; return stdout.
    pub fn run(&self, remote: &str) -> Result<String> {
        let o = self.output(remote)?;
        if !o.status.success() {
            anyhow::bail!(
                "running `{remote}` on the VM over SSH: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Run `remote` and return whatever happened (for checks that expect failure). A connection
    /// that never got to run the command (a slow guest missing the connect timeout) is tried
    /// again a few times.
    pub fn output(&self, remote: &str) -> Result<Output> {
        let mut tries = 1;
        loop {
            let o = self.attempt(remote)?;
            if tries == CONNECT_TRIES || !never_connected(&o) {
                return Ok(o);
            }
            tries += 1;
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Run `remote` once, whatever happens: for polling a guest that may be rebooting, where a
    /// refused connection is the answer.
    // A refused connection is an answer while polling a rebooting guest: the raw exit
    // status is read.
    #[allow(clippy::disallowed_methods)]
    pub fn attempt(&self, remote: &str) -> Result<Output> {
        self.command(remote, false)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("starting ssh for `{remote}`"))
    }

    /// Poll until a trivial command succeeds, `check` fails (the VM died or is stuck), or
    /// `timeout` passes.
    pub fn wait_ready(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            let last = match self.attempt("true") {
                Ok(o) if o.status.success() => return Ok(()),
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => format!("{e:#}"),
            };
            check()
                .with_context(|| format!("waiting for SSH on port {} (last: {last})", self.port))?;
            if start.elapsed() >= timeout {
                anyhow::bail!(
                    "SSH on 127.0.0.1:{} did not accept user {} within {} s (last error: {last})",
                    self.port,
                    self.user,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let t = SshTarget {
            user: "core".into(),
            port: 2222,
            key: Some("/k/id".into()),
        };
        assert_eq!(
            t.login_command(),
            "ssh -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i /k/id core@127.0.0.1"
        );
        let c = cmd::display(&t.command("uname -a", true));
        assert!(c.ends_with("-tt core@127.0.0.1 -- 'uname -a'"), "{c}");
        let bare = SshTarget { key: None, ..t };
        assert!(!bare.login_command().contains(" -i "));
    }

    #[test]
    fn connection_failures_that_may_be_retried() {
        use std::os::unix::process::ExitStatusExt;
        let out = |code: i32, err: &str| Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: err.as_bytes().to_vec(),
        };
        for (code, err, want) in [
            (255, "Connection timed out during banner exchange", true),
            (
                255,
                "ssh: connect to host 127.0.0.1 port 2222: Connection refused",
                true,
            ),
            (
                255,
                "kex_exchange_identification: read: Connection reset by peer",
                true,
            ),
            (255, "Connection to 127.0.0.1 closed by remote host.", false),
            (1, "connect to host in the command's own output", false),
            (0, "", false),
        ] {
            assert_eq!(never_connected(&out(code, err)), want, "{code} {err}");
        }
    }

    #[test]
    fn keygen_and_port() {
        if !cmd::have("ssh-keygen") {
            keel_testsupport::skip(
                "keygen_and_port: ssh-keygen missing (apt-get install openssh-client)",
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let k = SshKey::generate(dir.path(), "keel-test").unwrap();
        assert!(k.public.starts_with("ssh-ed25519 ") && k.public.ends_with(" keel-test"));
        assert!(k.private.is_file());
        assert!(free_port().unwrap() > 0);
    }
}
