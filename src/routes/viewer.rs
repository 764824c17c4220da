//! The built-in HTML viewers: one static page that follows a log with EventSource, and one that
//! shows several logs merged in time order over one EventSource (`merged.html`).
//!
//! Everything a page needs (HTML, CSS, JS) is in its `.html` file, embedded at compile time: no
//! CDN, no build step, works offline. The pages read the logs from their own URL, so the bytes are
//! the same for every log and no request text is ever written into the HTML.

use warp::http::{header, HeaderValue};
use warp::reply::{Reply, Response};
use warp::Filter;

use super::params::Segment;

const PAGE: &str = include_str!("viewer.html");
const MERGED: &str = include_str!("merged.html");

/// Defence in depth: the page inserts log text only as text nodes, and even if markup slipped in it
/// could load nothing and talk to no one but this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// GET /logs/{type}/{id}
pub fn page() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("logs" / Segment / Segment).and(warp::get()).map(|_: Segment, _: Segment| html_page(PAGE))
}

/// GET /logs?log=T:I&log=T:I
pub fn merged_page() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("logs").and(warp::get()).map(|| html_page(MERGED))
}

/// One of the built-in pages, with the headers that keep it self-contained.
pub(super) fn html_page(page: &'static str) -> Response {
    let mut response = warp::reply::html(page).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // An `?access_token=` in the page address must not leak to other sites.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
