//! CORS for the dashboard's calls to the command API: an explicit list of origins, never `*`, never credentials.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// `raw` as an absolute http(s) URL with a host, and nothing but an address: no query, fragment or credentials.
/// What a browser is pointed at (the command API's URL) and, with no path, an origin.
pub fn http_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{raw:?} must have no query, fragment or credentials"));
    }
    Ok(url)
}

/// `raw` as an origin (`scheme://host[:port]`, http or https, nothing after), as browsers send it.
pub fn origin(raw: &str) -> Result<String, String> {
    let url = http_url(raw.trim().trim_end_matches('/'))?;
    if url.path() != "/" {
        return Err(format!("{raw:?} is not an origin: want http(s)://host[:port] with no path"));
    }
    Ok(url.origin().ascii_serialization())
}

/// The layer answering preflights and marking answers for `origins` (already checked by [`origin`]); `None` when
/// the list is empty (no cross-origin caller is allowed, and no CORS header is sent).
pub fn allow(origins: &[String]) -> Option<CorsLayer> {
    let values: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if values.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::IF_MATCH])
            .expose_headers([header::ETAG, header::LOCATION, HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_origins_then_only_scheme_host_and_port_are_taken() {
        assert_eq!(origin("http://127.0.0.1:3001").unwrap(), "http://127.0.0.1:3001");
        assert_eq!(origin("https://Dash.Example.com/").unwrap(), "https://dash.example.com");
        assert_eq!(origin("https://example.com:443").unwrap(), "https://example.com");
        for bad in ["*", "null", "example.com", "ftp://example.com", "https://example.com/app", "https://u@example.com"]
        {
            assert!(origin(bad).is_err(), "{bad} refused");
        }
        assert!(allow(&[]).is_none());
    }
}
