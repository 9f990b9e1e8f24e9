//! Software RAID with mdadm: `/dev/md/<name>` is created unless it is already assembled.

use anyhow::{bail, Result};
use keel_ignition_config::types::Raid;
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// The mdadm arguments that create `r`.
fn create_args(r: &Raid) -> Result<Vec<String>> {
    let name = r.name.as_deref().unwrap_or_default();
    let Some(level) = r.level.as_deref() else {
        bail!("level is required")
    };
    let spares = r.spares.unwrap_or(0);
    if r.devices.len() <= spares as usize {
        bail!(
            "{} devices with {spares} spares leaves no active device",
            r.devices.len()
        );
    }
    let mut a = vec![
        "--create".to_string(),
        format!("/dev/md/{name}"),
        "--run".into(),
        "--homehost=any".into(),
        format!("--level={level}"),
        format!("--raid-devices={}", r.devices.len() as i64 - spares),
    ];
    if spares > 0 {
        a.push(format!("--spare-devices={spares}"));
    }
    a.extend(r.options.iter().cloned());
    a.extend(r.devices.iter().cloned());
    Ok(a)
}

pub fn apply(r: &Raid) -> Result<()> {
    let name = r.name.as_deref().unwrap_or_default();
    let md = format!("/dev/md/{name}");
    if Path::new(&md).exists() {
        tracing::info!("RAID array {md} already exists");
        return Ok(());
    }
    for d in &r.devices {
        super::wait_for(d)?;
    }
    cmd::run(Command::new("mdadm").args(create_args(r)?))?;
    super::wait_for(&md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_args_table() {
        let raid = |level: Option<&str>, spares: Option<i64>, n: usize| Raid {
            name: Some("data".into()),
            level: level.map(Into::into),
            spares,
            devices: (0..n).map(|i| format!("/dev/d{i}")).collect(),
            options: vec!["--metadata=1.2".into()],
        };
        let cases: Vec<(Raid, Result<&str, &str>)> = vec![
            (raid(Some("raid1"), None, 2), Ok("--create /dev/md/data --run --homehost=any --level=raid1 --raid-devices=2 --metadata=1.2 /dev/d0 /dev/d1")),
            (raid(Some("raid5"), Some(1), 4), Ok("--create /dev/md/data --run --homehost=any --level=raid5 --raid-devices=3 --spare-devices=1 --metadata=1.2 /dev/d0 /dev/d1 /dev/d2 /dev/d3")),
            (raid(None, None, 2), Err("level is required")),
            (raid(Some("raid1"), Some(2), 2), Err("no active device")),
        ];
        for (r, want) in cases {
            match (create_args(&r), want) {
                (Ok(a), Ok(w)) => assert_eq!(a.join(" "), w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
                (got, w) => panic!("got {got:?}, want {w:?}"),
            }
        }
    }
}
