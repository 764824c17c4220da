//! A warp app with its own `/hello` route and sse-logs mounted under `/logs/`, behind the app's
//! own access rule. Run it against a replica set:
//!
//! ```sh
//! MONGODB_URI='mongodb://127.0.0.1:27017/?replicaSet=rs0' cargo run --example embed_in_warp
//! curl -N -H 'X-Team: platform' 'http://127.0.0.1:3030/logs/api/v1/logs/deploy/1/stream'
//! ```

use sse_logs::access::{Access, AccessRequest, Action};
use sse_logs::LogStreams;
use warp::Filter;

/// The app's routes; the integration test serves exactly this filter.
pub fn app(
    streams: &LogStreams,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let hello = warp::path!("hello").map(|| "hello from the host app");
    let logs = warp::path("logs").and(streams.filter());
    hello.or(logs)
}

/// The host's rule: members of the platform team may read any log; nobody appends here.
pub fn platform_team_only(request: &AccessRequest<'_>) -> Access {
    match (request.action, request.headers.get("x-team")) {
        (Action::Write, _) => Access::Forbidden("logs are read-only in this app".into()),
        (Action::Read, Some(team)) if team == "platform" => Access::Allow,
        (Action::Read, Some(_)) => Access::Forbidden("this log belongs to the platform team".into()),
        (Action::Read, None) => Access::Unauthorized("send an X-Team header".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let streams = LogStreams::builder(client.database("popop").collection("sse_logs"))
        .access(platform_team_only)
        .shutdown_on(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .build();
    warp::serve(app(&streams)).run(([127, 0, 0, 1], 3030)).await;
    Ok(())
}
