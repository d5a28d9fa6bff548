//! What a child process used, as the kernel counted it: peak memory, CPU
//! time, and the bytes it read and wrote. Tests bound these, never the
//! seconds a run took, so that a busy machine cannot fail them.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// The resources one run of a command used (its children's included).
#[derive(Debug)]
pub struct Usage {
    /// Peak resident memory, in bytes.
    pub max_rss: u64,
    /// User and system CPU time.
    pub cpu: Duration,
    /// Bytes passed to `read` and similar calls (`rchar`: files, pipes,
    /// page cache or not).
    pub read: u64,
    /// Bytes passed to `write` and similar calls (`wchar`).
    pub written: u64,
}

/// Run `cmd` (no standard input) to its end: its output and what it used.
/// The child is waited for without being reaped first, to read its I/O
/// counters (`/proc/PID/io`), then reaped with `wait4` for its own
/// resource usage (not that of the test's other children).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot do
pub fn measured(cmd: &mut Command) -> (Output, Usage) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id();
    loop {
        // SAFETY: siginfo_t is plain data, for which all zeroes is a value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes one siginfo_t into the struct we own;
        // WNOWAIT leaves the child to be reaped below.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "waitid: {e}");
    }
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let counter = |name: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/io: {io}"))
    };
    let (read, written) = (counter("rchar"), counter("wchar"));
    let mut status = 0;
    // SAFETY: rusage holds only integers, for which all zeroes is a value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes the status and one rusage into values we own.
    let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(
        rc,
        pid as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let output = Output {
        status: ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let usage = Usage {
        max_rss: ru.ru_maxrss as u64 * 1024,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        read,
        written,
    };
    (output, usage)
}
