//! The `salvage` binary: everything lives in `salvage-cli`; this file only hands over.

fn main() -> std::process::ExitCode {
    salvage_cli::main()
}
