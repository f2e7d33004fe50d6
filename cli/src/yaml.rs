//! `-o yaml`: the JSON document in YAML's block style. Strings are always
//! double-quoted with JSON's escapes (valid YAML), so no value can turn into
//! another type (`"no"`, `"1e3"`, `"null"`) or a key; no YAML crate needed.

use serde_json::Value;

pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => block(value, 0, &mut out),
        Value::Array(items) if !items.is_empty() => block(value, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// A scalar or an empty collection, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A key as written: plain when it is an identifier no YAML reads as
/// something else, quoted otherwise.
fn yaml_key(key: &str) -> String {
    const SPECIAL: [&str; 10] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~",
    ];
    let plain = key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !SPECIAL.contains(&key);
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

fn nested(value: &Value) -> bool {
    match value {
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => false,
    }
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = yaml_key(key);
                if nested(v) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    block(v, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", inline(v)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if nested(item) {
                    // The item's first line moves up beside its dash.
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                } else {
                    out.push_str(&format!("{pad}- {}\n", inline(item)));
                }
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", inline(scalar))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_documents_become_block_style() {
        let value = serde_json::json!([
            {"id": "d-1", "phases": [{"phase": "queued", "at_ms": 1}], "reason": null, "tags": []},
            {"id": "no", "x": {"y": true, "A b": 1}}
        ]);
        assert_eq!(
            to_yaml(&value),
            "- id: \"d-1\"\n  phases:\n    - phase: \"queued\"\n      at_ms: 1\n  reason: null\n  tags: []\n- id: \"no\"\n  x:\n    \"y\": true\n    \"A b\": 1\n"
        );
    }

    #[test]
    fn scalars_and_empty_documents_stay_on_one_line() {
        assert_eq!(to_yaml(&serde_json::json!([])), "[]\n");
        assert_eq!(to_yaml(&serde_json::json!("a\nb")), "\"a\\nb\"\n");
    }
}
