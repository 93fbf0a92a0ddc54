//! Error answers and NestJS-style strict DTO validation (whitelist + forbid unknown properties).
//!
//! The real service rejects unknown properties and wrong types with 422 and a `message` *array*
//! naming every problem; reproducing that is what makes client bugs visible in tests.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

/// An error answer: status plus JSON body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

/// What a route handler returns.
pub type ApiResult = Result<(StatusCode, Value), ApiError>;

/// GHL's message for a token that lacks the endpoint's scope (observed by third parties).
pub(crate) const SCOPE_DENIED: &str = "The token is not authorized for this scope.";

impl ApiError {
    /// 400 with the NestJS shape.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"statusCode": 400, "message": message.into(), "error": "Bad Request"}),
        }
    }

    /// 422 with a `message` array.
    pub fn unprocessable(messages: Vec<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}),
        }
    }

    /// 401 for a missing, unknown or expired token (§2).
    pub fn invalid_token() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}),
        }
    }

    /// 401 for a token without the scope the endpoint needs.
    pub fn scope() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"statusCode": 401, "message": SCOPE_DENIED, "error": "Unauthorized"}),
        }
    }

    /// Whether this is the answer of [`ApiError::scope`].
    pub fn is_scope_denial(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED && self.body["message"] == SCOPE_DENIED
    }

    /// 403 for a location id other than the emulated one.
    pub fn forbidden_location() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            body: json!({"statusCode": 403, "message": "The token does not have access to this location.", "error": "Forbidden"}),
        }
    }

    /// 404 for a path the emulator does not serve.
    pub fn not_found(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            body: json!({"statusCode": 404, "message": format!("Cannot {method} {path}"), "error": "Not Found"}),
        }
    }
}

/// Type of one DTO property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    /// String or `null` (nullable in the spec: send `null` to clear).
    StrNull,
    Bool,
    Num,
    StrArray,
    Object,
    /// Anything JSON (`dateOfBirth` accepts several formats, validated elsewhere).
    Any,
    /// `customFields` input: `[{id|key, field_value}]`.
    CustomFields,
}

/// A request DTO: its properties, their types and which are required.
pub struct Dto {
    pub fields: &'static [(&'static str, Ty)],
    pub required: &'static [&'static str],
}

fn type_message(name: &str, ty: Ty) -> String {
    match ty {
        Ty::Str | Ty::StrNull => format!("{name} must be a string"),
        Ty::Bool => format!("{name} must be a boolean value"),
        Ty::Num => format!("{name} must be a number conforming to the specified constraints"),
        Ty::StrArray => format!("each value in {name} must be a string"),
        Ty::Object => format!("{name} must be an object"),
        Ty::CustomFields => format!("{name} must be an array"),
        Ty::Any => format!("{name} is invalid"),
    }
}

fn type_ok(v: &Value, ty: Ty) -> Result<(), String> {
    let ok = match ty {
        Ty::Str => v.is_string(),
        Ty::StrNull => v.is_string() || v.is_null(),
        Ty::Bool => v.is_boolean(),
        Ty::Num => v.is_number(),
        Ty::StrArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::Object => v.is_object(),
        Ty::Any => true,
        Ty::CustomFields => return check_custom_fields(v),
    };
    if ok { Ok(()) } else { Err(String::new()) }
}

fn check_custom_fields(v: &Value) -> Result<(), String> {
    let Some(items) = v.as_array() else {
        return Err(String::new());
    };
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(format!("customFields.{i} must be an object"));
        };
        for k in obj.keys() {
            if !matches!(k.as_str(), "id" | "key" | "field_value") {
                return Err(format!("customFields.{i}.property {k} should not exist"));
            }
        }
        let has_id = obj.get("id").is_some_and(Value::is_string);
        let has_key = obj.get("key").is_some_and(Value::is_string);
        if !has_id && !has_key {
            return Err(format!("customFields.{i}.id must be a string"));
        }
        if !obj.contains_key("field_value") {
            return Err(format!("customFields.{i}.field_value should not be empty"));
        }
    }
    Ok(())
}

/// Validate `body` against `dto`; returns the object or a 422 naming every problem.
pub fn check(body: &Option<Value>, dto: &Dto) -> Result<Map<String, Value>, ApiError> {
    let obj = match body {
        Some(Value::Object(m)) => m.clone(),
        None => Map::new(),
        Some(_) => {
            return Err(ApiError::bad_request("Request body must be a JSON object"));
        }
    };
    let mut msgs = Vec::new();
    for k in obj.keys() {
        if !dto.fields.iter().any(|(n, _)| n == k) {
            msgs.push(format!("property {k} should not exist"));
        }
    }
    for (name, ty) in dto.fields {
        match obj.get(*name) {
            None => {
                if dto.required.contains(name) {
                    msgs.push(format!("{name} should not be empty"));
                    msgs.push(type_message(name, *ty));
                }
            }
            Some(Value::Null) if dto.required.contains(name) => {
                msgs.push(format!("{name} should not be empty"));
            }
            Some(v) => {
                if let Err(detail) = type_ok(v, *ty) {
                    msgs.push(if detail.is_empty() {
                        type_message(name, *ty)
                    } else {
                        detail
                    });
                }
            }
        }
    }
    if msgs.is_empty() {
        Ok(obj)
    } else {
        Err(ApiError::unprocessable(msgs))
    }
}

/// Validate query parameters: only `allowed` names, `required` present.
pub fn check_query(
    query: &[(String, String)],
    allowed: &[&str],
    required: &[&str],
) -> Result<(), ApiError> {
    let mut msgs = Vec::new();
    for (k, _) in query {
        if !allowed.contains(&k.as_str()) {
            msgs.push(format!("property {k} should not exist"));
        }
    }
    for r in required {
        if !query.iter().any(|(k, v)| k == r && !v.is_empty()) {
            msgs.push(format!("{r} should not be empty"));
            msgs.push(format!("{r} must be a string"));
        }
    }
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(msgs))
    }
}

/// First value of a query parameter.
pub fn qget<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// String field of a validated body (`null` and absent both give `None`).
pub fn s(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.get(name).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DTO: Dto = Dto {
        fields: &[("body", Ty::Str), ("pinned", Ty::Bool)],
        required: &["body"],
    };

    #[test]
    fn unknown_property_is_named() {
        let err = check(&Some(json!({"body": "x", "locationId": "L"})), &DTO).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(
            err.body["message"],
            json!(["property locationId should not exist"])
        );
    }

    #[test]
    fn wrong_type_and_missing() {
        let err = check(&Some(json!({"pinned": "yes"})), &DTO).unwrap_err();
        let msgs = err.body["message"].as_array().unwrap();
        assert!(msgs.contains(&json!("body should not be empty")));
        assert!(msgs.contains(&json!("pinned must be a boolean value")));
    }
}
