//! The route table: the single source of method + path -> handler -> Lambda function. The SAM
//! template, the OpenAPI document and the local runner are all checked against it.

use std::future::Future;
use std::pin::Pin;

use lambda_http::{Body, Request, Response};

use crate::handlers;
use crate::state::ApiState;

/// A handler: a plain async function over the shared state and a request.
pub type Handler =
    for<'a> fn(&'a ApiState, Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// Which key a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The operator's admin key.
    Admin,
    /// An account's API key.
    Account,
}

/// One API route.
#[derive(Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template with `{name}` parameters, as in API Gateway.
    pub path: &'static str,
    /// Name of the Lambda function serving it: its `EDGECERT_FUNCTION` in template.yaml (the
    /// one binary of `functions/lambda` serves the function that variable names).
    pub function: &'static str,
    /// Required key.
    pub access: Access,
    /// The handler.
    pub handler: Handler,
}

macro_rules! route {
    ($method:literal, $path:literal, $function:literal, $access:ident, $module:ident) => {
        Route {
            method: $method,
            path: $path,
            function: $function,
            access: Access::$access,
            handler: |state, request| Box::pin(handlers::$module::handle(state, request)),
        }
    };
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    route!(
        "POST",
        "/v1/accounts",
        "accounts-create",
        Admin,
        accounts_create
    ),
    route!("GET", "/v1/accounts", "accounts-list", Admin, accounts_list),
    route!(
        "PATCH",
        "/v1/accounts/{id}",
        "accounts-update",
        Admin,
        accounts_update
    ),
    route!("GET", "/v1/limits", "limits-get", Account, limits_get),
    route!(
        "POST",
        "/v1/domains",
        "domains-create",
        Account,
        domains_create
    ),
    route!("GET", "/v1/domains", "domains-list", Account, domains_list),
    route!(
        "GET",
        "/v1/domains/{id}",
        "domains-get",
        Account,
        domains_get
    ),
    route!(
        "PATCH",
        "/v1/domains/{id}",
        "domains-update",
        Account,
        domains_update
    ),
    route!(
        "DELETE",
        "/v1/domains/{id}",
        "domains-delete",
        Account,
        domains_delete
    ),
    route!(
        "GET",
        "/v1/domains/{id}/dns",
        "domains-dns",
        Account,
        domains_dns
    ),
    route!(
        "POST",
        "/v1/domains/{id}/verify",
        "domains-verify",
        Account,
        domains_verify
    ),
    route!(
        "GET",
        "/v1/domains/{id}/ssl",
        "domains-ssl",
        Account,
        domains_ssl
    ),
    route!(
        "POST",
        "/v1/domains/{id}/ssl/nudge",
        "domains-nudge",
        Account,
        domains_nudge
    ),
    route!("POST", "/v1/zones", "zones-create", Account, zones_create),
    route!("GET", "/v1/zones", "zones-list", Account, zones_list),
    route!(
        "GET",
        "/v1/zones/verification",
        "zones-verification",
        Account,
        zones_verification
    ),
    route!(
        "DELETE",
        "/v1/zones/{id}",
        "zones-delete",
        Account,
        zones_delete
    ),
    route!(
        "POST",
        "/v1/certificates",
        "certificates-create",
        Account,
        certificates_create
    ),
    route!(
        "GET",
        "/v1/certificates",
        "certificates-list",
        Account,
        certificates_list
    ),
    route!(
        "GET",
        "/v1/certificates/{id}",
        "certificates-get",
        Account,
        certificates_get
    ),
    route!(
        "GET",
        "/v1/certificates/{id}/download",
        "certificates-download",
        Account,
        certificates_download
    ),
    route!(
        "POST",
        "/v1/certificates/{id}/renew",
        "certificates-renew",
        Account,
        certificates_renew
    ),
    route!(
        "PATCH",
        "/v1/certificates/{id}",
        "certificates-update",
        Account,
        certificates_update
    ),
    route!(
        "DELETE",
        "/v1/certificates/{id}",
        "certificates-delete",
        Account,
        certificates_delete
    ),
    route!(
        "GET",
        "/v1/certificates/{id}/logs",
        "certificates-logs",
        Account,
        certificates_logs
    ),
];

/// Finds the route for a method and a concrete path, with the path's parameters.
pub fn find(method: &str, path: &str) -> Option<(&'static Route, Vec<(String, String)>)> {
    ROUTES
        .iter()
        .filter(|route| route.method.eq_ignore_ascii_case(method))
        .find_map(|route| Some((route, match_path(route.path, path)?)))
}

/// Matches a concrete path against a path template as API Gateway does: `{name}` takes one
/// non-empty segment, a final greedy `{name+}` one or more; the parameters, or `None`.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let pattern: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let mut parameters = Vec::new();
    for (index, expected) in pattern.iter().enumerate() {
        let name = expected
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'));
        if let Some(greedy) = name.and_then(|name| name.strip_suffix('+')) {
            let rest = segments.get(index..).unwrap_or_default();
            if index + 1 != pattern.len() || rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
                return None;
            }
            parameters.push((greedy.to_owned(), rest.join("/")));
            return Some(parameters);
        }
        let actual = segments.get(index)?;
        match name {
            Some(name) if !actual.is_empty() => {
                parameters.push((name.to_owned(), (*actual).to_owned()))
            }
            Some(_) => return None,
            None if expected == actual => {}
            None => return None,
        }
    }
    (segments.len() == pattern.len()).then_some(parameters)
}

/// One route of the web dashboard: answered without a key, by the dashboard's one function
/// ([`DASHBOARD_FUNCTION`]), with HTML, CSS or JavaScript rather than JSON.
#[derive(Debug, Clone, Copy)]
pub struct DashboardRoute {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, as in API Gateway (`{proxy+}` is greedy).
    pub path: &'static str,
    /// Its `operationId` in openapi.yaml (the function serves several routes, and operation
    /// ids are unique).
    pub operation: &'static str,
}

/// The Lambda binary (`src/bin/dashboard.rs`) serving every [`DASHBOARD_ROUTES`] route.
pub const DASHBOARD_FUNCTION: &str = "dashboard";

/// The dashboard's routes: the page, and its versioned assets (`edgecert_dashboard`).
pub const DASHBOARD_ROUTES: &[DashboardRoute] = &[
    DashboardRoute {
        method: "GET",
        path: "/",
        operation: "dashboard-page",
    },
    DashboardRoute {
        method: "GET",
        path: "/assets/{proxy+}",
        operation: "dashboard-asset",
    },
];

/// The dashboard route for a method and a concrete path.
pub fn find_dashboard(method: &str, path: &str) -> Option<&'static DashboardRoute> {
    DASHBOARD_ROUTES.iter().find(|route| {
        route.method.eq_ignore_ascii_case(method)
            && (path == route.path || match_path(route.path, path).is_some())
    })
}

/// Whether any route has this path (to answer 405 rather than 404 for a wrong method).
pub fn path_exists(path: &str) -> bool {
    ["GET", "POST", "PATCH", "DELETE", "PUT"]
        .iter()
        .any(|method| find(method, path).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_functions_distinct() {
        let mut keys: Vec<_> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROUTES.len());
        let mut functions: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        functions.sort();
        functions.dedup();
        assert_eq!(functions.len(), ROUTES.len());
    }

    #[test]
    fn paths_match_with_parameters() {
        let (route, parameters) = find("POST", "/v1/domains/dom_abc/ssl/nudge").unwrap();
        assert_eq!(route.function, "domains-nudge");
        assert_eq!(parameters, vec![("id".to_owned(), "dom_abc".to_owned())]);
        assert_eq!(
            find("GET", "/v1/domains/").unwrap().0.function,
            "domains-list"
        );
        assert!(find("PUT", "/v1/domains").is_none());
        assert!(path_exists("/v1/domains"));
        assert!(find("GET", "/v1/domains//ssl").is_none());
        // A fixed segment is not taken for a zone id.
        assert_eq!(
            find("GET", "/v1/zones/verification").unwrap().0.function,
            "zones-verification"
        );
        assert_eq!(
            find("DELETE", "/v1/zones/verification").unwrap().0.function,
            "zones-delete"
        );
        assert!(find("GET", "/v1/domains/dom_abc/ssl/extra").is_none());
        assert!(find("GET", "/v1").is_none());
    }

    #[test]
    fn dashboard_paths_match_greedily_under_assets_only() {
        assert_eq!(
            find_dashboard("GET", "/").unwrap().operation,
            "dashboard-page"
        );
        for path in ["/assets/0123abcd/app.js", "/assets/x"] {
            assert_eq!(
                find_dashboard("GET", path).unwrap().operation,
                "dashboard-asset",
                "{path}"
            );
        }
        assert_eq!(
            match_path("/assets/{proxy+}", "/assets/v1/app.js"),
            Some(vec![("proxy".to_owned(), "v1/app.js".to_owned())])
        );
        for path in [
            "/assets",
            "/assets/",
            "/assets//x",
            "/index.html",
            "/v1/domains",
        ] {
            assert!(find_dashboard("GET", path).is_none(), "{path}");
        }
        assert!(find_dashboard("POST", "/").is_none());
        // No API route is a dashboard route, and the other way round.
        for route in ROUTES {
            assert!(find_dashboard(route.method, route.path).is_none());
        }
        assert!(find("GET", "/").is_none());
    }
}
