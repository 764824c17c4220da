//! Integration tests: the real service on a free port, a real MongoDB wire-protocol server over
//! TCP (SSE_LOGS_TEST_MONGODB_URI), and a real HTTP client reading the SSE bytes.

mod append;
mod auth;
mod big;
mod cli;
mod concurrency;
mod dashboards;
mod embed;
mod errors;
mod faults;
mod helpers;
mod index;
mod migrate;
mod mongo_server;
mod multi;
mod nginx;
mod operate;
mod outcome;
mod push_faults;
mod redact;
mod replicas;
mod retention;
mod run_cli;
mod security;
mod shutdown;
mod snapshot;
mod stall;
mod stream;
mod times;
