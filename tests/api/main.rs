//! Integration tests: the real service on a free port, a real MongoDB wire-protocol server over
//! TCP (SSE_LOGS_TEST_MONGODB_URI), and a real HTTP client reading the SSE bytes.

mod append;
mod auth;
mod auth_down;
mod big;
mod cli;
mod concurrency;
mod dashboards;
mod embed;
mod errors;
mod faults;
mod h2c;
mod helpers;
mod index;
mod index_lifecycle;
mod limits;
mod migrate;
mod mongo_server;
mod multi;
mod nginx;
mod operate;
mod push_faults;
mod push_relay;
mod redact;
mod replicas;
mod retention;
mod retention_bulk;
mod security;
mod shutdown;
mod snapshot;
mod stall;
mod stream;
mod stream_slots;
mod times;
mod writers;
