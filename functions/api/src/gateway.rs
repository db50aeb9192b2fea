//! What API Gateway does in front of the Lambda functions, for the local runner: match the
//! route, run the same authorizer, and hand the handler a request carrying the same context
//! (path parameters, query string, authorizer fields) it gets in AWS. The dashboard's routes
//! go to its handler without the authorizer, as in AWS.

use std::collections::HashMap;

use aws_lambda_events::apigw::{ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequestContext};
use edgecert_core::Error;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::auth;
use crate::handlers;
use crate::request::MAX_BODY_BYTES;
use crate::response;
use crate::routes;
use crate::state::ApiState;

/// Serves one HTTP request the way API Gateway + the Lambda functions would.
/// `body` is what the client sent, already bounded by the caller to at most
/// `MAX_BODY_BYTES + 1` bytes (more is answered 413 here).
pub async fn dispatch(
    state: &ApiState,
    parts: http::request::Parts,
    body: Vec<u8>,
) -> Response<Body> {
    let path = parts.uri.path().to_owned();
    // The dashboard's routes need no key (API Gateway runs no authorizer for them).
    if routes::find_dashboard(parts.method.as_str(), &path).is_some() {
        return handlers::dashboard::handle(&http::Request::from_parts(parts, Body::Empty));
    }
    let Some((route, parameters)) = routes::find(parts.method.as_str(), &path) else {
        return if routes::path_exists(&path) {
            response::json(
                405,
                &json!({"error": {"code": "method_not_allowed", "message": "Method not allowed"}}),
            )
        } else {
            response::json(
                404,
                &json!({"error": {"code": "route_not_found", "message": "No such route"}}),
            )
        };
    };
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let Some(fields) = auth::authorize(state, authorization).await else {
        return response::error(&Error::Unauthorized);
    };
    if body.len() > MAX_BODY_BYTES {
        return response::error(&Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }

    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|query| url_decode_pairs(query).collect())
        .unwrap_or_default();
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.fields = fields;
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(format!("{} {}", route.method, route.path));
    context.authorizer = Some(authorizer);
    context.http.method = parts.method.clone();
    context.http.path = Some(path);

    let body = match String::from_utf8(body) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(bytes) => Body::Binary(bytes.into_bytes()),
    };
    let request: Request = http::Request::from_parts(parts, body);
    let request = request
        .with_path_parameters(parameters.into_iter().collect::<HashMap<_, _>>())
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    (route.handler)(state, request).await
}

/// `a=1&b=x%20y` -> pairs, percent- and plus-decoded.
fn url_decode_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%' && index + 2 < bytes.len())
            .then(|| Some(hex_value(bytes[index + 1])? * 16 + hex_value(bytes[index + 2])?))
            .flatten();
        match (bytes[index], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                index += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let pairs: Vec<_> = url_decode_pairs("cursor=a%2Bb%3D&limit=5&x=y+z&flag").collect();
        assert_eq!(
            pairs,
            vec![
                ("cursor".into(), "a+b=".into()),
                ("limit".into(), "5".into()),
                ("x".into(), "y z".into()),
                ("flag".into(), "".into())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
