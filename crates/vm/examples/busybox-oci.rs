//! Write a busybox OCI image archive (for `podman run oci-archive:...`), built on this machine
//! from Debian's busybox-static: `cargo run -p keel-vm --example busybox-oci -- OUT.tar`.
//! scripts/main-job.sh uses it for the sample config's container.

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: busybox-oci OUT.tar"))?;
    let archive = keel_vm::oci::busybox_archive("localhost/busybox:latest")?;
    keel_utils::fsutil::write_atomic(std::path::Path::new(&out), &archive, 0o644)?;
    Ok(())
}
