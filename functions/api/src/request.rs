//! Reading requests: the body (size limit, strict JSON), path and query parameters, and who is
//! calling (from the authorizer's context).

use edgecert_core::ids::AccountId;
use edgecert_core::{Error, Result};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
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
/// an unknown field or a wrong type is a 400 with its own code.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T> {
    let bytes = body_bytes(request)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "missing_body",
            "a JSON body is required".to_owned(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        let detail = error.to_string();
        if detail.starts_with("unknown field") {
            bad_request(
                "unknown_field",
                detail
                    .split(", expected")
                    .next()
                    .unwrap_or(&detail)
                    .to_owned(),
            )
        } else if error.is_data() {
            bad_request("invalid_field", detail)
        } else {
            bad_request("invalid_json", "the body is not valid JSON".to_owned())
        }
    })
}

/// Like [`json_body`], but an empty body reads as `T::default()`.
pub fn optional_json_body<T: DeserializeOwned + Default>(request: &Request) -> Result<T> {
    let bytes = body_bytes(request)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(request)
}

fn bad_request(code: &'static str, message: String) -> Error {
    Error::BadRequest { code, message }
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
