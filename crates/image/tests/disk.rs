//! The disk pipeline for real (root, loop devices, sgdisk, mkfs, mtools, qemu-img), and a UEFI
//! boot of the result under QEMU/OVMF up to systemd-boot's menu.

use keel_image::layout::{ESP_OFFSET, ROOT_OFFSET};
use keel_image::{assemble, esp, loopdev, output};
use keel_utils::cmd;
use keel_vm::qemu::{Accel, QemuSpec, Serial, OVMF_CODE, OVMF_VARS};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const TOOLS: &[&str] = &[
    "sgdisk",
    "losetup",
    "mkfs.ext4",
    "mkfs.vfat",
    "mcopy",
    "qemu-img",
    "blkid",
];

fn skip_unless_ready(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        keel_testsupport::skip(&format!("{test}: needs root (loop devices, mount)"));
        return false;
    }
    if let Some(t) = TOOLS.iter().find(|t| !cmd::have(t)) {
        keel_testsupport::skip(&format!(
            "{test}: `{t}` missing (apt-get install {})",
            cmd::package_for(t)
        ));
        return false;
    }
    if !Path::new(SYSTEMD_BOOT).is_file() {
        keel_testsupport::skip(&format!(
            "{test}: {SYSTEMD_BOOT} missing (apt-get install systemd-boot-efi)"
        ));
        return false;
    }
    true
}

/// A root filesystem with one file and an ESP holding systemd-boot and one BLS entry.
fn populate(root: &Path) -> anyhow::Result<()> {
    std::fs::write(root.join("hello"), "from the root filesystem\n")?;
    let boot = root.join("boot");
    for d in ["EFI/BOOT", "EFI/systemd", "loader/entries"] {
        std::fs::create_dir_all(boot.join(d))?;
    }
    std::fs::copy(SYSTEMD_BOOT, boot.join("EFI/BOOT/BOOTX64.EFI"))?;
    std::fs::copy(SYSTEMD_BOOT, boot.join("EFI/systemd/systemd-bootx64.efi"))?;
    std::fs::write(boot.join("loader/loader.conf"), "timeout 10\neditor no\n")?;
    // systemd-boot lists an entry only when its kernel file exists; the menu is all we need.
    std::fs::write(boot.join("vmlinuz"), b"not a kernel")?;
    std::fs::write(
        boot.join("loader/entries/keel-test-1.conf"),
        "title Keel disk pipeline test\nversion 1\nlinux /vmlinuz\noptions root=LABEL=root\n",
    )?;
    Ok(())
}

#[test]
fn disk_layout_and_uefi_boot_to_systemd_boot() {
    if !skip_unless_ready("disk_layout_and_uefi_boot_to_systemd_boot") {
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = dir.path().join("disk.raw");
    let disk_bytes = 1u64 << 30;
    assemble::assemble(&raw, disk_bytes, dir.path(), populate).unwrap();

    // GPT: names and types as designed.
    let table = cmd::run_stdout(Command::new("sgdisk").arg("-p").arg(&raw)).unwrap();
    for want in ["EF00", "EFI-SYSTEM", "8304", "root"] {
        assert!(table.contains(want), "{want} missing from\n{table}");
    }
    // Filesystem labels at the partition offsets.
    for (off, label, kind) in [
        (ESP_OFFSET, "EFI-SYSTEM", "vfat"),
        (ROOT_OFFSET, "root", "ext4"),
    ] {
        let out = cmd::run_stdout(
            Command::new("blkid")
                .args(["-p", "-O", &off.to_string()])
                .arg(&raw),
        )
        .unwrap();
        assert!(out.contains(&format!("LABEL=\"{label}\"")), "{out}");
        assert!(out.contains(&format!("TYPE=\"{kind}\"")), "{out}");
    }
    // ESP content came from <root>/boot, which is now an empty mount point.
    let files = esp::list(&raw, ESP_OFFSET).unwrap();
    for want in ["/EFI/BOOT/BOOTX64.EFI", "/loader/entries/keel-test-1.conf"] {
        assert!(files.iter().any(|f| f == want), "{want} not in {files:?}");
    }
    let conf = esp::read_file(&raw, ESP_OFFSET, "/loader/loader.conf").unwrap();
    assert_eq!(conf, b"timeout 10\neditor no\n");
    {
        let root_bytes = keel_image::layout::root_size(disk_bytes);
        let dev = loopdev::LoopDevice::attach(&raw, ROOT_OFFSET, root_bytes).unwrap();
        let debugfs = |req: &str| {
            cmd::run_stdout(
                Command::new("debugfs")
                    .env("DEBUGFS_PAGER", "__none__")
                    .args(["-R", req])
                    .arg(dev.path()),
            )
            .unwrap()
        };
        let out = debugfs("ls -p /boot");
        let names: Vec<&str> = out.lines().filter_map(|l| l.split('/').nth(5)).collect();
        assert_eq!(names, [".", ".."], "/boot not empty:\n{out}");
        let hello = debugfs("cat /hello");
        assert_eq!(hello, "from the root filesystem\n");
    }

    // qcow2 output, then UEFI firmware finds systemd-boot through the removable-media path
    // and systemd-boot reads the BLS entry.
    let qcow = dir.path().join("disk.qcow2");
    output::finish(&raw, &qcow, output::Format::Qcow2).unwrap();
    let info = cmd::run_stdout(Command::new("qemu-img").arg("info").arg(&qcow)).unwrap();
    assert!(
        info.contains("file format: qcow2") && info.contains("virtual size: 1 GiB"),
        "{info}"
    );
    let vars = dir.path().join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let log = dir.path().join("console.log");
    let spec = QemuSpec {
        disk: qcow.clone(),
        disk_format: "qcow2".into(),
        memory_mb: 512,
        cpus: 1,
        accel: Accel::detect(),
        ovmf_code: OVMF_CODE.into(),
        ovmf_vars: vars,
        ignition: None,
        ssh_port: None,
        serial: Serial::File(log.clone()),
        extra_disks: Vec::new(),
        direct_boot: None,
    };
    let mut vm = keel_vm::machine::Machine::start(&spec, None).unwrap();
    let console = vm.console.clone();
    let found = console.wait_for(
        0,
        &["Keel disk pipeline test"],
        Duration::from_secs(120),
        || vm.alive(),
    );
    vm.kill();
    found.unwrap_or_else(|e| {
        panic!(
            "{e}\nQEMU: {}\nconsole:\n{}",
            vm.qemu_stderr(),
            console.since(0)
        )
    });
}
