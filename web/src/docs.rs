//! `/docs`: Swagger UI over the API's own `/openapi.json`, served from assets vendored in this crate (Swagger UI
//! 5.32.0; see `assets/README.md`), so the page works without a CDN. Paths are relative, so the page also works
//! behind an API Gateway stage prefix.

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;

use crate::assets::{Asset, respond};

/// Embedded gzipped (`build.rs`): 1.5 MB of script is ~0.45 MB compressed.
const BUNDLE: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    gzip: include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js.gz")),
};
const CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    gzip: include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css.gz")),
};
/// The assets change only with this binary.
const CACHED: &str = "public, max-age=86400";

fn page(title: &str) -> String {
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true }});
</script>
</body>
</html>
"##
    )
}

/// `/docs` and its two assets, for an API whose document is at `/openapi.json`.
pub fn routes<S: Clone + Send + Sync + 'static>(title: &'static str) -> Router<S> {
    Router::new()
        .route("/docs", get(move || async move { Html(page(title)) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|headers: HeaderMap| async move { respond(&BUNDLE, &headers, CACHED) }),
        )
        .route("/docs/swagger-ui.css", get(|headers: HeaderMap| async move { respond(&CSS, &headers, CACHED) }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_docs_page_and_its_assets_are_served_from_this_binary() {
        let app: axum::Router = super::routes("test API");
        let get = |uri: &'static str| {
            let app = app.clone();
            async move {
                let r = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
                let status = r.status();
                let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
                (status, kind, r.into_body().collect().await.unwrap().to_bytes())
            }
        };
        let (status, kind, html) = get("/docs").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/html; charset=utf-8"));
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(html.contains(r#"url: "openapi.json""#) && !html.contains("https://"), "no CDN: {html}");
        let (status, kind, js) = get("/docs/swagger-ui-bundle.js").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/javascript; charset=utf-8"));
        assert!(js.len() > 1_000_000 && js.starts_with(b"/*"), "the vendored bundle");
        let (status, kind, _) = get("/docs/swagger-ui.css").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/css; charset=utf-8"));
    }
}
