//! The `nixoci` command. Everything it does is in the library's `cli`
//! module (`src/cli/`): parse the command line, run, report.

fn main() -> std::process::ExitCode {
    nixoci::cli::main()
}
