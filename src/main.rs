//! The `sse-logs` binary; everything lives in the library so tests can link it.

fn main() -> std::process::ExitCode {
    sse_logs::cli::main()
}
