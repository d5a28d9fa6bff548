//! The `nixoci` command: parse the command line, run, report.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    raise_open_file_limit();
    // RUST_LOG=nixoci=debug: what nixoci does (retries and why) on stderr.
    if std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty()) {
        use std::io::IsTerminal as _;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    }
    // Interrupted (Ctrl-C, SIGTERM, SIGHUP): remove what was being written.
    let _ = ctrlc::set_handler(|| {
        nixoci::layout::remove_unfinished();
        std::process::exit(130);
    });
    let result = cli::run(args);
    if nixoci::layout::interrupted() {
        // The signal handler is removing what the run was writing, and
        // exits with 130 when done: the run's own end (often an error, as
        // its files vanish) is no result to report.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`nixoci inspect DIR | head`) is not a failure.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The exit status of a failed command: a registry failure's own
/// ([`nixoci::error::RegistryErrorKind::exit_code`], 20 to 25, README
/// "Exit status"), else 1.
fn exit_status(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|c| {
            c.downcast_ref::<nixoci::error::Error>()
                .and_then(nixoci::error::Error::registry_kind)
        })
        .map_or(1, nixoci::error::RegistryErrorKind::exit_code)
}

/// Raise the soft limit of open files to the hard one: the readers of an
/// image tree hold a directory open per level of depth (they never follow
/// a path by name through it, `nixoci::rootfs`), and a deep tree would
/// otherwise stop at the usual soft limit of 1024. Failing to raise it
/// changes nothing.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
