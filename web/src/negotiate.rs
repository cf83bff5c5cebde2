//! Content negotiation as far as the APIs need it: whether a request's `Accept` or `Accept-Encoding` takes a value.

use axum::http::{HeaderMap, HeaderName};

/// Whether `request`'s `header` (a comma-separated list, each entry with optional `;` parameters) names one of
/// `wanted` (case-insensitive) without refusing it with `q=0`.
pub fn accepts(request: &HeaderMap, header: HeaderName, wanted: &[&str]) -> bool {
    request.get_all(header).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|entry| {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts
            .any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        wanted.iter().any(|w| name.eq_ignore_ascii_case(w)) && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn with(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn given_a_list_then_a_wanted_value_is_taken_unless_refused() {
        let gzip = ["gzip", "x-gzip", "*"];
        assert!(accepts(&with(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd"), header::ACCEPT_ENCODING, &gzip));
        assert!(accepts(&with(header::ACCEPT_ENCODING, "br;q=1.0, GZIP;q=0.8"), header::ACCEPT_ENCODING, &gzip));
        assert!(accepts(&with(header::ACCEPT_ENCODING, "*"), header::ACCEPT_ENCODING, &gzip));
        assert!(!accepts(&with(header::ACCEPT_ENCODING, "gzip;q=0"), header::ACCEPT_ENCODING, &gzip));
        assert!(!accepts(&with(header::ACCEPT_ENCODING, "identity"), header::ACCEPT_ENCODING, &gzip));
        assert!(!accepts(&HeaderMap::new(), header::ACCEPT_ENCODING, &gzip));
        let json = ["application/json"];
        assert!(accepts(&with(header::ACCEPT, "application/json, text/csv;q=0.9"), header::ACCEPT, &json));
        assert!(!accepts(&with(header::ACCEPT, "text/csv, application/json;q=0"), header::ACCEPT, &json));
        assert!(!accepts(&with(header::ACCEPT, "*/*"), header::ACCEPT, &json), "only when asked by name");
    }
}
