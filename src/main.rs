//! The `sse-logs` binary; everything lives in the library so tests can link it.

/// mimalloc rather than glibc's malloc: each idle stream holds a few small allocations, and
/// opening thousands of streams at once makes many short-lived ones (request heads, backlog
/// queries) between them. glibc keeps the holes they leave; mimalloc groups allocations by size
/// and returns freed pages (BENCHMARKS.md, memory per idle stream).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sse_logs::cli::main()
}
