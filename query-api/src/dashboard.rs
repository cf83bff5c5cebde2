//! The dashboard at `GET /`: one page and its assets, all served from this binary (`assets/dashboard`, uPlot
//! vendored there with its licence), under a Content-Security-Policy that lets the page load nothing but its own
//! files and talk to nothing but this API and the command API. The page learns where the command API is, and how
//! calls are authorized, from `dashboard/config.json`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::error::QueryError;
use crate::settings::Dashboard;

const INDEX: &str = include_str!("../assets/dashboard/index.html");

/// The page's assets by name: content type and bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../assets/dashboard/app.js")),
    ("views.mjs", JS, include_str!("../assets/dashboard/views.mjs")),
    ("logic.mjs", JS, include_str!("../assets/dashboard/logic.mjs")),
    ("app.css", CSS, include_str!("../assets/dashboard/app.css")),
    ("uPlot.iife.min.js", JS, include_str!("../assets/dashboard/uPlot.iife.min.js")),
    ("uPlot.min.css", CSS, include_str!("../assets/dashboard/uPlot.min.css")),
    ("icon.svg", "image/svg+xml", include_str!("../assets/dashboard/icon.svg")),
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

fn headed(page: &Page, kind: &str, cache: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("text/plain")));
    h.insert(header::CONTENT_SECURITY_POLICY, page.csp.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn index(State(page): State<Page>) -> Response {
    // The page changes with the binary; revalidated each time so a new deployment shows at once.
    headed(&page, "text/html; charset=utf-8", "no-cache", INDEX)
}

async fn asset(State(page): State<Page>, Path(name): Path<String>) -> Result<Response, QueryError> {
    if name == "config.json" {
        let body = serde_json::to_vec(&page.config).map_err(|e| QueryError::Internal(e.to_string()))?;
        return Ok(headed(&page, "application/json", "no-store", body));
    }
    let (_, kind, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| QueryError::NotFound(format!("no dashboard asset {name:?}")))?;
    Ok(headed(&page, kind, "no-cache", *body))
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
        for name in ["app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css", "icon.svg"] {
            assert!(INDEX.contains(&format!("dashboard/{name}")), "index.html loads {name}");
        }
        let app = ASSETS.iter().find(|(n, _, _)| *n == "app.js").map(|a| a.2).unwrap_or_default();
        for module in ["./views.mjs", "./logic.mjs"] {
            assert!(app.contains(module), "app.js imports {module}");
        }
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="), "no inline script or style");
    }
}
