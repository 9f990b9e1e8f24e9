//! Every `keel` command line that systemd runs (the dracut module's units, the overlays' units
//! and drop-ins, unit text built in Rust sources) parses with the real [`keel::Cli`], so a
//! renamed flag or subcommand fails here and not at boot.

#[path = "unit_lines/exec.rs"]
mod exec;
#[path = "unit_lines/sources.rs"]
mod sources;

use clap::Parser;
use std::collections::BTreeMap;
use std::path::Path;

/// Plausible values of variables that units use without setting them (the dracut generator
/// sets `PLATFORM` from `ignition.platform.id=`).
const FALLBACK_ENV: [(&str, &str); 1] = [("PLATFORM", "qemu")];

/// Directories of unit files, relative to the workspace.
const UNIT_DIRS: [&str; 2] = ["crates/compose/dracut", "manifests/overlays"];

fn calls_keel(argv0: &str) -> bool {
    argv0 == "keel" || argv0.ends_with("/keel")
}

/// Parses every command of `line` that runs keel; returns how many did, or the failures.
fn check(line: &sources::ExecLine) -> Result<usize, String> {
    let mut env: BTreeMap<String, String> = FALLBACK_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(exec::environment(&line.environment).map_err(|e| format!("{}: {e}", line.at))?);
    let commands = exec::commands(&line.value, &env).map_err(|e| format!("{}: {e}", line.at))?;
    let mut n = 0;
    for c in commands.iter().filter(|c| calls_keel(&c.argv[0])) {
        keel::Cli::try_parse_from(&c.argv)
            .map_err(|e| format!("{}: {:?} does not parse:\n{e}", line.at, c.argv))?;
        n += 1;
    }
    Ok(n)
}

/// `Exec*=` lines of the unit files whose command is keel, counted without the parser.
fn naive_count(text: &str) -> usize {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| exec::EXEC_KEYS.contains(k))
        .filter(|(_, v)| {
            let argv0 = v.split_whitespace().next().unwrap_or("");
            calls_keel(argv0.trim_start_matches(|c| "-@+!:|".contains(c)))
        })
        .count()
}

#[test]
fn every_keel_command_line_of_a_unit_parses() {
    let root = sources::workspace();
    let mut failures = Vec::new();
    let (mut in_units, mut naive) = (0, 0);
    for dir in UNIT_DIRS {
        for path in sources::files_under(&root.join(dir)) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            naive += naive_count(&text);
            for line in sources::unit_exec_lines(&path, &text) {
                match check(&line) {
                    Ok(n) => in_units += n,
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    let mut in_rust = 0;
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for path in sources::files_under(&src) {
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            match sources::rust_exec_lines(&path, &text) {
                Ok(lines) => {
                    for line in lines {
                        match check(&line) {
                            Ok(n) => in_rust += n,
                            Err(e) => failures.push(e),
                        }
                    }
                }
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("keel command lines checked: {in_units} in unit files, {in_rust} in Rust sources");
    assert_eq!(
        in_units, naive,
        "the unit parser found a different number of keel command lines than a plain scan"
    );
    // The dracut module has nine keel command lines and the overlays six.
    assert!(in_units >= 15, "only {in_units} keel command lines found");
    assert!(
        in_rust >= 1,
        "no keel command line found in Rust sources (compose's dracut test builds one)"
    );
}

#[test]
fn a_renamed_flag_or_subcommand_fails_to_parse() {
    let env = BTreeMap::from([("PLATFORM".to_string(), "metal".to_string())]);
    let parses = |line: &str| {
        let commands = exec::commands(line, &env).unwrap();
        keel::Cli::try_parse_from(&commands[0].argv).is_ok()
    };
    let good = "/usr/bin/keel ignition stage fetch --root /sysroot --platform ${PLATFORM}";
    assert!(parses(good));
    assert!(!parses(&good.replace("--platform", "--platfrom")));
    assert!(!parses(&good.replace("stage fetch", "stage fecth")));
    assert!(!parses("/usr/bin/keel prepare-root --sysroot"));
    assert!(!parses("/usr/bin/keel --help"));
}

fn argvs(line: &str, env: &BTreeMap<String, String>) -> Result<Vec<(String, Vec<String>)>, String> {
    Ok(exec::commands(line, env)?
        .into_iter()
        .map(|c| (c.prefixes, c.argv))
        .collect())
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// The prefixes and argument vector one command should have.
type Expected<'a> = (&'a str, &'a [&'a str]);

#[test]
fn exec_lines_expand_like_systemd() {
    let env = BTreeMap::from([
        ("ONE".to_string(), "a b".to_string()),
        ("PLATFORM".to_string(), "metal".to_string()),
    ]);
    let cases: [(&str, &[Expected]); 10] = [
        ("/usr/bin/keel agent", &[("", &["/usr/bin/keel", "agent"])]),
        (
            "-/usr/bin/keel health boot-failed",
            &[("-", &["/usr/bin/keel", "health", "boot-failed"])],
        ),
        (
            "+@/usr/bin/keel keel-alias status",
            &[("+@", &["/usr/bin/keel", "status"])],
        ),
        (
            "!!keel x %i %n %%",
            &[(
                "!!",
                &["keel", "x", "instance", "keel-test@instance.service", "%"],
            )],
        ),
        (
            "keel x $ONE ${ONE} p${PLATFORM}q",
            &[("", &["keel", "x", "a", "b", "a b", "pmetalq"])],
        ),
        (":keel x $ONE", &[(":", &["keel", "x", "$ONE"])]),
        ("keel $$ONE a$$${ONE}", &[("", &["keel", "$ONE", "a$a b"])]),
        (
            "keel x \"a b\" 'c d' e\\ f",
            &[("", &["keel", "x", "a b", "c d", "e f"])],
        ),
        (
            "keel a ; -keel b \\; \";\"",
            &[("", &["keel", "a"]), ("-", &["keel", "b", ";", ";"])],
        ),
        ("|keel  a\tb", &[("|", &["keel", "a", "b"])]),
    ];
    for (line, want) in cases {
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(p, a)| (p.to_string(), strings(a)))
            .collect();
        assert_eq!(argvs(line, &env).unwrap(), want, "{line}");
    }
    for (line, error) in [
        ("keel %q", "specifier %q"),
        ("keel $UNSET", "$UNSET is neither set"),
        ("keel ${UNSET}", "$UNSET is neither set"),
        ("keel \"open", "unterminated"),
        ("@keel", "without an argv[0]"),
    ] {
        let e = argvs(line, &env).unwrap_err();
        assert!(e.contains(error), "{line}: {e}");
    }
}

#[test]
fn unit_files_join_continuations_and_read_environment() {
    let text = "[Service]\n# ExecStart=/usr/bin/keel commented\nEnvironment=A=1 \"B=two words\"\nExecStart=\nExecStart=/usr/bin/keel \\\n  agent\n";
    let lines = sources::unit_exec_lines(Path::new("x.service"), text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].value, "/usr/bin/keel  agent");
    assert_eq!(lines[0].at, "x.service:5");
    let env = exec::environment(&lines[0].environment).unwrap();
    assert_eq!(env["B"], "two words");
    let rust = "let u = format!(\"[Service]\\nExecStart=/usr/bin/keel ignition stage {stage} --platform ${{PLATFORM}}\\n\");";
    let lines = sources::rust_exec_lines(Path::new("x.rs"), rust).unwrap();
    assert_eq!(
        lines[0].value,
        "/usr/bin/keel ignition stage files --platform ${PLATFORM}"
    );
    let unknown = "\"ExecStart=/usr/bin/keel {what}\"";
    let e = sources::rust_exec_lines(Path::new("x.rs"), unknown).unwrap_err();
    assert!(e.contains("{what}"), "{e}");
}
