//! The typed model of the newest spec (3.5.0). Configs of older specs decode into it directly
//! (every 3.x spec only added fields), so no per-version structs are needed.
//!
//! JSON `null` and an absent key both become `None` / an empty list. Fields are in Ignition's
//! (alphabetical) order so that serialized output matches Ignition's layout.

use crate::decode::config_object;

config_object! {
    /// A whole Ignition config.
    pub struct Config {
        "ignition" => ignition: Ignition,
        "kernelArguments" since 3 => kernel_arguments: Option<KernelArguments>,
        "passwd" => passwd: Option<Passwd>,
        "storage" => storage: Option<Storage>,
        "systemd" => systemd: Option<Systemd>,
    }
}

impl crate::decode::IsEmpty for Ignition {
    /// The `ignition` section is required, so it is always written.
    fn is_empty(&self) -> bool {
        false
    }
}

config_object! {
    /// Metadata about the config itself.
    pub struct Ignition {
        "config" => config: Option<IgnitionConfig>,
        "proxy" since 1 => proxy: Option<Proxy>,
        "security" => security: Option<Security>,
        "timeouts" => timeouts: Option<Timeouts>,
        "version" => version: Option<String>,
    }
}

config_object! {
    /// Other configs to merge into this one, or one to replace it with.
    pub struct IgnitionConfig {
        "merge" => merge: Vec<Resource>,
        "replace" => replace: Option<Resource>,
    }
}

config_object! {
    /// HTTP proxy settings for fetching remote resources.
    pub struct Proxy {
        "httpProxy" => http_proxy: Option<String>,
        "httpsProxy" => https_proxy: Option<String>,
        "noProxy" => no_proxy: Vec<String>,
    }
}

config_object! {
    pub struct Security {
        "tls" => tls: Option<Tls>,
    }
}

config_object! {
    pub struct Tls {
        /// Extra PEM bundles trusted for HTTPS fetches.
        "certificateAuthorities" => certificate_authorities: Vec<Resource>,
    }
}

config_object! {
    /// Fetch timeouts in seconds.
    pub struct Timeouts {
        "httpResponseHeaders" => http_response_headers: Option<i64>,
        "httpTotal" => http_total: Option<i64>,
    }
}

config_object! {
    /// A remote or inline piece of data.
    pub struct Resource {
        /// `""` or `"gzip"`. (Spec 3.0.0 has it on file contents only.)
        "compression" => compression: Option<String>,
        "httpHeaders" since 1 => http_headers: Vec<HttpHeader>,
        /// A URL: `http(s)`, `tftp`, `s3`, `gs` (3.2+), `arn` (3.4+) or `data`.
        "source" => source: Option<String>,
        "verification" => verification: Option<Verification>,
    }
}

config_object! {
    pub struct HttpHeader {
        "name" => name: Option<String>,
        /// A header without value removes the parent's header of that name when merging.
        "value" => value: Option<String>,
    }
}

config_object! {
    pub struct Verification {
        /// `sha512-<hex>` or (3.1+) `sha256-<hex>`, over the decompressed data.
        "hash" => hash: Option<String>,
    }
}

config_object! {
    pub struct Storage {
        "directories" => directories: Vec<Directory>,
        "disks" => disks: Vec<Disk>,
        "files" => files: Vec<File>,
        "filesystems" => filesystems: Vec<Filesystem>,
        "links" => links: Vec<Link>,
        "luks" since 2 => luks: Vec<Luks>,
        "raid" => raid: Vec<Raid>,
    }
}

config_object! {
    pub struct Disk {
        "device" => device: Option<String>,
        "partitions" => partitions: Vec<Partition>,
        "wipeTable" => wipe_table: Option<bool>,
    }
}

config_object! {
    pub struct Partition {
        "guid" => guid: Option<String>,
        "label" => label: Option<String>,
        "number" => number: Option<i64>,
        "resize" since 2 => resize: Option<bool>,
        "shouldExist" => should_exist: Option<bool>,
        "sizeMiB" => size_mib: Option<i64>,
        "startMiB" => start_mib: Option<i64>,
        "typeGuid" => type_guid: Option<String>,
        "wipePartitionEntry" => wipe_partition_entry: Option<bool>,
    }
}

config_object! {
    pub struct Raid {
        "devices" => devices: Vec<String>,
        "level" => level: Option<String>,
        "name" => name: Option<String>,
        "options" => options: Vec<String>,
        "spares" => spares: Option<i64>,
    }
}

config_object! {
    pub struct Filesystem {
        "device" => device: Option<String>,
        "format" => format: Option<String>,
        "label" => label: Option<String>,
        "mountOptions" since 1 => mount_options: Vec<String>,
        "options" => options: Vec<String>,
        "path" => path: Option<String>,
        "uuid" => uuid: Option<String>,
        "wipeFilesystem" => wipe_filesystem: Option<bool>,
    }
}

config_object! {
    /// Owner of a file, directory or link: a numeric id or a name, not both.
    pub struct NodeUser {
        "id" => id: Option<i64>,
        "name" => name: Option<String>,
    }
}

config_object! {
    pub struct NodeGroup {
        "id" => id: Option<i64>,
        "name" => name: Option<String>,
    }
}

config_object! {
    pub struct File {
        "append" => append: Vec<Resource>,
        "contents" => contents: Option<Resource>,
        "group" => group: Option<NodeGroup>,
        /// Permission bits, written in decimal in JSON (0644 is 420); default 0644.
        "mode" => mode: Option<i64>,
        "overwrite" => overwrite: Option<bool>,
        "path" => path: Option<String>,
        "user" => user: Option<NodeUser>,
    }
}

config_object! {
    pub struct Directory {
        "group" => group: Option<NodeGroup>,
        /// Default 0755.
        "mode" => mode: Option<i64>,
        "overwrite" => overwrite: Option<bool>,
        "path" => path: Option<String>,
        "user" => user: Option<NodeUser>,
    }
}

config_object! {
    pub struct Link {
        "group" => group: Option<NodeGroup>,
        /// A hard link instead of a symlink.
        "hard" => hard: Option<bool>,
        "overwrite" => overwrite: Option<bool>,
        "path" => path: Option<String>,
        "target" => target: Option<String>,
        "user" => user: Option<NodeUser>,
    }
}

config_object! {
    pub struct Luks {
        "cex" since 5 => cex: Option<Cex>,
        "clevis" => clevis: Option<Clevis>,
        "device" => device: Option<String>,
        "discard" since 4 => discard: Option<bool>,
        "keyFile" => key_file: Option<Resource>,
        "label" => label: Option<String>,
        "name" => name: Option<String>,
        "openOptions" since 4 => open_options: Vec<String>,
        "options" => options: Vec<String>,
        "uuid" => uuid: Option<String>,
        "wipeVolume" => wipe_volume: Option<bool>,
    }
}

config_object! {
    /// IBM Crypto Express (s390x) secure key.
    pub struct Cex {
        "enabled" => enabled: Option<bool>,
    }
}

config_object! {
    pub struct Clevis {
        "custom" => custom: Option<ClevisCustom>,
        "tang" => tang: Vec<Tang>,
        "threshold" => threshold: Option<i64>,
        "tpm2" => tpm2: Option<bool>,
    }
}

config_object! {
    pub struct ClevisCustom {
        "config" => config: Option<String>,
        "needsNetwork" => needs_network: Option<bool>,
        "pin" => pin: Option<String>,
    }
}

config_object! {
    pub struct Tang {
        /// The server's advertisement (JSON) for provisioning without contacting it.
        "advertisement" since 4 => advertisement: Option<String>,
        "thumbprint" => thumbprint: Option<String>,
        "url" => url: Option<String>,
    }
}

config_object! {
    pub struct Systemd {
        "units" => units: Vec<Unit>,
    }
}

config_object! {
    pub struct Unit {
        "contents" => contents: Option<String>,
        "dropins" => dropins: Vec<Dropin>,
        "enabled" => enabled: Option<bool>,
        "mask" => mask: Option<bool>,
        "name" => name: Option<String>,
    }
}

config_object! {
    pub struct Dropin {
        "contents" => contents: Option<String>,
        "name" => name: Option<String>,
    }
}

config_object! {
    pub struct Passwd {
        "groups" => groups: Vec<PasswdGroup>,
        "users" => users: Vec<PasswdUser>,
    }
}

config_object! {
    pub struct PasswdUser {
        "gecos" => gecos: Option<String>,
        "groups" => groups: Vec<String>,
        "homeDir" => home_dir: Option<String>,
        "name" => name: Option<String>,
        "noCreateHome" => no_create_home: Option<bool>,
        "noLogInit" => no_log_init: Option<bool>,
        "noUserGroup" => no_user_group: Option<bool>,
        "passwordHash" => password_hash: Option<String>,
        "primaryGroup" => primary_group: Option<String>,
        "shell" => shell: Option<String>,
        "shouldExist" since 2 => should_exist: Option<bool>,
        "sshAuthorizedKeys" => ssh_authorized_keys: Vec<String>,
        "system" => system: Option<bool>,
        "uid" => uid: Option<i64>,
    }
}

config_object! {
    pub struct PasswdGroup {
        "gid" => gid: Option<i64>,
        "name" => name: Option<String>,
        "passwordHash" => password_hash: Option<String>,
        "shouldExist" since 2 => should_exist: Option<bool>,
        "system" => system: Option<bool>,
    }
}

config_object! {
    /// Kernel command-line arguments that must (not) be present.
    pub struct KernelArguments {
        "shouldExist" => should_exist: Vec<String>,
        "shouldNotExist" => should_not_exist: Vec<String>,
    }
}

impl File {
    /// The permission bits to apply: `mode`, or 0644.
    pub fn mode_or_default(&self) -> u32 {
        self.mode.map_or(0o644, |m| m as u32)
    }
}

impl Directory {
    /// The permission bits to apply: `mode`, or 0755.
    pub fn mode_or_default(&self) -> u32 {
        self.mode.map_or(0o755, |m| m as u32)
    }
}

impl Config {
    /// The storage section, empty when absent.
    pub fn storage(&self) -> Storage {
        self.storage.clone().unwrap_or_default()
    }

    /// All systemd units (empty when the section is absent).
    pub fn units(&self) -> &[Unit] {
        self.systemd.as_ref().map_or(&[], |s| &s.units)
    }

    /// All users (empty when the section is absent).
    pub fn users(&self) -> &[PasswdUser] {
        self.passwd.as_ref().map_or(&[], |p| &p.users)
    }

    /// All groups (empty when the section is absent).
    pub fn groups(&self) -> &[PasswdGroup] {
        self.passwd.as_ref().map_or(&[], |p| &p.groups)
    }
}
