//! The configuration references in the guide (`docs/src/reference/`), written from the
//! config structs' JSON schema (schemars): every section and key with its type, default,
//! description and an example, so a key added to the code is in the reference, and a test
//! keeps the committed pages equal to what the code gives.

use serde_json::{Map, Value};

/// One page: a title, what the file is, and a table per TOML table.
pub fn page(title: &str, intro: &str, schema: &Value) -> String {
    let mut out = format!("# {title}\n\n{intro}\n");
    for table in tables(schema) {
        out.push_str(&format!("\n## `{}`\n\n", table.header));
        if let Some(about) = &table.about {
            out.push_str(&format!("{about}\n\n"));
        }
        if table.keys.is_empty() {
            continue;
        }
        out.push_str("| key | type | default | example | meaning |\n|---|---|---|---|---|\n");
        for key in &table.keys {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                key.name,
                key.kind,
                key.default.as_deref().map_or("—".to_string(), code),
                key.example.as_deref().map_or("—".to_string(), code),
                cell(&key.meaning),
            ));
        }
    }
    out
}

/// Every key that lacks a meaning, or both a default and an example (what a test refuses).
#[cfg(test)]
pub fn incomplete(schema: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    for table in &tables(schema) {
        for key in &table.keys {
            if key.meaning.is_empty() {
                missing.push(format!("{}.{}: no description", table.header, key.name));
            }
            if key.default.is_none() && key.example.is_none() && !key.kind.contains("table") {
                missing.push(format!(
                    "{}.{}: neither default nor example",
                    table.header, key.name
                ));
            }
        }
    }
    missing
}

/// Every TOML table of the schema, in the order they are written.
fn tables(schema: &Value) -> Vec<Table> {
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut tables = Vec::new();
    collect(schema, "", false, &defs, &mut tables);
    tables
}

struct Table {
    /// The TOML header: `[path]`, or `[[path]]` for an array of tables.
    header: String,
    /// Its keys' schemas, to find a table already written.
    shape: String,
    about: Option<String>,
    keys: Vec<Key>,
}

struct Key {
    name: String,
    kind: String,
    default: Option<String>,
    example: Option<String>,
    meaning: String,
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// `schema` with `$ref`s to `$defs` followed, and `Option`'s `anyOf [T, null]` unwrapped.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    if let Some(def) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
    {
        return resolve(def, defs);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if real.len() == 1 {
            return resolve(real[0], defs);
        }
    }
    schema
}

/// An object schema's properties (with a subschema's own properties for `anyOf` of a string
/// and a table: a source given as a URL or a table).
fn properties<'a>(
    schema: &'a Value,
    defs: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    let schema = resolve(schema, defs);
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        return Some(p);
    }
    schema
        .get("anyOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|o| {
            resolve(o, defs)
                .get("properties")
                .and_then(Value::as_object)
        })
}

fn kind(schema: &Value, defs: &Map<String, Value>) -> String {
    let schema = resolve(schema, defs);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        return format!("one of {}", names.join(", "));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = options
            .iter()
            .filter_map(|o| {
                o.get("const")
                    .or_else(|| o.get("enum").and_then(|e| e.get(0)))
            })
            .map(|v| format!("`{}`", plain(v)))
            .collect();
        if !names.is_empty() {
            return format!("one of {}", names.join(", "));
        }
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let kinds: Vec<String> = options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map(|o| kind(o, defs))
            .collect();
        return kinds.join(" or ");
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    match types.first().copied() {
        Some("array") => match schema.get("items") {
            Some(items) if kind(items, defs) == "table" => "array of tables".into(),
            Some(items) => format!("array of {}", kind(items, defs)),
            None => "array".into(),
        },
        Some("object") if schema.get("properties").is_some() => "table".into(),
        Some("object") => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => {
                if properties(v, defs).is_some() {
                    "table of tables".into()
                } else {
                    format!("table of {}", kind(v, defs))
                }
            }
            _ => "table".into(),
        },
        Some("integer") => "integer".into(),
        Some("number") => "number".into(),
        Some("boolean") => "boolean".into(),
        Some("string") if schema.get("format").and_then(Value::as_str) == Some("duration") => {
            "duration".into()
        }
        Some("string") => "string".into(),
        Some(other) => other.into(),
        None => "any".into(),
    }
}

/// A value as it is written in TOML.
fn toml(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| {
                    let bare = k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        format!("{k} = {}", toml(v))
                    } else {
                        format!("{k:?} = {}", toml(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn collect(
    schema: &Value,
    path: &str,
    array: bool,
    defs: &Map<String, Value>,
    tables: &mut Vec<Table>,
) {
    let Some(props) = properties(schema, defs) else {
        return;
    };
    let header = match (path, array) {
        ("", _) => "(top level)".to_string(),
        (_, true) => format!("[[{path}]]"),
        (_, false) => format!("[{path}]"),
    };
    // A table with the same keys as one already written (a source's table under each
    // source) is said once and pointed to after.
    let shape = Value::Object(props.clone()).to_string();
    if let Some(first) = tables.iter().find(|t| t.shape == shape) {
        let same = format!("The same keys as `{}`.", first.header);
        let about = match schema.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d} {same}"),
            None => same,
        };
        tables.push(Table {
            header,
            about: Some(about),
            keys: Vec::new(),
            shape: String::new(),
        });
        return;
    }
    let mut table = Table {
        shape,
        header,
        // What the key that holds this table says of it (not the struct's own doc).
        about: schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|_| !path.is_empty()),
        keys: Vec::new(),
    };
    let mut nested = Vec::new();
    for (name, sub) in props {
        let target = resolve(sub, defs);
        let kind = kind(sub, defs);
        let meaning = sub
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        // A key that can hold a table gets that table's own section.
        let described = |mut value: Value| {
            if value.get("description").is_none() && !meaning.is_empty() {
                value["description"] = Value::String(meaning.clone());
            }
            value
        };
        if let Some(items) = target
            .get("items")
            .filter(|i| properties(i, defs).is_some())
        {
            nested.push((child.clone(), true, described(items.clone())));
        } else if let Some(v) = target
            .get("additionalProperties")
            .filter(|v| properties(v, defs).is_some())
        {
            nested.push((format!("{child}.NAME"), false, described(v.clone())));
        } else if properties(sub, defs).is_some() {
            nested.push((child.clone(), false, sub.clone()));
        }
        if path.is_empty() && kind.contains("table") && !kind.contains("string") {
            continue; // top-level sections are their own tables
        }
        table.keys.push(Key {
            name: name.clone(),
            kind,
            default: sub.get("default").filter(|d| !d.is_null()).map(toml),
            example: sub
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
                .map(toml),
            meaning,
        });
    }
    if !table.keys.is_empty() {
        tables.push(table);
    }
    for (child, array, sub) in nested {
        collect(&sub, &child, array, defs, tables);
    }
}
