//! `chaos`: run the platform, drive experiments from scripts, verify the audit log.

/// mimalloc rather than the system allocator: the projector's threads allocate and free
/// decoded events at a high rate, which glibc's arenas serve at a third of the speed
/// (`cargo xtask bench`, rebuild).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    chaos::cli::main()
}
