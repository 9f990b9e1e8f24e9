//! The VM test harness, modelled on kola: each test declares a config (Butane or Ignition),
//! boots the image with it, runs named checks over SSH or on the serial console, and the report
//! gives pass/fail per check and the time to ready of each boot.

use crate::drive::VmDisk;
use crate::machine::Machine;
use crate::qemu::{Accel, QemuSpec, Serial, OVMF_CODE, OVMF_VARS};
use crate::ssh::{free_port, SshKey, SshTarget};
use anyhow::{Context, Result};
use keel_utils::cmd;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A test's provisioning config.
#[derive(Debug, Clone)]
pub enum Config {
    /// Butane YAML, translated with `keel butane`; `local:` paths are relative to `files_dir`.
    Butane {
        /// The YAML text.
        yaml: String,
        /// The `--files-dir` for `local:` contents and `ssh_authorized_keys_local`.
        files_dir: Option<PathBuf>,
    },
    /// Ignition JSON as is.
    Ignition(serde_json::Value),
}

impl Config {
    /// Write the Ignition form to `path`; `keel` is the binary that translates Butane.
    pub fn write_ignition(&self, path: &Path, keel: &Path) -> Result<()> {
        match self {
            Config::Ignition(v) => std::fs::write(path, serde_json::to_vec_pretty(v)?)
                .with_context(|| format!("writing {}", path.display())),
            Config::Butane { yaml, files_dir } => {
                let bu = path.with_extension("bu");
                std::fs::write(&bu, yaml).with_context(|| format!("writing {}", bu.display()))?;
                let mut c = Command::new(keel);
                c.arg("butane").arg(&bu).arg("-o").arg(path);
                if let Some(d) = files_dir {
                    c.arg("--files-dir").arg(d);
                }
                cmd::run(&mut c)
                    .with_context(|| format!("translating {} with keel butane", bu.display()))?;
                Ok(())
            }
        }
    }
}

/// Per-VM knobs.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Guest memory (MiB).
    pub memory_mb: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Virtual disk size in bytes (the overlay is made this large), to test growing.
    pub disk_bytes: Option<u64>,
    /// Forward SSH.
    pub ssh: bool,
    /// Blank raw disks (sizes in bytes) attached after the boot disk, created empty when the VM
    /// is prepared and kept across its boots; the n-th (from 1) is
    /// [`crate::qemu::extra_disk_by_id`]`(n)` in the guest.
    pub extra_disks: Vec<u64>,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            memory_mb: 2048,
            cpus: 2,
            disk_bytes: None,
            ssh: true,
            extra_disks: Vec::new(),
        }
    }
}

/// Shared state of one suite run: the image, a work directory, the run's SSH key, the
/// accelerator.
pub struct Harness {
    /// The image under test (never modified: VMs boot overlays).
    pub image: PathBuf,
    /// Per-run directory holding each VM's overlay, firmware vars, config and console log.
    pub workdir: PathBuf,
    /// Key whose public half goes into test configs for user `core`.
    pub key: SshKey,
    /// KVM or TCG, probed once.
    pub accel: Accel,
    /// The keel binary (translates Butane configs).
    pub keel: PathBuf,
}

/// Upper bound on every VM's virtual CPUs, for this process (1 while several tests run at
/// once, see [`crate::testmain::run_concurrently`]).
static MAX_VCPUS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// Give every VM prepared from now on at most `n` virtual CPUs.
pub fn limit_vcpus(n: u32) {
    MAX_VCPUS.store(n, std::sync::atomic::Ordering::Relaxed);
}

impl Harness {
    /// Set up a run in `workdir` (created if needed).
    pub fn new(image: &Path, workdir: &Path, keel: &Path) -> Result<Harness> {
        std::fs::create_dir_all(workdir)
            .with_context(|| format!("creating {}", workdir.display()))?;
        let key = SshKey::generate(workdir, "keel-vmtest")?;
        let accel = Accel::detect();
        tracing::info!("accelerator: {accel:?}");
        Ok(Harness {
            image: image.to_path_buf(),
            workdir: workdir.to_path_buf(),
            key,
            accel,
            keel: keel.to_path_buf(),
        })
    }

    /// Prepare VM `name`: its directory, overlay, firmware vars and Ignition file.
    pub fn vm(&self, name: &str, config: &Config, opts: &VmOptions) -> Result<Vm> {
        let dir = self.workdir.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let disk = VmDisk::prepare(
            &self.image,
            &dir,
            false,
            Path::new(OVMF_VARS),
            opts.disk_bytes,
        )?;
        let ign = dir.join("config.ign");
        config.write_ignition(&ign, &self.keel)?;
        let extra_disks = blank_disks(&dir, &opts.extra_disks)?;
        let ssh_port = if opts.ssh { Some(free_port()?) } else { None };
        let spec = QemuSpec {
            disk: disk.disk,
            disk_format: disk.format,
            memory_mb: opts.memory_mb,
            cpus: opts
                .cpus
                .min(MAX_VCPUS.load(std::sync::atomic::Ordering::Relaxed)),
            accel: self.accel,
            ovmf_code: OVMF_CODE.into(),
            ovmf_vars: disk.vars,
            ignition: Some(ign),
            ssh_port,
            serial: Serial::File(dir.join("console.log")),
            extra_disks,
            direct_boot: None,
        };
        let ssh = ssh_port.map(|port| SshTarget {
            user: "core".into(),
            port,
            key: Some(self.key.private.clone()),
        });
        Ok(Vm { spec, ssh })
    }
}

/// Creates `disk-<n>.raw` in `dir` for each size (sparse, empty, replacing an older one).
fn blank_disks(dir: &Path, sizes: &[u64]) -> Result<Vec<PathBuf>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = dir.join(format!("disk-{}.raw", i + 1));
            std::fs::File::create(&path)
                .and_then(|f| f.set_len(size))
                .with_context(|| format!("creating blank disk {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// A prepared VM that can be booted several times (each boot is a fresh QEMU process on the
/// same disk and firmware variables, so every boot's time to ready is measured the same way).
pub struct Vm {
    /// Its QEMU command line.
    pub spec: QemuSpec,
    ssh: Option<SshTarget>,
}

impl Vm {
    /// Start QEMU.
    pub fn boot(&self) -> Result<Machine> {
        Machine::start(&self.spec, self.ssh.clone())
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Did it hold?
    pub passed: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the check took.
    pub seconds: f64,
}

/// One test's record: its checks and timings.
#[derive(Debug, Clone, Serialize)]
pub struct TestRun {
    /// Test name.
    pub name: String,
    /// Checks in the order they ran.
    pub checks: Vec<CheckResult>,
    /// Named durations (e.g. `first boot ready`), in seconds.
    pub timings: Vec<(String, f64)>,
}

impl TestRun {
    /// Start recording test `name`.
    pub fn new(name: &str) -> TestRun {
        eprintln!("=== RUN   {name}");
        TestRun {
            name: name.into(),
            checks: Vec::new(),
            timings: Vec::new(),
        }
    }

    /// Run check `name`, record and print the outcome; returns whether it passed.
    pub fn check(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        let start = Instant::now();
        let result = f();
        let seconds = start.elapsed().as_secs_f64();
        let passed = result.is_ok();
        let error = result.err().map(|e| format!("{e:#}"));
        match &error {
            None => eprintln!("    ok    {name} ({seconds:.1} s)"),
            Some(e) => eprintln!("    FAIL  {name}: {e}"),
        }
        self.checks.push(CheckResult {
            name: name.into(),
            passed,
            error,
            seconds,
        });
        passed
    }

    /// Record a duration.
    pub fn timing(&mut self, label: &str, d: Duration) {
        eprintln!("    time  {label}: {:.1} s", d.as_secs_f64());
        self.timings.push((label.into(), d.as_secs_f64()));
    }

    /// Did every check pass (and was there at least one)?
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

/// The suite's report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Accelerator used.
    pub accel: String,
    /// Every test run.
    pub tests: Vec<TestRun>,
}

impl Report {
    /// Human summary, one line per test plus failing checks.
    pub fn summary(&self) -> String {
        let mut s = format!("VM tests ({}):\n", self.accel);
        for t in &self.tests {
            let times: Vec<String> = t
                .timings
                .iter()
                .map(|(l, v)| format!("{l} {v:.1} s"))
                .collect();
            let verdict = if t.passed() { "PASS" } else { "FAIL" };
            s.push_str(&format!(
                "--- {verdict}: {} [{}]\n",
                t.name,
                times.join(", ")
            ));
            for c in t.checks.iter().filter(|c| !c.passed) {
                s.push_str(&format!(
                    "      {}: {}\n",
                    c.name,
                    c.error.as_deref().unwrap_or("")
                ));
            }
        }
        s
    }

    /// Every test passed.
    pub fn passed(&self) -> bool {
        !self.tests.is_empty() && self.tests.iter().all(TestRun::passed)
    }

    /// Write the report as JSON (crash-safe).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        keel_utils::fsutil::write_atomic(path, &serde_json::to_vec_pretty(self)?, 0o644)
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_table() {
        let mut ok = TestRun::new("basic");
        assert!(!ok.passed(), "a test without checks must not pass");
        ok.check("file", || Ok(()));
        ok.timing("first boot ready", Duration::from_millis(12_340));
        let mut bad = TestRun::new("bad-config");
        bad.check("stops", || Ok(()));
        bad.check("message", || anyhow::bail!("no message"));
        let cases = [
            (
                vec![ok.clone()],
                true,
                vec!["--- PASS: basic [first boot ready 12.3 s]"],
            ),
            (
                vec![ok, bad],
                false,
                vec!["--- FAIL: bad-config []", "      message: no message"],
            ),
            (vec![], false, vec![]),
        ];
        for (tests, pass, lines) in cases {
            let r = Report {
                accel: "Kvm".into(),
                tests,
            };
            assert_eq!(r.passed(), pass);
            let s = r.summary();
            for l in lines {
                assert!(s.contains(l), "missing {l:?} in\n{s}");
            }
        }
    }

    #[test]
    fn ignition_config_written_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.ign");
        let v = serde_json::json!({"ignition": {"version": "3.4.0"}});
        Config::Ignition(v.clone())
            .write_ignition(&p, Path::new("/nonexistent/keel"))
            .unwrap();
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, v);
    }
}
