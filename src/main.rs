//! The `badgedock` binary: parses the command line and maps errors to exit codes.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
