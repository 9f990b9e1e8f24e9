//! The kernel command line: which platform this is, where the config comes from, first boot.

use keel_utils::cmdline::Cmdline;
use std::path::Path;

/// Default location of the kernel command line.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// What provisioning reads from the kernel command line, split as the kernel splits it
/// (`keel_utils::cmdline`: double quotes group words, arguments after `--` belong to init).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    cmdline: Cmdline,
}

impl KernelCmdline {
    /// Splits a command line into arguments.
    pub fn parse(text: &str) -> KernelCmdline {
        KernelCmdline {
            cmdline: Cmdline::parse(text),
        }
    }

    /// Reads and parses a command-line file (normally `/proc/cmdline`).
    pub fn read(path: &Path) -> std::io::Result<KernelCmdline> {
        Ok(KernelCmdline {
            cmdline: Cmdline::read(path)?,
        })
    }

    /// The kernel parameters, quotes removed.
    pub fn args(&self) -> &[String] {
        self.cmdline.params()
    }

    /// The value of the last `key=value` argument (the kernel's "last one wins" rule).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.cmdline.value(key)
    }

    /// Whether `arg` appears exactly (as a flag or as `key=value`).
    pub fn contains(&self, arg: &str) -> bool {
        self.cmdline.contains(arg)
    }

    /// `ignition.platform.id=`.
    pub fn platform(&self) -> Option<&str> {
        self.value(keel_proto::node::KARG_PLATFORM_ID)
    }

    /// `ignition.config.url=`.
    pub fn config_url(&self) -> Option<&str> {
        self.value(keel_proto::node::KARG_CONFIG_URL)
            .filter(|u| !u.is_empty())
    }

    /// `ignition.firstboot` present and not switched off (`0`, `no`, `off`, empty value).
    pub fn first_boot(&self) -> bool {
        self.contains("ignition.firstboot")
            || matches!(self.value("ignition.firstboot"), Some(v) if !matches!(v, "" | "0" | "no" | "off"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  a b\n", &["a", "b"]),
            ("x=\"a b\" y", &["x=a b", "y"]),
            ("\"\" z", &["", "z"]),
        ];
        for (text, want) in cases {
            assert_eq!(KernelCmdline::parse(text).args(), *want, "{text:?}");
        }
    }

    /// Provision's own splitter dropped every quote and knew no `--`; the kernel keeps quotes
    /// inside a value and hands what follows `--` to init.
    #[test]
    fn quotes_and_dashes_as_the_kernel_reads_them() {
        let c = KernelCmdline::parse("a=x\" \"y -- ignition.firstboot ignition.platform.id=metal");
        assert_eq!(c.args(), ["a=x\" \"y"]);
        assert!(!c.first_boot());
        assert_eq!(c.platform(), None);
        let c = KernelCmdline::parse("\"ignition.config.url=data:,a b\" ignition.firstboot");
        assert_eq!(c.config_url(), Some("data:,a b"));
        assert!(c.first_boot());
    }

    #[test]
    fn lookups_table() {
        let c = KernelCmdline::parse(
            "ro ignition.platform.id=qemu ignition.config.url=data:,x ignition.firstboot ignition.platform.id=metal",
        );
        assert_eq!(c.platform(), Some("metal"));
        assert_eq!(c.config_url(), Some("data:,x"));
        assert!(c.first_boot());
        assert!(c.contains("ro"));
        for (text, want) in [
            ("ignition.firstboot=1", true),
            ("ignition.firstboot=0", false),
            ("ignition.firstboot=off", false),
            ("ignition.firstboot=", false),
            ("quiet", false),
        ] {
            assert_eq!(KernelCmdline::parse(text).first_boot(), want, "{text}");
        }
        assert_eq!(
            KernelCmdline::parse("ignition.config.url=").config_url(),
            None
        );
    }
}
