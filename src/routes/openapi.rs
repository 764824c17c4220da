//! The API description (OpenAPI 3.1), written next to the routes it describes and served at
//! `GET /api/v1/openapi.json`. `docs/openapi.json` is this document; a test fails when it is
//! stale, and CI fuzzes the live service against it with schemathesis.

use std::sync::OnceLock;

use serde_json::{json, Value};
use warp::reply::{Reply, Response};
use warp::Filter;

/// What a path segment or text parameter may hold: anything but control characters (refused 400).
const NO_CONTROLS: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// GET /api/v1/openapi.json
pub fn route() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&document()).into_response())
}

/// The methods the document lists for a request path (`{type}` and `{id}` are one segment each),
/// for the `Allow` header of a 405; `None` when no path matches.
pub(crate) fn allowed_methods(path: &str) -> Option<String> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let paths = DOCUMENT.get_or_init(document)["paths"].as_object()?;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (_, item) = paths.iter().find(|(template, _)| {
        let pattern: Vec<&str> = template.trim_end_matches('/').split('/').collect();
        pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
    })?;
    let methods: Vec<String> = item.as_object()?.keys().map(|m| m.to_ascii_uppercase()).collect();
    Some(methods.join(", "))
}

/// The whole document.
pub(crate) fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sse-logs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Log lines stored in MongoDB, streamed to browsers over Server-Sent Events. \
                Every error is `{\"error\":{\"code\",\"message\"}}`. In `auth.mode = token` every log route needs a \
                token (Authorization: Bearer, the `sse_logs_token` cookie or `access_token`); in `none` mode none.",
            "license": { "name": "MIT", "identifier": "MIT" },
        },
        "security": [{}, { "bearer": [] }, { "cookie": [] }, { "query": [] }],
        "paths": paths(),
        "components": components(),
    })
}

fn paths() -> Value {
    json!({
        "/api/v1/sse/logs/": { "get": {
            "operationId": "seedStream",
            "summary": "Follow a log (the seed-compatible route)",
            "description": "The same stream as `/api/v1/logs/{type}/{id}/stream` with `from=num`, in text format.",
            "parameters": [
                query("type", true, text(), "The log's type."),
                query("id", true, text(), "The log's id."),
                query("num", false, count(), "Lines the client already has."),
                last_event_id(),
            ],
            "responses": stream_responses(),
        }},
        "/api/v1/logs/{type}/{id}/stream": { "get": {
            "operationId": "stream",
            "summary": "Follow a log: its backlog, then every new line until [DONE]",
            "description": "First `retry: <ms>`; then per line `id: k` and `data: <line>` (one `data:` per piece of a line \
                split on CR LF, LF or CR), and at `[DONE]` the same with `data: [DONE]`, after which the response ends. \
                With `format=json` each data is `{\"n\":k,\"line\":\"...\",\"t\":ms}` (t: the line's time) and the end is `event: done` with \
                `{\"n\":k,\"outcome\":\"succeeded\"|\"failed\"|\"cancelled\"|null,\"exit_code\":integer|null}` (null: not said by the log's `[DONE]`). \
                While idle, `: keep-alive` comments.",
            "parameters": [
                path("type"), path("id"),
                query("from", false, count(), "Lines the client already has."),
                query("format", false, json!({ "type": "string", "enum": ["text", "json", "batch"] }), "Event data format: \
                    `batch` sends `event: lines` with `{\"n\":first,\"lines\":[...]}` (many lines per event, `id:` the last one's \
                    number), for loading a big backlog fast, and ends with the same `event: done` as `json`."),
                query("times", false, json!({ "type": "string", "enum": ["0", "1", "false", "true"] }), "With `format=batch`: each \
                    `event: lines` also carries `\"times\":[ms,...]`, each line's time, parallel to `lines` (400 with the text \
                    format; `json` events always carry `t`)."),
                last_event_id(),
            ],
            "responses": stream_responses(),
        }},
        "/api/v1/streams": { "get": {
            "operationId": "streams",
            "summary": "Follow several logs on one connection",
            "description": "First `retry: <ms>`; then `event: line` with `{\"type\",\"id\",\"n\",\"line\",\"t\"}` (`t`: when \
                the line was written, ms since the epoch) and, per log at its `[DONE]`, `event: done` with \
                `{\"type\",\"id\",\"n\",\"outcome\",\"exit_code\"}` (how the log ended, null when unknown); the response ends after the last log's. Each event's `id:` is every log's \
                position in the order of the `log` parameters, joined by `,` (`12,0,7`), so `Last-Event-ID` resumes \
                them all. Lines of one log come in order; logs interleave as they are read. While idle, \
                `: keep-alive` comments. 403 when any log is not readable.",
            "parameters": [
                { "name": "log", "in": "query", "required": true, "style": "form", "explode": true,
                  "schema": { "type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": true,
                              "items": { "type": "string", "pattern": "^[^:\\u0000-\\u001f\\u007f-\\u009f]+:[^\\u0000-\\u001f\\u007f-\\u009f]+$" } },
                  "description": "`type:id`, or `type:id@N` to start after line N; the type holds no `:`." },
                { "name": "Last-Event-ID", "in": "header", "required": false,
                  "schema": { "type": "string", "pattern": "^([0-9]+(,[0-9]+)*)?$" },
                  "description": "Sent by EventSource on reconnect: one position per log; overrides the `@N`s." },
            ],
            "responses": stream_responses(),
        }},
        "/api/v1/logs/{type}/{id}": {
            "get": {
                "operationId": "snapshot",
                "summary": "Read a page of a log as JSON",
                "parameters": [
                    path("type"), path("id"),
                    query("from", false, count(), "Positions to skip."),
                    query("limit", false, json!({ "type": "integer", "minimum": 1, "maximum": 10000, "default": 1000 }), "Positions to return at most."),
                    query("times", false, json!({ "type": "string", "enum": ["0", "1", "false", "true"] }), "Add `times`, each line's \
                        time in ms since the epoch (the `ts` stored by an append through the service, else the ObjectId's)."),
                    query("tail", false, json!({ "type": "integer", "minimum": 1, "maximum": 10000 }), "Instead of `from`/`limit` (400 with \
                        either): the last K positions; `from` in the answer says where they start."),
                ],
                "responses": with_errors(json!({
                    "200": { "description": "A page of the log.", "content": json_of("#/components/schemas/Snapshot") },
                }), &["400", "401", "403", "503"]),
            },
            "post": {
                "operationId": "append",
                "summary": "Append lines to a log",
                "description": "A text/plain body is split on LF (a CR stays in its line; a trailing LF adds no line). A line \
                    that is exactly `[DONE]` ends the log and must be the last. A JSON body with `done: true` may say how the \
                    work ended (`outcome`, `exit_code`).",
                "parameters": [path("type"), path("id")],
                "requestBody": { "required": true, "content": {
                    "text/plain": { "schema": { "type": "string", "minLength": 1 } },
                    "application/json": { "schema": { "$ref": "#/components/schemas/AppendBody" } },
                }},
                "responses": with_errors(json!({
                    "201": { "description": "Stored.", "content": json_of("#/components/schemas/Appended") },
                }), &["400", "401", "403", "409", "413", "503"]),
            },
        },
        "/api/v1/logs": { "get": {
            "operationId": "listLogs",
            "summary": "Which logs exist: most recently updated first",
            "parameters": list_parameters(),
            "responses": with_errors(json!({
                "200": { "description": "A page of the list.", "content": json_of("#/components/schemas/LogList") },
            }), &["400", "401", "503"]),
        }},
        "/api/v1/logs/events": { "get": {
            "operationId": "logEvents",
            "summary": "The list of logs as a live stream",
            "description": "`event: log` with a `LogSummary` for each current log, then one when a log starts, when it \
                ends, when it turns idle or wakes up, and at most once a second while it grows. Keep-alive comments while idle.",
            "parameters": list_parameters(),
            "responses": with_errors(json!({
                "200": { "description": "The event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
            }), &["400", "401", "503"]),
        }},
        "/": { "get": {
            "operationId": "indexPage",
            "summary": "The index page: the logs, live",
            "security": [{}],
            "responses": { "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } } },
        }},
        "/api/v1/logs/{type}/{id}/raw": { "get": {
            "operationId": "raw",
            "summary": "The log as plain text",
            "description": "Each line's text followed by LF, `[DONE]` left out, streamed as it is read. Without `follow` the \
                response ends at `[DONE]` or at the current end; with `follow=1` it stays open and streams new lines until `[DONE]`.",
            "parameters": [
                path("type"), path("id"),
                query("follow", false, json!({ "type": "string", "enum": ["0", "1", "false", "true"] }), "Keep following the log."),
            ],
            "responses": with_errors(json!({
                "200": { "description": "The text.", "content": { "text/plain": { "schema": { "type": "string" } } } },
            }), &["400", "401", "403", "503"]),
        }},
        "/logs/{type}/{id}": { "get": {
            "operationId": "viewer",
            "summary": "The HTML viewer of one log",
            "security": [{}],
            "parameters": [path("type"), path("id")],
            "responses": { "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } } },
        }},
        "/logs": { "get": {
            "operationId": "mergedViewer",
            "summary": "The HTML viewer of several logs merged in time order (`?log=T:I&log=T:I`)",
            "security": [{}],
            "responses": { "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } } },
        }},
        "/api/v1/openapi.json": { "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [{}],
            "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } },
        }},
        "/healthz": { "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "security": [{}],
            "responses": { "200": { "description": "The process is up.", "content": json_of("#/components/schemas/Status") } },
        }},
        "/readyz": { "get": {
            "operationId": "readyz",
            "summary": "Readiness: the change stream runs and answers",
            "security": [{}],
            "responses": with_errors(json!({
                "200": { "description": "Ready.", "content": json_of("#/components/schemas/Status") },
            }), &["503"]),
        }},
        "/metrics": { "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "security": [{}],
            "responses": { "200": { "description": "The text exposition format.", "content": { "text/plain": { "schema": { "type": "string" } } } } },
        }},
    })
}

fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            "cookie": { "type": "apiKey", "in": "cookie", "name": "sse_logs_token" },
            "query": { "type": "apiKey", "in": "query", "name": "access_token" },
        },
        "schemas": {
            "Error": {
                "type": "object", "required": ["error"],
                "properties": { "error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } },
                }},
            },
            "Snapshot": {
                "type": "object", "required": ["type", "id", "from", "lines", "next", "done"],
                "properties": {
                    "type": { "type": "string" }, "id": { "type": "string" },
                    "from": { "type": "integer", "minimum": 0 },
                    "lines": { "type": "array", "items": { "type": "string" } },
                    "times": { "type": "array", "items": { "type": "integer", "minimum": 0 }, "description": "With `times=1`, parallel to `lines`." },
                    "next": { "type": "integer", "minimum": 0 },
                    "done": { "type": "boolean" },
                    "outcome": outcome_schema(),
                    "exit_code": exit_code_schema(),
                },
            },
            "AppendBody": {
                "type": "object", "additionalProperties": false,
                "description": "At least one line, or `done: true`; a line `[DONE]` may only be the last. `outcome` and \
                    `exit_code` (how the work ended) only with `done: true`.",
                "properties": {
                    "lines": { "type": "array", "items": { "type": "string" } },
                    "done": { "type": "boolean" },
                    "outcome": outcome_schema(),
                    "exit_code": exit_code_schema(),
                },
                "allOf": [
                    { "anyOf": [
                        { "required": ["lines"], "properties": { "lines": { "minItems": 1 } } },
                        { "required": ["done"], "properties": { "done": { "const": true } } },
                    ]},
                    { "anyOf": [
                        { "properties": { "outcome": { "const": null }, "exit_code": { "const": null } } },
                        { "required": ["done"], "properties": { "done": { "const": true } } },
                    ]},
                ],
            },
            "Appended": {
                "type": "object", "required": ["appended", "next"],
                "properties": { "appended": { "type": "integer", "minimum": 0 }, "next": { "type": "integer", "minimum": 0 } },
            },
            "LogSummary": {
                "type": "object",
                "required": ["type", "id", "lines", "started", "updated", "done", "outcome", "exit_code", "idle"],
                "properties": {
                    "type": { "type": "string" }, "id": { "type": "string" },
                    "lines": { "type": "integer", "minimum": 0 },
                    "started": { "type": "string", "format": "date-time" },
                    "updated": { "type": "string", "format": "date-time" },
                    "done": { "type": "boolean" },
                    "outcome": outcome_schema(),
                    "exit_code": exit_code_schema(),
                    "idle": { "type": "boolean", "description": "Live, but no line for `index.idle_after_secs`: idle since `updated`." },
                },
            },
            "LogList": {
                "type": "object", "required": ["logs", "next"],
                "properties": {
                    "logs": { "type": "array", "items": { "$ref": "#/components/schemas/LogSummary" } },
                    "next": { "type": ["string", "null"], "description": "The `before` of the next page; null at the end." },
                },
            },
            "Status": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" } } },
        },
    })
}

/// How a log ended, as its `[DONE]` said; null when unknown (or, in the index, still live).
fn outcome_schema() -> Value {
    json!({ "enum": ["succeeded", "failed", "cancelled", null] })
}

fn exit_code_schema() -> Value {
    let max = super::logs::MAX_EXIT_CODE;
    json!({ "type": ["integer", "null"], "minimum": -max, "maximum": max })
}

fn list_parameters() -> Value {
    json!([
        query("type", false, json!({ "type": "string" }), "Only logs of this type."),
        query(
            "state",
            false,
            json!({ "type": "string", "enum": ["live", "ended", "all", "idle", "succeeded", "failed", "cancelled"] }),
            "Live (idle ones included), ended, all, idle (live, no line for `index.idle_after_secs`), or ended with this outcome."
        ),
        query("q", false, json!({ "type": "string" }), "A substring of the id (case-insensitive)."),
        query(
            "limit",
            false,
            json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 50 }),
            "Logs per page."
        ),
        query(
            "before",
            false,
            json!({ "type": "string", "pattern": "^([0-9a-f]{2})*$" }),
            "A cursor from `next`, opaque; text the service did not issue (it carries a checksum) is 400.",
        ),
    ])
}

fn path(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": text(),
            "description": "Percent-decoded; control characters are refused." })
}

fn text() -> Value {
    json!({ "type": "string", "minLength": 1, "pattern": NO_CONTROLS })
}

fn query(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "schema": schema, "description": description })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0 })
}

fn last_event_id() -> Value {
    json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string", "pattern": "^[0-9]*$" },
            "description": "Sent by EventSource on reconnect; overrides from/num." })
}

fn json_of(schema: &str) -> Value {
    json!({ "application/json": { "schema": { "$ref": schema } } })
}

fn stream_responses() -> Value {
    with_errors(
        json!({
            "200": { "description": "The event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
            "204": { "description": "The client already has the [DONE] line: EventSource stops reconnecting." },
        }),
        &["400", "401", "403", "503"],
    )
}

/// Adds the contract's JSON error for each status.
fn with_errors(mut responses: Value, statuses: &[&str]) -> Value {
    for status in statuses {
        let description = match *status {
            "400" => "Bad input (a missing or malformed parameter, a bad body).",
            "401" => "No valid credentials.",
            "403" => "The credentials do not allow this log or action, or a cross-site write.",
            "409" => "The log has already ended with [DONE].",
            "413" => "The body is larger than limits.max_body_bytes.",
            _ => {
                "Unavailable (MongoDB unreachable, too many streams, an auth service down); see Retry-After."
            }
        };
        responses[*status] =
            json!({ "description": description, "content": json_of("#/components/schemas/Error") });
    }
    responses
}

#[cfg(test)]
mod tests {
    use super::document;

    #[test]
    fn every_operation_has_an_id_and_every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for name in ["Error", "Snapshot", "AppendBody", "Appended", "Status", "LogList", "LogSummary"] {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#/components/schemas/") {
            let tail = &rest[at + "#/components/schemas/".len()..];
            let name: String = tail.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(doc["components"]["schemas"][&name].is_object(), "dangling $ref {name}");
            rest = tail;
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                assert!(operation["operationId"].is_string(), "{method} {path}");
                assert!(operation["responses"].is_object(), "{method} {path}");
            }
        }
    }
}
