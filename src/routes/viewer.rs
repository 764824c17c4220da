//! The built-in HTML viewer: one static page that follows a log with EventSource.

use warp::reply::{Reply, Response};
use warp::Filter;

use super::params::Segment;

const PAGE: &str = include_str!("viewer.html");

/// GET /logs/{type}/{id}
pub fn page() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    // The page reads type and id from its own URL, so the HTML is the same for every log and
    // no request text is ever written into it.
    warp::path!("logs" / Segment / Segment).and(warp::get()).map(|_: Segment, _: Segment| {
        let reply = warp::reply::html(PAGE);
        warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
    })
}
