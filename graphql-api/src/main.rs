//! `chaos`: run the platform, drive experiments from scripts, verify the audit log.

fn main() -> std::process::ExitCode {
    graphql_api::cli::main()
}
