//! Plain-scalar resolution as go-yaml does it for Butane: `0644` is octal, `true` a bool, `~`
//! null; quoted and block scalars are always strings.

use keel_ignition_config::tree::Value;

/// What a scalar resolves to, and whether it is an integer written in plain decimal (for the
/// "mode looks like it should be octal" warning).
pub(super) fn resolve(text: &str, quoted_or_tagged_str: bool) -> (Value, bool) {
    if quoted_or_tagged_str {
        return (Value::String(text.to_string()), false);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return (Value::Null, false),
        "true" | "True" | "TRUE" => return (Value::Bool(true), false),
        "false" | "False" | "FALSE" => return (Value::Bool(false), false),
        _ => {}
    }
    let numeric_start = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !numeric_start {
        return (Value::String(text.to_string()), false);
    }
    if let Some(n) = parse_int(text) {
        let unsigned = text.trim_start_matches(['+', '-']);
        let decimal = unsigned.len() == 1 || !unsigned.starts_with('0');
        return (Value::Number(n.to_string()), decimal);
    }
    if is_float(text) {
        return (Value::Number(text.to_string()), false);
    }
    (Value::String(text.to_string()), false)
}

/// Integers as go-yaml resolves them: decimal, `0o`/leading-`0` octal, `0x` hex, `0b` binary,
/// optional sign and `_` separators.
fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || (radix == 10 && digits.contains('_'))
    {
        return None;
    }
    let v = i64::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if neg { -v } else { v })
}

fn is_float(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-']);
    let digits_ok = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && t.chars().any(|c| c.is_ascii_digit());
    digits_ok
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && t.parse::<f64>().is_ok()
}
