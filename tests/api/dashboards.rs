//! The artefacts operators use stay true to the code: the Grafana dashboard and the Prometheus
//! alerts query only metrics the service exports (a renamed metric cannot leave a panel or an
//! alert silently empty), and docs/openapi.json is the document the service serves.
//! (`promtool check rules`/`test rules` and the schemathesis fuzzing run in scripts/test.sh.)

use std::collections::BTreeSet;

use crate::helpers::spawn_app;

/// Every `sse_logs_*` identifier in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sse_logs_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// What `/metrics` exports, histograms with their `_bucket`, `_sum` and `_count` series.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = declaration.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_service_exports() {
    let app = spawn_app().await;
    // As Prometheus sees it: over HTTP, after the scrapes before it were counted.
    let scrape = || async { app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    scrape().await;
    let exported = exported(&scrape().await);
    let root = env!("CARGO_MANIFEST_DIR");
    for file in
        ["deploy/grafana/sse-logs.json", "deploy/prometheus/alerts.yml", "deploy/prometheus/alerts.test.yml"]
    {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 4, "{file} queries sse-logs metrics");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} queries metrics the service does not export: {unknown:?}");
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/sse-logs.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(
        panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())),
        "every panel queries"
    );
}

#[tokio::test]
async fn docs_openapi_json_is_the_document_the_service_serves() {
    let app = spawn_app().await;
    let served: serde_json::Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
}
