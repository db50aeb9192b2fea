//! What the edge accepts in a request head, on every listener that serves requests (the
//! proxy and the plain-HTTP listener): a head no larger than `max_header_bytes`, measured
//! exactly, and at most one `Host`.
//!
//! hyper's HTTP/1 `max_buf_size` is no exact limit: it is checked only while a head is still
//! incomplete, so a read that brings the rest of a head past the limit (one TLS record, or a
//! whole socket buffer on plain HTTP) gets it accepted. hyper stays the coarse bound against
//! heads of unbounded size; the size of every head hyper did parse is measured here, as it
//! came on the wire (request line, then each field line `name: value` with its CRLF, then the
//! empty line; an h2 head is measured the same way from its decoded fields), and a head over
//! the limit is answered `431` before anything else sees it.
//!
//! Two `Host` fields make the request's target ambiguous (an intermediary and the origin may
//! each pick a different one), so such a request is answered `400` (RFC 9112, section 3.2).

use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode};

use crate::proxy::{ProxyBody, plain};

/// `": "` and CRLF around each field line.
const FIELD_LINE_OVERHEAD: usize = 4;
/// The spaces of the request line, ` HTTP/1.1` and its CRLF, then the empty line's CRLF.
const REQUEST_LINE_OVERHEAD: usize = 2 + "HTTP/1.1".len() + 2 + 2;

/// The size of a request head as sent: request line, field lines, empty line.
pub(crate) fn head_size<B>(request: &Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |target| target.as_str().len());
    // An absolute-form target (and h2's `:scheme`/`:authority`) counts too.
    let authority = request
        .uri()
        .authority()
        .map_or(0, |authority| authority.as_str().len() + "https://".len());
    request.method().as_str().len()
        + target
        + authority
        + REQUEST_LINE_OVERHEAD
        + fields_size(request.headers())
}

fn fields_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + FIELD_LINE_OVERHEAD)
        .sum()
}

/// The answer to a head the edge refuses, or `None` when it is acceptable.
pub(crate) fn refusal<B>(
    request: &Request<B>,
    max_header_bytes: usize,
) -> Option<Response<ProxyBody>> {
    if head_size(request) > max_header_bytes {
        return Some(plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large\n",
        ));
    }
    if request.headers().get_all(header::HOST).iter().count() > 1 {
        return Some(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: more than one Host header\n",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_head_is_measured_as_sent() {
        // "GET /a?b HTTP/1.1\r\n" (19) + "host: x.example\r\n" (17) + "\r\n" (2)
        let request = Request::get("/a?b")
            .header("host", "x.example")
            .body(())
            .unwrap();
        assert_eq!(head_size(&request), 19 + 17 + 2);
        let big = Request::get("/")
            .header("x-big", "a".repeat(64 * 1024))
            .body(())
            .unwrap();
        assert!(refusal(&big, 64 * 1024).is_some());
        assert!(refusal(&request, 64 * 1024).is_none());
        assert!(refusal(&request, 37).is_some());
    }

    #[test]
    fn two_host_fields_are_refused() {
        let request = Request::get("/")
            .header("host", "a.example.com")
            .header("host", "b.example.com")
            .body(())
            .unwrap();
        let response = refusal(&request, 64 * 1024).unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
