//! The dashboard at `GET /`: one page and its assets, all served from this binary (`assets/dashboard`, uPlot
//! vendored there with its licence), under a Content-Security-Policy that lets the page load nothing but its own
//! files and talk to nothing but this API and the command API. The page learns where the command API is, and how
//! calls are authorized, from `dashboard/config.json`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use web::assets::{Asset, respond};

use crate::error::QueryError;
use crate::settings::Dashboard;

/// An embedded file of `assets/dashboard`, gzipped by `build.rs`.
macro_rules! asset {
    ($name:literal, $kind:expr) => {
        ($name, Asset { content_type: $kind, gzip: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".gz")) })
    };
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8").1;

/// The page's assets by name.
const ASSETS: &[(&str, Asset)] = &[
    asset!("app.js", JS),
    asset!("views.mjs", JS),
    asset!("logic.mjs", JS),
    asset!("app.css", CSS),
    asset!("uPlot.iife.min.js", JS),
    asset!("uPlot.min.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

#[derive(Clone)]
struct Page {
    csp: HeaderValue,
    config: Config,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    command_api: Option<String>,
    auth: &'static str,
}

/// The Content-Security-Policy of every dashboard answer: scripts, styles and images from this API only, calls to
/// this API and `command_api`'s origin only, no inline script or style, no frames, no forms posted anywhere.
pub fn content_security_policy(command_api: Option<&str>) -> String {
    let command = command_api
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'{command}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `GET /` and `GET /dashboard/{asset}`.
pub fn routes<S: Clone + Send + Sync + 'static>(dashboard: &Dashboard) -> Router<S> {
    let csp = content_security_policy(dashboard.command_api.as_deref());
    let page = Page {
        csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
        config: Config { command_api: dashboard.command_api.clone(), auth: dashboard.auth.as_str() },
    };
    Router::new().route("/", get(index)).route("/dashboard/{asset}", get(asset)).with_state(page)
}

/// The security headers every dashboard answer carries.
fn secured(page: &Page, mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, page.csp.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn index(State(page): State<Page>, headers: HeaderMap) -> Response {
    // The page changes with the binary; revalidated each time so a new deployment shows at once.
    secured(&page, respond(&INDEX, &headers, "no-cache"))
}

async fn asset(State(page): State<Page>, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, QueryError> {
    if name == "config.json" {
        let mut response = axum::Json(&page.config).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(secured(&page, response));
    }
    let (_, asset) = ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| QueryError::NotFound(format!("no dashboard asset {name:?}")))?;
    Ok(secured(&page, respond(asset, &headers, "no-cache")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_command_api_then_the_policy_allows_its_origin_and_nothing_else_outside() {
        let csp = content_security_policy(Some("https://abc.execute-api.eu-west-1.amazonaws.com/prod"));
        assert!(csp.contains("connect-src 'self' https://abc.execute-api.eu-west-1.amazonaws.com;"), "{csp}");
        assert!(csp.contains("script-src 'self';") && csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe") && !csp.contains('*'), "no inline code, no wildcard: {csp}");
        let local = content_security_policy(Some("http://127.0.0.1:3000"));
        assert!(local.contains("connect-src 'self' http://127.0.0.1:3000;"), "{local}");
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let index = include_str!("../assets/dashboard/index.html");
        for name in ["app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css", "icon.svg"] {
            assert!(index.contains(&format!("dashboard/{name}")), "index.html loads {name}");
            assert!(ASSETS.iter().any(|(n, _)| *n == name), "{name} is served");
        }
        let app = include_str!("../assets/dashboard/app.js");
        for module in ["./views.mjs", "./logic.mjs"] {
            assert!(app.contains(module), "app.js imports {module}");
            assert!(ASSETS.iter().any(|(n, _)| *n == &module[2..]), "{module} is served");
        }
        assert!(!index.contains("<script>") && !index.contains("style="), "no inline script or style");
    }
}
