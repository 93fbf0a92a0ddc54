//! Validate JSON against the official GHL OpenAPI schemas in `shared/reference/ghl-openapi/`.
//!
//! Reusable by any test: `validate_request(spec_file, method, path_template, &body)` checks a body
//! a client is about to send; `validate_response(spec_file, method, path_template, status, &body)`
//! checks an answer. `spec_file` is relative to the spec directory, e.g. `"apps/contacts.json"`;
//! `path_template` is the spec's key, e.g. `"/contacts/{contactId}"` (a trailing-slash mismatch is
//! tolerated). Both return `Err(messages)` naming each violation with its JSON path, or
//! `Err(["no schema ..."])` when the spec has none (check [`response_schema`] first to tell).
//!
//! OpenAPI 3.0 is not JSON Schema, so the schema is converted first:
//! - `nullable: true` becomes a `null` alternative; external `$ref`s into
//!   `../common/common-schemas.json` are merged into the document's `components/schemas`.
//! - Requests are validated *strictly*: every object schema that lists `properties` gets
//!   `additionalProperties: false`, because the real server whitelists DTOs and answers 422
//!   `property X should not exist` (reference §1). Responses are open (the API adds fields).
//! - Known errata of the spec are patched (each is listed in [`ERRATA`] with its reason).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Spec errors patched before validating: `(file, JSON pointer, replacement, why)`.
pub const ERRATA: &[(&str, &str, &str, &str)] = &[
    (
        "apps/contacts.json",
        "/components/schemas/CreateContactDto/properties/dateOfBirth",
        r#"{"type":["string","null"]}"#,
        "spec types it `object` but documents date strings (YYYY-MM-DD, MM/DD/YYYY, ...)",
    ),
    (
        "apps/contacts.json",
        "/components/schemas/UpdateContactDto/properties/dateOfBirth",
        r#"{"type":["string","null"]}"#,
        "same as create",
    ),
    (
        "apps/contacts.json",
        "/components/schemas/UpsertContactDto/properties/dateOfBirth",
        r#"{"type":["string","null"]}"#,
        "same as create",
    ),
    (
        "apps/contacts.json",
        "/components/schemas/NumericField/properties/field_value",
        r#"{"type":["number","string"]}"#,
        "spec types a numeric value as `object` (its own example is 100)",
    ),
    (
        "apps/contacts.json",
        "/components/schemas/MonetoryField/properties/field_value",
        r#"{"type":["number","string"]}"#,
        "same as NumericField",
    ),
    (
        "apps/locations.json",
        "/components/schemas/LocationTaskListSuccessfulResponseDto/properties/tasks/items",
        r#"{"type":"object"}"#,
        "spec says an array of arrays; the API returns an array of task objects",
    ),
];

/// Custom-field input schemas require `id`, but the API takes `id` *or* `key` (reference §3.3).
const CUSTOM_FIELD_INPUTS: &[&str] = &[
    "TextField",
    "LargeTextField",
    "SingleSelectField",
    "RadioField",
    "NumericField",
    "MonetoryField",
    "CheckboxField",
    "MultiSelectField",
    "FileField",
];

/// The `shared/reference/ghl-openapi` directory: walks up from `CARGO_MANIFEST_DIR` so this works
/// from `/work/main`, a worktree under `/work/wt/X`, or a CI clone with `shared/` beside it.
pub fn spec_dir() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let cand = dir.join("shared/reference/ghl-openapi");
        if cand.is_dir() {
            return cand;
        }
    }
    panic!("no shared/reference/ghl-openapi above {}", start.display());
}

/// A spec file as raw JSON.
pub fn load(spec_file: &str) -> Value {
    let path = spec_dir().join(spec_file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Find an operation, tolerating a trailing-slash difference in the template.
fn operation(doc: &Value, method: &str, path_template: &str) -> Option<Value> {
    let m = method.to_ascii_lowercase();
    let alt = if let Some(p) = path_template.strip_suffix('/') {
        p.to_string()
    } else {
        format!("{path_template}/")
    };
    [path_template.to_string(), alt]
        .iter()
        .find_map(|p| doc.pointer(&format!("/paths/{}/{m}", pointer_escape(p))))
        .cloned()
}

/// Rewrite refs to the common file, convert `nullable`, and (strict) close objects.
fn convert(v: &mut Value, strict: bool, in_all_of: bool) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(name) =
                    r.strip_prefix("../common/common-schemas.json#/components/schemas/")
            {
                *r = format!("#/components/schemas/common__{name}");
            }
            let nullable = m.remove("nullable") == Some(Value::Bool(true));
            for (k, child) in m.iter_mut() {
                if k == "example" || k == "examples" {
                    continue;
                }
                convert(child, strict, k == "allOf");
            }
            if nullable {
                if let Some(Value::String(t)) = m.get("type").cloned() {
                    m.insert("type".into(), json!([t, "null"]));
                } else if m.contains_key("$ref") {
                    let inner = Value::Object(std::mem::take(m));
                    m.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                }
            }
            if strict
                && !in_all_of
                && m.contains_key("properties")
                && !m.contains_key("additionalProperties")
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
        Value::Array(a) => {
            for x in a {
                convert(x, strict, in_all_of);
            }
        }
        _ => {}
    }
}

/// A self-contained JSON Schema document for `target` within `spec_file`.
fn build(spec_file: &str, target: &Value, strict: bool) -> Value {
    let mut doc = load(spec_file);
    for (file, ptr, repl, _why) in ERRATA {
        if *file == spec_file
            && let Some(slot) = doc.pointer_mut(ptr)
        {
            *slot = serde_json::from_str(repl).expect("errata JSON");
        }
    }
    let mut schemas: Map<String, Value> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if spec_file == "apps/contacts.json" {
        for name in CUSTOM_FIELD_INPUTS {
            if let Some(Value::Object(s)) = schemas.get_mut(*name) {
                s.remove("required");
            }
        }
    }
    let common = load("common/common-schemas.json");
    if let Some(cs) = common
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (k, v) in cs {
            schemas.insert(format!("common__{k}"), v.clone());
        }
    }
    let mut root = json!({
        "allOf": [target.clone()],
        "components": {"schemas": Value::Object(schemas)},
    });
    convert(&mut root, strict, false);
    root
}

fn json_schema_of(content: &Value) -> Option<Value> {
    let content = content.as_object()?;
    content
        .get("application/json")
        .or_else(|| content.get("application/x-www-form-urlencoded"))
        .or_else(|| content.values().next())
        .and_then(|c| c.get("schema"))
        .cloned()
}

/// The request-body schema of an operation, if the spec has one.
pub fn request_schema(spec_file: &str, method: &str, path_template: &str) -> Option<Value> {
    let op = operation(&load(spec_file), method, path_template)?;
    json_schema_of(op.pointer("/requestBody/content")?)
}

/// The schema of a response status of an operation, if the spec has one.
pub fn response_schema(
    spec_file: &str,
    method: &str,
    path_template: &str,
    status: u16,
) -> Option<Value> {
    let op = operation(&load(spec_file), method, path_template)?;
    json_schema_of(op.pointer(&format!("/responses/{status}/content"))?)
}

fn run(spec_file: &str, schema: &Value, strict: bool, body: &Value) -> Result<(), Vec<String>> {
    let root = build(spec_file, schema, strict);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&root)
        .map_err(|e| vec![format!("schema does not compile: {e}")])?;
    let errs: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Validate a request body strictly (unknown properties are errors, as on the real server).
pub fn validate_request(
    spec_file: &str,
    method: &str,
    path_template: &str,
    body: &Value,
) -> Result<(), Vec<String>> {
    let schema = request_schema(spec_file, method, path_template).ok_or_else(|| {
        vec![format!(
            "no request schema for {method} {path_template} in {spec_file}"
        )]
    })?;
    run(spec_file, &schema, true, body)
}

/// Validate a response body (extra properties allowed).
pub fn validate_response(
    spec_file: &str,
    method: &str,
    path_template: &str,
    status: u16,
    body: &Value,
) -> Result<(), Vec<String>> {
    let schema = response_schema(spec_file, method, path_template, status).ok_or_else(|| {
        vec![format!(
            "no response schema for {method} {path_template} {status} in {spec_file}"
        )]
    })?;
    run(spec_file, &schema, false, body)
}
