//! The book's settings reference (docs/book/src/settings-reference.md) is generated from the
//! one declaration of the settings: keys and defaults from `Config::default()`, environment
//! names from the keys, meanings from the doc comments of the config structs (read with syn).
//! The test fails when the committed page differs from what the code generates, so the book
//! cannot drift from the code; `CANARYKEYS_BLESS=1` rewrites it.

use std::collections::BTreeMap;

use canarykeys_server::config::Config;
use serde_json::Value;

/// Dotted key → default, for every leaf of the declared settings. A list or table of tables
/// (`minter.accounts`) is one key.
fn declared() -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut out,
    );
    out
}

fn env_of(key: &str) -> String {
    format!("CANARYKEYS_{}", key.replace('.', "__").to_uppercase())
}

// ---- The generated reference: keys, env names and defaults from `Config::default()`, meanings
// from the doc comments of the config structs (parsed with syn), in declaration order.

struct Field {
    name: String,
    doc: String,
    /// The struct it holds (`Option<T>` and `Vec<T>` unwrapped), if a config struct.
    inner: Option<String>,
    is_vec: bool,
    /// `#[serde(flatten)]`: its keys sit at the parent's level.
    flatten: bool,
}

const CONFIG_SOURCES: &[&str] = &[
    "config/mod.rs",
    "config/sections.rs",
    "config/operator_alerts.rs",
    "config/streams.rs",
];

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                lines.push(s.value().trim().to_owned());
            }
        }
    }
    lines.join(" ").trim().to_owned()
}

/// `T`, `Option<T>` or `Vec<T>`: the last path segment's name and whether a Vec wrapped it.
fn inner_type(ty: &syn::Type) -> (String, bool) {
    let syn::Type::Path(p) = ty else {
        return (String::new(), false);
    };
    let seg = p.path.segments.last().unwrap();
    let name = seg.ident.to_string();
    if name == "Option" || name == "Vec" {
        if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
            if let Some(syn::GenericArgument::Type(t)) = args.args.first() {
                let (inner, _) = inner_type(t);
                return (inner, name == "Vec");
            }
        }
    }
    (name, false)
}

fn structs() -> BTreeMap<String, Vec<Field>> {
    let mut out = BTreeMap::new();
    for file in CONFIG_SOURCES {
        let path = format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"));
        let ast = syn::parse_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for item in ast.items {
            let syn::Item::Struct(s) = item else { continue };
            let syn::Fields::Named(named) = s.fields else {
                continue;
            };
            let fields = named
                .named
                .iter()
                .map(|f| {
                    let (inner, is_vec) = inner_type(&f.ty);
                    Field {
                        name: f.ident.as_ref().unwrap().to_string(),
                        doc: doc_of(&f.attrs),
                        inner: Some(inner),
                        is_vec,
                        flatten: f.attrs.iter().any(|a| {
                            a.path().is_ident("serde")
                                && a.parse_nested_meta(|m| {
                                    if m.path.is_ident("flatten") {
                                        Err(m.error("flatten"))
                                    } else {
                                        Ok(())
                                    }
                                })
                                .is_err()
                        }),
                    }
                })
                .collect();
            out.insert(s.ident.to_string(), fields);
        }
    }
    out
}

fn render_default(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) if s.is_empty() => "empty".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Object(o) if o.is_empty() => "none".into(),
        other => format!("`{other}`"),
    }
}

/// The generated table, a row per setting in declaration order.
fn reference() -> String {
    let structs = structs();
    let defaults = declared();
    let mut rows = Vec::new();
    fn walk(
        prefix: &str,
        name: &str,
        structs: &BTreeMap<String, Vec<Field>>,
        defaults: &BTreeMap<String, Value>,
        rows: &mut Vec<String>,
    ) {
        for f in &structs[name] {
            let key = if prefix.is_empty() {
                f.name.clone()
            } else {
                format!("{prefix}.{}", f.name)
            };
            let nested = f.inner.as_ref().filter(|t| structs.contains_key(*t));
            if f.flatten {
                if let Some(t) = nested {
                    walk(prefix, t, structs, defaults, rows);
                    continue;
                }
            }
            match nested {
                Some(t) if !f.is_vec => walk(&key, t, structs, defaults, rows),
                _ => {
                    let (env, extra) = match nested {
                        Some(t) => (
                            "(TOML)".to_owned(),
                            format!(
                                " Each entry: {}.",
                                structs[t]
                                    .iter()
                                    .map(|f| format!("`{}`", f.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ),
                        None => (format!("`{}`", env_of(&key)), String::new()),
                    };
                    let default = defaults
                        .get(&key)
                        .map(render_default)
                        .unwrap_or_else(|| "unset".into());
                    let meaning = format!("{}{extra}", f.doc).replace('|', "\\|");
                    rows.push(format!("| `{key}` | {env} | {default} | {meaning} |"));
                }
            }
        }
    }
    walk("", "Config", &structs, &defaults, &mut rows);
    format!(
        "<!-- Generated from the settings' declarations (crates/server/src/config) by \
         crates/server/tests/settings_doc.rs: edit the doc comments there, then run \
         CANARYKEYS_BLESS=1 cargo test -p canarykeys-server --test settings_doc. -->\n\n\
         | key | environment variable | default | meaning |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

#[test]
fn the_generated_settings_reference_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/book/src/settings-reference.md"
    );
    let now = reference();
    if std::env::var_os("CANARYKEYS_BLESS").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == now,
        "docs/book/src/settings-reference.md is stale: run CANARYKEYS_BLESS=1 cargo test -p \
         canarykeys-server --test settings_doc"
    );
    // Every declared key has its row, and every row a doc comment.
    for key in declared().keys() {
        // A table unset by default (`[streams.syslog]`) is covered by its keys' rows.
        let covered = now.contains(&format!("| `{key}` |"))
            || now.contains(&format!("| `{key}."))
            || declared_parent_row(&now, key);
        assert!(covered, "no row for {key}");
    }
    let undocumented: Vec<&str> = now
        .lines()
        .filter(|l| l.starts_with("| `") && l.ends_with(" |  |"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "settings without a doc comment:\n{}",
        undocumented.join("\n")
    );
}

fn declared_parent_row(table: &str, key: &str) -> bool {
    let mut parent = key;
    while let Some((p, _)) = parent.rsplit_once('.') {
        if table.contains(&format!("| `{p}` |")) {
            return true;
        }
        parent = p;
    }
    false
}
