//! Reading requests: the body (size limit, strict JSON), path and query parameters, and who is
//! calling (from the authorizer's context).

use edgecert_core::ids::AccountId;
use edgecert_core::{Error, Result};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The raw body bytes, refused past [`MAX_BODY_BYTES`].
pub fn body_bytes(request: &Request) -> Result<&[u8]> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(bytes)
}

/// The body as JSON of type `T` (declared with `deny_unknown_fields`). A missing body, bad JSON,
/// an unknown field or a wrong type is a 400 with its own code, and a message that names the
/// field and what it should be — never a Rust type (see [`describe_data_error`]).
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T> {
    let bytes = body_bytes(request)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "missing_body",
            "a JSON body is required".to_owned(),
        ));
    }
    let not_json = || bad_request("invalid_json", "the body is not valid JSON".to_owned());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        if error.inner().is_data() {
            describe_data_error(&path, &error.inner().to_string())
        } else if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            // serde_json reports some wrong types (a number where an enum's name belongs) as
            // syntax errors, though the body is valid JSON.
            describe_data_error(&path, "invalid type")
        } else {
            not_json()
        }
    })?;
    // Trailing characters after the value.
    deserializer.end().map_err(|_| not_json())?;
    Ok(value)
}

/// Turns serde's words for a body that is JSON but not the expected shape into a message that
/// names only the field (`path`, `.` for the body itself) and what it expects. Serde's own
/// text names Rust types ("expected struct NewDomain", "expected u32"), so only the parts that
/// are the client's words or the API's field and value names are kept.
fn describe_data_error(path: &str, detail: &str) -> Error {
    // serde_json appends the position; it means nothing once the field is named.
    let detail = detail.split(" at line ").next().unwrap_or(detail);
    let at_root = path == "." || path.is_empty();
    let field = |name: &str| {
        if at_root {
            format!("`{name}`")
        } else {
            format!("`{path}.{name}`")
        }
    };
    let this = format!("`{path}`");
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_owned();
    // The API's own names serde lists as expected (fields or values): "`a`", "`a` or `b`",
    // "one of `a`, `b`, `c`".
    let choices = |text: &str| {
        text.split_once(", expected ")
            .map(|(_, list)| list.to_owned())
            .filter(|list| {
                list.strip_prefix("one of ")
                    .unwrap_or(list)
                    .starts_with('`')
            })
    };
    if let Some(rest) = detail.strip_prefix("unknown field ") {
        // The path of an unknown field ends with the field itself.
        let name = if at_root { field(&quoted(rest)) } else { this };
        let mut message = format!("unknown field {name}");
        if let Some(known) = choices(rest) {
            message.push_str(&format!("; expected {known}"));
        }
        return bad_request("unknown_field", message);
    }
    let message = if let Some(rest) = detail.strip_prefix("missing field ") {
        format!("{} is required", field(&quoted(rest)))
    } else if let Some(rest) = detail.strip_prefix("duplicate field ") {
        format!("{} is given more than once", field(&quoted(rest)))
    } else if let Some(rest) = detail.strip_prefix("unknown variant ") {
        match choices(rest) {
            Some(values) => format!("{this} must be {values}"),
            None => format!("{this} has an unknown value"),
        }
    } else if at_root {
        "the body must be a JSON object".to_owned()
    } else if let Some((_, expected)) = detail
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        format!("{this} must be {}", expectation(expected))
    } else if detail.starts_with("invalid length") {
        format!("{this} has the wrong number of items")
    } else {
        format!("{this} has an invalid value")
    };
    bad_request("invalid_field", message)
}

/// What serde expected, in JSON's words; anything that would name a Rust type becomes a
/// generic phrase.
fn expectation(expected: &str) -> &'static str {
    match expected {
        "a string" => "a string",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        "a map" => "an object",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        other if other.starts_with("struct ") => "an object",
        other if other.starts_with("enum ") || other.contains("variant") => {
            "one of the documented values"
        }
        _ => "of another type",
    }
}

/// Like [`json_body`], but an empty body reads as `T::default()`.
pub fn optional_json_body<T: DeserializeOwned + Default>(request: &Request) -> Result<T> {
    let bytes = body_bytes(request)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(request)
}

/// For a field of a change that JSON `null` clears: with `#[serde(default, deserialize_with =
/// "request::nullable")]`, an absent field reads as `None` (keep), `null` as `Some(None)`
/// (clear) and a value as `Some(Some(value))`.
pub fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Refuses a change body that names none of `fields` (`invalid_field`): a PATCH that changes
/// nothing is a client's mistake worth saying.
pub fn some_change(changes_something: bool, fields: &str) -> Result<()> {
    if changes_something {
        Ok(())
    } else {
        Err(bad_request(
            "invalid_field",
            format!("the body changes nothing: give {fields}"),
        ))
    }
}

fn bad_request(code: &'static str, message: String) -> Error {
    Error::BadRequest { code, message }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialised
    struct NewThing {
        name: String,
        count: Option<u32>,
        tags: Option<Vec<String>>,
        kind: Option<Kind>,
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Small,
        Large,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn error_for(body: &str) -> (String, String) {
        let request = lambda_http::http::Request::builder()
            .body(Body::Text(body.to_owned()))
            .unwrap();
        match json_body::<NewThing>(&request).unwrap_err() {
            Error::BadRequest { code, message } => (code.to_owned(), message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_name_fields_and_expectations_never_types() {
        for (body, code, expected) in [
            ("42", "invalid_field", "the body must be a JSON object"),
            ("\"x\"", "invalid_field", "the body must be a JSON object"),
            ("[]", "invalid_field", "the body must be a JSON object"),
            ("null", "invalid_field", "the body must be a JSON object"),
            ("{}", "invalid_field", "`name` is required"),
            (r#"{"name": 5}"#, "invalid_field", "`name` must be a string"),
            (
                r#"{"name": "a", "count": "x"}"#,
                "invalid_field",
                "`count` must be a whole number",
            ),
            (
                r#"{"name": "a", "count": -1}"#,
                "invalid_field",
                "`count` has an invalid value",
            ),
            (
                r#"{"name": "a", "tags": "x"}"#,
                "invalid_field",
                "`tags` must be an array",
            ),
            (
                r#"{"name": "a", "tags": [1]}"#,
                "invalid_field",
                "`tags[0]` must be a string",
            ),
            (
                r#"{"name": "a", "kind": "huge"}"#,
                "invalid_field",
                "`kind` must be `small` or `large`",
            ),
            (
                r#"{"name": "a", "kind": 3}"#,
                "invalid_field",
                "`kind` has an invalid value",
            ),
            (
                r#"{"name": "a", "nested": 3}"#,
                "invalid_field",
                "`nested` must be an object",
            ),
            (
                r#"{"name": "a", "nested": {"flag": 1}}"#,
                "invalid_field",
                "`nested.flag` must be true or false",
            ),
            (
                r#"{"name": "a", "nested": {}}"#,
                "invalid_field",
                "`nested.flag` is required",
            ),
            (
                r#"{"name": "a", "nested": {"flag": true, "x": 1}}"#,
                "unknown_field",
                "unknown field `nested.x`",
            ),
            (
                r#"{"name": "a", "colour": 1}"#,
                "unknown_field",
                "unknown field `colour`; expected one of `name`, `count`",
            ),
            (
                r#"{"name": "a", "name": "b"}"#,
                "invalid_field",
                "`name` is given more than once",
            ),
            (
                r#"{"name": "a"} x"#,
                "invalid_json",
                "the body is not valid JSON",
            ),
            (
                r#"{"name": "a""#,
                "invalid_json",
                "the body is not valid JSON",
            ),
        ] {
            let (actual_code, message) = error_for(body);
            assert_eq!(actual_code, code, "{body}: {message}");
            assert!(message.contains(expected), "{body}: {message}");
            for leak in [
                "NewThing", "Inner", "Kind", "struct", "enum", "u32", "line ", "column",
            ] {
                assert!(!message.contains(leak), "{body}: {message}");
            }
        }
    }
}

/// A path parameter, parsed; a malformed id answers 404 like an unknown one, so ids cannot be
/// probed for their format.
pub fn path_id<T>(
    request: &Request,
    name: &str,
    parse: fn(&str) -> Result<T>,
    missing: edgecert_core::ItemKind,
) -> Result<T> {
    let parameters = request.path_parameters();
    let raw = parameters.first(name).ok_or(Error::NotFound(missing))?;
    parse(raw).map_err(|_| Error::NotFound(missing))
}

/// A query-string parameter.
pub fn query(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters()
        .first(name)
        .map(str::to_owned)
}

/// The `limit` query parameter: absent, or a number from 1 to `max`; anything else is a 400.
pub fn limit(request: &Request, max: u32) -> Result<Option<u32>> {
    match query(request, "limit") {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .map(Some)
            .ok_or_else(|| {
                bad_request(
                    "invalid_limit",
                    format!("limit must be a number from 1 to {max}"),
                )
            }),
    }
}

/// The `cursor` query parameter, when not empty.
pub fn cursor(request: &Request) -> Option<String> {
    query(request, "cursor").filter(|cursor| !cursor.is_empty())
}

/// A boolean query parameter: absent is `false`; `true`/`1` and `false`/`0` are read; anything
/// else is a 400.
pub fn flag(request: &Request, name: &str) -> Result<bool> {
    match query(request, name).as_deref().map(str::trim) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(bad_request(
            "invalid_parameter",
            format!("{name} must be true or false"),
        )),
    }
}

/// Who the authorizer says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator (admin key).
    Admin,
    /// An account (its API key).
    Account(AccountId),
}

/// Context keys the authorizer sets and handlers read.
pub mod context_keys {
    /// `"admin"` or `"account"`.
    pub const ROLE: &str = "role";
    /// The account id when the role is `account`.
    pub const ACCOUNT_ID: &str = "account_id";
}

/// The caller, read only from the authorizer's context in the request; nothing else in the
/// request can claim an identity.
pub fn caller(request: &Request) -> Result<Caller> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return Err(Error::Unauthorized);
    };
    let fields = context
        .authorizer
        .as_ref()
        .map(|authorizer| &authorizer.fields)
        .ok_or(Error::Unauthorized)?;
    match fields
        .get(context_keys::ROLE)
        .and_then(|role| role.as_str())
    {
        Some("admin") => Ok(Caller::Admin),
        Some("account") => {
            let id = fields
                .get(context_keys::ACCOUNT_ID)
                .and_then(|id| id.as_str())
                .ok_or(Error::Unauthorized)?;
            AccountId::parse(id)
                .map(Caller::Account)
                .map_err(|_| Error::Unauthorized)
        }
        _ => Err(Error::Unauthorized),
    }
}

/// The calling account; the admin key is not an account key.
pub fn account(request: &Request) -> Result<AccountId> {
    match caller(request)? {
        Caller::Account(id) => Ok(id),
        Caller::Admin => Err(Error::Unauthorized),
    }
}

/// Requires the admin key.
pub fn admin(request: &Request) -> Result<()> {
    match caller(request)? {
        Caller::Admin => Ok(()),
        Caller::Account(_) => Err(Error::Unauthorized),
    }
}
