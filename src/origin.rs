//! Cross-site request refusal (CSRF) for state-changing requests.
//!
//! A browser attaches cookies to a cross-site "simple" request (a form POST, or `fetch` with
//! `Content-Type: text/plain`) without a preflight, so CORS alone does not stop a foreign page
//! from appending with the victim's cookie. A state-changing request (any method but GET, HEAD
//! and OPTIONS) is therefore refused when the browser says it comes from elsewhere:
//!
//! - an `Origin` in `cors.allowed_origins` is allowed;
//! - otherwise `Sec-Fetch-Site` other than `same-origin` or `none` is refused;
//! - otherwise an `Origin` whose host\[:port\] is not the request's `Host` (scheme http or https)
//!   is refused, and so is `Origin: null`;
//! - a request with neither header (curl, `sse-logs push`, any non-browser client) is allowed.
//!
//! Reads are left to CORS: a foreign page may *start* a GET (EventSource, `<img>`), but cannot
//! read the bytes of the answer.

use warp::http::{HeaderMap, Method};

/// Why a request was refused, or `None` when it may go on. Pure: headers in, verdict out.
pub fn cross_site_refusal(
    method: &Method,
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Option<String> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    decide(method, header("origin"), header("sec-fetch-site"), header("host"), allowed_origins)
}

/// The decision on plain header values (`None` when the header is absent).
pub fn decide(
    method: &Method,
    origin: Option<&str>,
    fetch_site: Option<&str>,
    host: Option<&str>,
    allowed_origins: &[String],
) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let origin = origin.map(str::trim);
    if origin.is_some_and(|o| allowed_origins.iter().any(|a| same_origin_text(a, o))) {
        return None;
    }
    match fetch_site.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("same-origin") | Some("none") => {}
        Some(_) => return Some("cross-site requests may not change a log".into()),
    }
    match origin {
        None => None,
        Some(origin) if host.is_some_and(|host| origin_is_host(origin, host)) => None,
        Some(_) => Some("requests from another origin may not change a log (cors.allowed_origins)".into()),
    }
}

/// Two serialized origins compared the way browsers send them (case-insensitive, no trailing `/`).
/// Whether a request comes from this service's own origin: no `Origin` at all (not a
/// cross-origin browser request), or one naming the `Host` it was sent to.
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin_is_host(origin.trim(), host),
        (Some(_), None) => false,
    }
}

fn same_origin_text(a: &str, b: &str) -> bool {
    a.trim_end_matches('/').eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Is `origin` (`scheme://host[:port]`) the origin whose authority is `host` (the `Host` header)?
/// Default ports (80 for http, 443 for https) are the same as none.
fn origin_is_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return false;
    }
    let normalize = |authority: &str| {
        let authority = authority.trim().to_ascii_lowercase();
        match split_port(&authority) {
            Some((name, port)) if port == default_port => name.to_owned(),
            _ => authority,
        }
    };
    normalize(authority) == normalize(host)
}

/// `host:port` into its parts; IPv6 literals (`[::1]:8080`) keep their brackets.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    let (name, port) = authority.rsplit_once(':')?;
    (!name.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':'))
        .then_some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(origin: Option<&str>, site: Option<&str>, host: &str, allowed: &[&str]) -> bool {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        decide(&Method::POST, origin, site, Some(host), &allowed).is_none()
    }

    #[test]
    fn same_origin_with_and_without_port_is_allowed() {
        assert!(post(Some("http://logs.example.com"), None, "logs.example.com", &[]));
        assert!(post(Some("https://logs.example.com"), None, "logs.example.com", &[]));
        assert!(post(Some("http://127.0.0.1:8080"), None, "127.0.0.1:8080", &[]));
        assert!(post(Some("https://Logs.Example.com:443"), None, "logs.example.com", &[]));
        assert!(post(Some("http://logs.example.com"), None, "logs.example.com:80", &[]));
        assert!(post(Some("http://[::1]:8080"), Some("same-origin"), "[::1]:8080", &[]));
        assert!(!post(Some("http://127.0.0.1:8081"), None, "127.0.0.1:8080", &[]));
        assert!(!post(Some("https://logs.example.com"), None, "logs.example.com:80", &[]));
        assert!(!post(Some("ftp://logs.example.com"), None, "logs.example.com", &[]));
        assert!(!post(Some("http://user@logs.example.com"), None, "logs.example.com", &[]));
    }

    #[test]
    fn allowed_origins_are_allowed_and_others_refused() {
        let allowed = ["https://ci.example.com"];
        assert!(post(Some("https://ci.example.com"), Some("cross-site"), "logs.example.com", &allowed));
        assert!(post(Some("https://CI.example.com/"), None, "logs.example.com", &allowed));
        assert!(!post(Some("https://evil.example.net"), None, "logs.example.com", &allowed));
        assert!(!post(Some("https://evil.example.net"), None, "logs.example.com", &[]));
        assert!(!post(Some("https://logs.example.com.evil.net"), None, "logs.example.com", &[]));
    }

    #[test]
    fn a_null_or_garbage_origin_is_refused() {
        assert!(!post(Some("null"), None, "logs.example.com", &[]));
        assert!(!post(Some(""), None, "logs.example.com", &[]));
        assert!(!post(Some("logs.example.com"), None, "logs.example.com", &[]));
        assert!(!post(Some("http://"), None, "", &[]));
    }

    #[test]
    fn sec_fetch_site_cross_or_same_site_is_refused_without_an_allowed_origin() {
        assert!(!post(None, Some("cross-site"), "logs.example.com", &[]));
        assert!(!post(None, Some("same-site"), "logs.example.com", &[]));
        assert!(!post(Some("http://logs.example.com"), Some("cross-site"), "logs.example.com", &[]));
        assert!(!post(None, Some("something-new"), "logs.example.com", &[]));
        assert!(post(None, Some("same-origin"), "logs.example.com", &[]));
        assert!(post(None, Some("none"), "logs.example.com", &[]));
    }

    #[test]
    fn requests_without_either_header_are_allowed() {
        assert!(post(None, None, "logs.example.com", &[]));
        assert!(decide(&Method::POST, None, None, None, &[]).is_none());
    }

    #[test]
    fn only_state_changing_methods_are_checked() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(
                decide(&method, Some("https://evil.example.net"), Some("cross-site"), None, &[]).is_none()
            );
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(decide(&method, Some("https://evil.example.net"), None, Some("h"), &[]).is_some());
        }
    }

    #[test]
    fn header_maps_are_read_as_the_decision_expects() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:9000".parse().unwrap());
        assert!(cross_site_refusal(&Method::POST, &headers, &[]).is_none());
        headers.insert("origin", "http://127.0.0.1:9000".parse().unwrap());
        assert!(cross_site_refusal(&Method::POST, &headers, &[]).is_none());
        headers.insert("origin", "https://evil.example.net".parse().unwrap());
        assert!(cross_site_refusal(&Method::POST, &headers, &[]).is_some());
        headers.insert("origin", warp::http::HeaderValue::from_bytes(b"http://\xff").unwrap());
        assert!(cross_site_refusal(&Method::POST, &headers, &[]).is_some());
    }
}
