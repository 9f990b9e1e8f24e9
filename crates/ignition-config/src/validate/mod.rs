//! Semantic validation of a decoded config, with Ignition's messages. Every rule reports at the
//! JSON path of the offending value and keeps going, so one run shows all problems.

mod passwd;
mod resource;
mod storage;
mod systemd;
mod urlsyntax;

pub use resource::{check_hash, check_url, decode_data_url};
pub use systemd::{parse_install, Install};

use crate::decode::Positions;
use crate::report::{JsonPath, Report, Severity};
use crate::types::{Config, Proxy};
use crate::version::Version;
use resource::Use;
use std::collections::HashSet;

/// Collects reports, resolving each path to a source position.
pub struct Checker<'p> {
    version: Version,
    positions: &'p Positions,
    reports: Vec<Report>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, path: &JsonPath, message: &str) {
        self.reports.push(Report {
            severity,
            path: Some(path.clone()),
            pos: self.positions.find(path),
            message: message.to_string(),
        });
    }

    pub fn error(&mut self, path: &JsonPath, message: &str) {
        self.push(Severity::Error, path, message);
    }

    pub fn warn(&mut self, path: &JsonPath, message: &str) {
        self.push(Severity::Warning, path, message);
    }

    /// The minor spec version (3.minor.0).
    pub fn minor(&self) -> u64 {
        self.version.minor
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Reports `duplicate entry defined` at every list entry whose key was seen before.
    pub fn duplicates(&mut self, list: JsonPath, keys: impl IntoIterator<Item = String>) {
        let mut seen = HashSet::new();
        for (i, k) in keys.into_iter().enumerate() {
            if !seen.insert(k) {
                self.error(&list.index(i), "duplicate entry defined");
            }
        }
    }
}

/// Validates a config of spec `version`; `positions` maps paths to source positions (pass an
/// empty map for configs built in memory).
pub fn validate(cfg: &Config, version: Version, positions: &Positions) -> Vec<Report> {
    let mut c = Checker {
        version,
        positions,
        reports: Vec::new(),
    };
    let root = JsonPath::root();
    let ign = root.key("ignition");
    if let Some(conf) = &cfg.ignition.config {
        let p = ign.key("config");
        for (i, r) in conf.merge.iter().enumerate() {
            resource::check(&mut c, r, &p.key("merge").index(i), Use::Required);
        }
        c.duplicates(
            p.key("merge"),
            conf.merge
                .iter()
                .map(|r| r.source.clone().unwrap_or_default()),
        );
        if let Some(r) = &conf.replace {
            let usage = if *r == Default::default() {
                Use::Optional
            } else {
                Use::Required
            };
            resource::check(&mut c, r, &p.key("replace"), usage);
        }
    }
    if let Some(tls) = cfg.ignition.security.as_ref().and_then(|s| s.tls.as_ref()) {
        let p = ign.key("security").key("tls").key("certificateAuthorities");
        for (i, r) in tls.certificate_authorities.iter().enumerate() {
            resource::check(&mut c, r, &p.index(i), Use::Required);
        }
        c.duplicates(
            p,
            tls.certificate_authorities
                .iter()
                .map(|r| r.source.clone().unwrap_or_default()),
        );
    }
    if let Some(proxy) = &cfg.ignition.proxy {
        check_proxy(&mut c, proxy, &ign.key("proxy"));
    }
    if let Some(s) = &cfg.storage {
        storage::check(&mut c, s, &root.key("storage"));
    }
    if let Some(sd) = &cfg.systemd {
        systemd::check(&mut c, sd, &root.key("systemd"));
    }
    if version.at_least(4) {
        check_systemd_path_conflicts(&mut c, cfg);
    }
    if let Some(pw) = &cfg.passwd {
        let p = root.key("passwd");
        c.duplicates(
            p.key("users"),
            pw.users.iter().map(|u| u.name.clone().unwrap_or_default()),
        );
        c.duplicates(
            p.key("groups"),
            pw.groups.iter().map(|g| g.name.clone().unwrap_or_default()),
        );
        passwd::check(&mut c, pw, &p);
        for (i, u) in pw.users.iter().enumerate() {
            c.duplicates(
                p.key("users").index(i).key("sshAuthorizedKeys"),
                u.ssh_authorized_keys.iter().cloned(),
            );
        }
    }
    if let Some(k) = &cfg.kernel_arguments {
        let p = root.key("kernelArguments");
        let mut seen = HashSet::new();
        for (list, items) in [
            ("shouldExist", &k.should_exist),
            ("shouldNotExist", &k.should_not_exist),
        ] {
            for (i, a) in items.iter().enumerate() {
                if !seen.insert(a) {
                    c.error(&p.key(list).index(i), "duplicate entry defined");
                }
            }
        }
    }
    c.reports
}

/// Files, directories and links may not be written where a unit or drop-in with contents goes.
/// Ignition enforces this from 2.15 on; 2.14 (the oracle for 3.0-3.3) does not, so keel checks
/// it for spec 3.4.0 and newer only.
fn check_systemd_path_conflicts(c: &mut Checker, cfg: &Config) {
    let mut unit_paths = HashSet::new();
    for u in cfg.units() {
        let name = u.name.as_deref().unwrap_or("");
        if u.contents.as_deref().is_some_and(|x| !x.is_empty()) {
            unit_paths.insert(format!("/etc/systemd/system/{name}"));
        }
        for d in u
            .dropins
            .iter()
            .filter(|d| d.contents.as_deref().is_some_and(|x| !x.is_empty()))
        {
            unit_paths.insert(format!(
                "/etc/systemd/system/{name}.d/{}",
                d.name.as_deref().unwrap_or("")
            ));
        }
    }
    let s = cfg.storage();
    let lists = [
        (
            "files",
            s.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        ),
        (
            "directories",
            s.directories.iter().map(|d| d.path.clone()).collect(),
        ),
        ("links", s.links.iter().map(|l| l.path.clone()).collect()),
    ];
    for (list, paths) in lists {
        for (i, p) in paths.iter().enumerate() {
            if p.as_ref().is_some_and(|p| unit_paths.contains(p)) {
                c.error(
                    &JsonPath::root()
                        .key("storage")
                        .key(list)
                        .index(i)
                        .key("path"),
                    "path conflicts with systemd unit or dropin",
                );
            }
        }
    }
}

fn check_proxy(c: &mut Checker, proxy: &Proxy, p: &JsonPath) {
    for (name, v) in [
        ("httpProxy", &proxy.http_proxy),
        ("httpsProxy", &proxy.https_proxy),
    ] {
        let Some(url) = v else { continue };
        match resource::scheme_of(url).as_deref() {
            Some("http") if name == "httpsProxy" => c.warn(
                &p.key(name),
                "insecure plaintext HTTP proxy specified for HTTPS resources",
            ),
            Some("http" | "https") => {}
            _ => c.error(&p.key(name), "proxies must be http(s)"),
        }
    }
}
