//! Entry points for the configs a node fetches (Ignition JSON from a URL or cloud metadata)
//! or a user hands in (Butane YAML).

/// Runs one input through the whole Ignition pipeline: parse, decode, validate, translate up,
/// merge, serialize and re-parse. A serialized config must parse again.
pub fn fuzz_json(data: &[u8]) {
    let checked = keel_ignition_config::check(data);
    let Some(cfg) = checked.config else { return };
    for r in &checked.reports {
        let _ = r.to_string();
    }
    let merged = keel_ignition_config::merge(&cfg, &cfg);
    let _ = keel_ignition_config::validate_config(&merged);
    if let Ok(json) = serde_json::to_vec(&merged) {
        let again = keel_ignition_config::check(&json);
        assert!(
            again.config.is_some(),
            "a serialized config must parse again: {}",
            String::from_utf8_lossy(&json)
        );
    }
}

/// Butane translation, plain and `--strict`: it must not panic, and any output must be a
/// valid Ignition config.
pub fn fuzz_yaml(data: &[u8]) {
    for strict in [false, true] {
        let options = keel_butane::Options {
            files_dir: None,
            strict,
            pretty: strict,
        };
        if let Ok(out) = keel_butane::translate(data, &options) {
            assert!(
                keel_ignition_config::parse(out.json.as_bytes()).is_ok(),
                "translation produced an invalid config: {}",
                out.json
            );
        }
    }
}
