//! EdgeCert's web dashboard: one HTML page, a stylesheet and a few ES modules, embedded in the
//! binary (`include_bytes!`) so the local runner and the dashboard's Lambda function serve the
//! very same bytes, with no front-end build step and nothing fetched from another host.
//!
//! The page is `/`; every other file lives under `/assets/<version>/`, where `<version>` is a
//! hash of all of them. A changed file changes every asset URL, so assets are cached for a year
//! (`immutable`) while the page itself is revalidated on each load. Relative imports between
//! the modules (`./api.js`) stay inside the versioned directory.
//!
//! Every answer carries the security headers ([`CONTENT_SECURITY_POLICY`]: scripts and styles
//! from this origin only, no inline script or style, no framing, Trusted Types so that no
//! string can ever become HTML), and is gzip-compressed when the client accepts it. Each
//! file is compressed once per process, at the first request.

use std::sync::OnceLock;

use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderValue, Response, StatusCode, header};
use sha2::{Digest, Sha256};

/// The page's Content-Security-Policy. Scripts, styles, images and API calls come from this
/// origin only; no inline script or style attribute runs; forms never navigate (they are
/// submitted by script, so a key typed into one can never end up in a URL); the page cannot be
/// framed; and Trusted Types refuse every assignment of a string to an HTML sink (`innerHTML`
/// and friends), so user-supplied text can only ever be rendered as text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// Where the versioned assets live: `/assets/<version>/<file>`.
pub const ASSETS_PATH: &str = "/assets/";

/// What the page template says where the asset directory's URL goes.
const ASSET_BASE_PLACEHOLDER: &str = "{{ASSETS}}";

/// Cache lifetime of a versioned asset: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page: always revalidated, so a new deployment's asset version is picked up at once.
const REVALIDATE: &str = "no-cache";

/// Files smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 256;

/// One file of the dashboard, as written in `assets/`.
struct Source {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! source {
    ($name:literal, $content_type:literal) => {
        Source {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

/// Every asset besides the page.
const SOURCES: &[Source] = &[
    source!("app.css", "text/css; charset=utf-8"),
    source!("app.js", "text/javascript; charset=utf-8"),
    source!("api.js", "text/javascript; charset=utf-8"),
    source!("dom.js", "text/javascript; charset=utf-8"),
    source!("modal.js", "text/javascript; charset=utf-8"),
    source!("domains.js", "text/javascript; charset=utf-8"),
    source!("certificates.js", "text/javascript; charset=utf-8"),
    source!("zones.js", "text/javascript; charset=utf-8"),
    source!("operator.js", "text/javascript; charset=utf-8"),
    source!("icon.svg", "image/svg+xml"),
];

/// The page, with [`ASSET_BASE_PLACEHOLDER`] where the asset directory goes.
const PAGE_TEMPLATE: &str = include_str!("../assets/index.html");

/// A file ready to serve: its bytes, and their gzip form when that is smaller.
struct Prepared {
    content_type: &'static str,
    identity: Vec<u8>,
    gzip: Option<Vec<u8>>,
}

impl Prepared {
    fn new(content_type: &'static str, identity: Vec<u8>) -> Prepared {
        let gzip = (identity.len() >= GZIP_MIN_BYTES)
            .then(|| gzip(&identity))
            .flatten()
            .filter(|compressed| compressed.len() < identity.len());
        Prepared {
            content_type,
            identity,
            gzip,
        }
    }

    /// The bytes sent to a client that accepts gzip or not.
    fn body(&self, gzip_accepted: bool) -> (&[u8], bool) {
        match (&self.gzip, gzip_accepted) {
            (Some(compressed), true) => (compressed, true),
            _ => (&self.identity, false),
        }
    }
}

/// The gzip form of `bytes`; `None` if compressing failed (writing into a Vec does not, but a
/// failure must mean "serve uncompressed", never an empty body labelled gzip).
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder
        .finish()
        .ok()
        .filter(|compressed| !compressed.is_empty())
}

/// The dashboard's files, versioned and compressed; built once per process ([`dashboard`]).
pub struct Dashboard {
    version: String,
    page: Prepared,
    assets: Vec<(&'static str, Prepared)>,
}

/// The dashboard of this binary.
pub fn dashboard() -> &'static Dashboard {
    static DASHBOARD: OnceLock<Dashboard> = OnceLock::new();
    DASHBOARD.get_or_init(Dashboard::build)
}

impl Dashboard {
    fn build() -> Dashboard {
        let mut hash = Sha256::new();
        for source in SOURCES {
            hash.update(source.name.as_bytes());
            hash.update([0]);
            hash.update((source.bytes.len() as u64).to_be_bytes());
            hash.update(source.bytes);
        }
        let version = hex::encode(&hash.finalize()[..6]);
        let page =
            PAGE_TEMPLATE.replace(ASSET_BASE_PLACEHOLDER, &format!("{ASSETS_PATH}{version}"));
        Dashboard {
            page: Prepared::new("text/html; charset=utf-8", page.into_bytes()),
            assets: SOURCES
                .iter()
                .map(|source| {
                    (
                        source.name,
                        Prepared::new(source.content_type, source.bytes.to_vec()),
                    )
                })
                .collect(),
            version,
        }
    }

    /// The asset version: a hash of every asset, the directory name under [`ASSETS_PATH`].
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The URL path of every asset, e.g. `/assets/3f2a9c01b7d4/app.js`.
    pub fn asset_paths(&self) -> Vec<String> {
        self.assets
            .iter()
            .map(|(name, _)| format!("{ASSETS_PATH}{}/{name}", self.version))
            .collect()
    }

    /// The page as served (uncompressed), for tests and tools.
    pub fn page_html(&self) -> &str {
        std::str::from_utf8(&self.page.identity).unwrap_or_default()
    }

    /// Answers `GET path` for a client that sent `accept_encoding`: the page at `/`, a
    /// versioned asset under [`ASSETS_PATH`], or 404 for anything else (an asset of another
    /// version included: its bytes are not the ones this binary holds).
    pub fn respond(&self, path: &str, accept_encoding: Option<&str>) -> Response<Vec<u8>> {
        let gzip_accepted = accepts_gzip(accept_encoding);
        if path == "/" {
            return served(&self.page, gzip_accepted, REVALIDATE);
        }
        let asset = path
            .strip_prefix(ASSETS_PATH)
            .and_then(|rest| rest.split_once('/'))
            .filter(|(version, _)| *version == self.version)
            .and_then(|(_, name)| self.assets.iter().find(|(known, _)| *known == name));
        match asset {
            Some((_, prepared)) => served(prepared, gzip_accepted, IMMUTABLE),
            None => not_found(),
        }
    }
}

fn served(
    prepared: &Prepared,
    gzip_accepted: bool,
    cache_control: &'static str,
) -> Response<Vec<u8>> {
    let (body, compressed) = prepared.body(gzip_accepted);
    let mut response = Response::new(body.to_vec());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prepared.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if prepared.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if compressed {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    with_security_headers(response)
}

fn not_found() -> Response<Vec<u8>> {
    let mut response = Response::new(b"Not found\n".to_vec());
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    with_security_headers(response)
}

/// The headers every dashboard answer carries.
fn with_security_headers(mut response: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // For browsers that predate frame-ancestors.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip`, `x-gzip` or `*`, with a non-zero
/// quality; an explicit `gzip;q=0` refuses it even after `*`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(value) = accept_encoding else {
        return false;
    };
    let mut wildcard = false;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())
                    .flatten()
            })
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return quality > 0.0,
            "*" => wildcard = quality > 0.0,
            _ => {}
        }
    }
    wildcard
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read as _;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn accept_encoding_is_read_with_qualities() {
        assert!(accepts_gzip(Some("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("br, identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn the_page_links_only_assets_of_its_own_version() {
        let dashboard = dashboard();
        let page = dashboard.page_html();
        assert!(!page.contains(ASSET_BASE_PLACEHOLDER));
        let paths = dashboard.asset_paths();
        let linked: std::collections::BTreeSet<&str> = page
            .split('"')
            .filter(|part| part.starts_with(ASSETS_PATH))
            .collect();
        for reference in &linked {
            assert!(
                paths.iter().any(|path| path == reference),
                "the page links {reference}, which is not an asset"
            );
        }
        // Every asset: the stylesheet, the icon and every module (preloaded, so the browser
        // fetches them in parallel rather than one import level at a time).
        assert_eq!(linked.len(), paths.len(), "{page}");
        // No inline script or style in the page: the CSP would refuse them anyway.
        assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains("style="));
    }

    #[test]
    fn assets_are_served_gzipped_with_long_cache_and_security_headers() {
        let dashboard = dashboard();
        for path in dashboard.asset_paths() {
            let response = dashboard.respond(&path, Some("gzip, br"));
            assert_eq!(response.status(), 200, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE, "{path}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            let name = path.rsplit('/').next().unwrap();
            let source = SOURCES.iter().find(|s| s.name == name).unwrap();
            let body = if headers.get(header::CONTENT_ENCODING).is_some() {
                assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
                assert!(response.body().len() < source.bytes.len());
                gunzip(response.body())
            } else {
                response.body().clone()
            };
            assert_eq!(body, source.bytes, "{path}");
            // Without gzip in Accept-Encoding, the identity bytes.
            let plain = dashboard.respond(&path, Some("identity"));
            assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
            assert_eq!(plain.body(), source.bytes);
        }
    }

    #[test]
    fn the_page_is_revalidated_and_framing_is_refused() {
        let response = dashboard().respond("/", Some("gzip"));
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(
            String::from_utf8(gunzip(response.body())).unwrap(),
            dashboard().page_html()
        );
    }

    #[test]
    fn unknown_paths_and_other_versions_are_not_found() {
        let dashboard = dashboard();
        for path in [
            "/index.html",
            "/assets/",
            "/assets/app.js",
            "/assets/000000000000/app.js",
            &format!("/assets/{}/missing.js", dashboard.version()),
            &format!("/assets/{}/../app.js", dashboard.version()),
        ] {
            let response = dashboard.respond(path, Some("gzip"));
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
    }

    #[test]
    fn everything_the_page_loads_is_under_200_kb_compressed() {
        // The browser suite measures the first load as the browser sees it; this bound holds
        // the sum of every file, compressed as served, without a browser.
        let dashboard = dashboard();
        let total: usize = std::iter::once("/".to_owned())
            .chain(dashboard.asset_paths())
            .map(|path| dashboard.respond(&path, Some("gzip")).body().len())
            .sum();
        assert!(total < 200 * 1024, "{total} bytes");
    }
}
