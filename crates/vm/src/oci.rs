//! A single-layer OCI image archive (`oci-archive` for podman) built on the host from a static
//! binary, for VM tests that cannot reach a registry. The layer is a gzip tar of `/bin/<binary>`
//! plus symlinks for the applets the tests use (busybox-static), with fixed times and owners so
//! the archive is reproducible.

use anyhow::{Context, Result};
use flate2::{write::GzEncoder, Compression};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Debian's busybox-static binary (package `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct OciSpec<'a> {
    /// Image name podman gives it on `podman load` (`localhost/keel-busybox:latest`).
    pub name: &'a str,
    /// The static binary installed as `/bin/<file name>`.
    pub binary: &'a Path,
    /// Names under /bin that link to the binary (busybox applets).
    pub links: &'a [&'a str],
    /// Default command.
    pub cmd: &'a [&'a str],
}

#[derive(Serialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'static str,
    os: &'static str,
    config: RunConfig<'a>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(rename = "Env")]
    env: Vec<&'static str>,
    #[serde(rename = "Cmd")]
    cmd: &'a [&'a str],
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn descriptor(media_type: &'static str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type,
        digest: digest(bytes),
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_file<W: std::io::Write>(
    t: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    t.append_data(&mut h, path, data)
        .with_context(|| format!("adding {path} to a tar stream"))
}

fn append_dir<W: std::io::Write>(t: &mut tar::Builder<W>, path: &str, mode: u32) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    t.append_data(&mut h, path, std::io::empty())
        .with_context(|| format!("adding {path}/ to a tar stream"))
}

/// The uncompressed layer tar.
fn layer_tar(spec: &OciSpec) -> Result<Vec<u8>> {
    let bin_name = spec
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", spec.binary.display()))?;
    let data = std::fs::read(spec.binary).with_context(|| {
        format!(
            "reading {} (for busybox: apt-get install busybox-static)",
            spec.binary.display()
        )
    })?;
    let mut t = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ] {
        append_dir(&mut t, dir, mode)?;
    }
    append_file(&mut t, &format!("bin/{bin_name}"), 0o755, &data)?;
    append_file(
        &mut t,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    )?;
    append_file(&mut t, "etc/group", 0o644, b"root:x:0:\n")?;
    for link in spec.links {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        t.append_link(&mut h, format!("bin/{link}"), bin_name)
            .with_context(|| format!("adding link bin/{link}"))?;
    }
    Ok(t.into_inner()?)
}

/// Build the `oci-archive` tar (an OCI image layout: `oci-layout`, `index.json`, blobs).
pub fn build_archive(spec: &OciSpec) -> Result<Vec<u8>> {
    let layer = layer_tar(spec)?;
    let diff_id = digest(&layer);
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    std::io::Write::write_all(&mut gz, &layer)?;
    let layer_gz = gz.finish()?;
    let config = serde_json::to_vec(&ImageConfig {
        architecture: "amd64",
        os: "linux",
        config: RunConfig {
            env: vec!["PATH=/bin"],
            cmd: spec.cmd,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id],
        },
    })?;
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE,
        config: descriptor(CONFIG_TYPE, &config),
        layers: vec![descriptor(LAYER_TYPE, &layer_gz)],
    })?;
    let mut mdesc = descriptor(MANIFEST_TYPE, &manifest);
    mdesc
        .annotations
        .insert("org.opencontainers.image.ref.name", spec.name.to_string());
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        manifests: vec![mdesc],
    })?;
    let mut t = tar::Builder::new(Vec::new());
    append_file(
        &mut t,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    append_file(&mut t, "index.json", 0o644, &index)?;
    append_dir(&mut t, "blobs", 0o755)?;
    append_dir(&mut t, "blobs/sha256", 0o755)?;
    for blob in [&layer_gz, &config, &manifest] {
        let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
        append_file(&mut t, &name, 0o644, blob)?;
    }
    Ok(t.into_inner()?)
}

/// A busybox image named `name` with the applets the VM tests use.
pub fn busybox_archive(name: &str) -> Result<Vec<u8>> {
    build_archive(&OciSpec {
        name,
        binary: Path::new(BUSYBOX),
        links: &[
            "sh", "echo", "cat", "ls", "sleep", "id", "uname", "httpd", "wget", "true",
        ],
        cmd: &["sh"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(archive);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(name, data);
        }
        out
    }

    #[test]
    fn layout_is_consistent_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, b"#!static binary stand-in").unwrap();
        let spec = OciSpec {
            name: "localhost/t:latest",
            binary: &bin,
            links: &["sh", "echo"],
            cmd: &["sh"],
        };
        let a = build_archive(&spec).unwrap();
        assert_eq!(a, build_archive(&spec).unwrap(), "not reproducible");
        let files = entries(&a);
        // Every blob is stored under its own digest.
        for (name, data) in &files {
            if let Some(hexd) = name.strip_prefix("blobs/sha256/") {
                if !hexd.is_empty() {
                    assert_eq!(digest(data), format!("sha256:{hexd}"), "{name}");
                }
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "localhost/t:latest"
        );
        let mblob = &files[&format!("blobs/sha256/{}", &m["digest"].as_str().unwrap()[7..])];
        assert_eq!(m["size"].as_u64().unwrap(), mblob.len() as u64);
        let manifest: serde_json::Value = serde_json::from_slice(mblob).unwrap();
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let gz = &files[&format!("blobs/sha256/{}", &layer_digest[7..])];
        let mut layer = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut layer)
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(
            &files[&format!(
                "blobs/sha256/{}",
                &manifest["config"]["digest"].as_str().unwrap()[7..]
            )],
        )
        .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], digest(&layer).as_str());
        let mut links = Vec::new();
        for e in tar::Archive::new(&layer[..]).entries().unwrap() {
            let e = e.unwrap();
            if e.header().entry_type() == tar::EntryType::Symlink {
                let target = e.link_name().unwrap().unwrap().display().to_string();
                links.push(format!("{} -> {target}", e.path().unwrap().display()));
            }
        }
        assert_eq!(links, ["bin/sh -> tool", "bin/echo -> tool"]);
    }

    #[test]
    fn missing_binary_names_package() {
        let err = build_archive(&OciSpec {
            name: "x",
            binary: Path::new("/nonexistent/busybox"),
            links: &[],
            cmd: &[],
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("busybox-static"), "{err:#}");
    }
}
