//! How registry commands fail: the settings read from the environment
//! (`NIXOCI_DOCUMENT_TIMEOUT`), and the kinds of registry failure, each
//! with its own exit status and message (README "Exit status"), against a
//! real registry (distribution 2.8, `common::registry`).

mod common;

use std::process::Output;

use common::registry::*;
use common::*;

use common::nixoci_in as tool;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bad `NIXOCI_DOCUMENT_TIMEOUT` stops the command before it sends
/// anything, naming the variable: `1e30` made `Duration::from_secs_f64`
/// panic (exit 101) at the first document read, and `-1`, `nan` or `abc`
/// were silently taken as the default.
#[test]
fn a_bad_document_timeout_is_an_error_naming_the_variable() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 1_000);
    run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("app:v1"))
        .arg("-q"));
    for bad in ["1e30", "-1", "nan", "abc", "0", "inf", "86401", ""] {
        for cmd in [&["pull"][..], &["inspect"], &["tag"], &["push"]] {
            let mut c = tool(t.path());
            c.env("NIXOCI_DOCUMENT_TIMEOUT", bad).args(cmd);
            match cmd[0] {
                "pull" => c
                    .arg(reg.reference("app:nothere"))
                    .arg(t.path().join("out")),
                "inspect" => c.arg(reg.reference("app:nothere")),
                "tag" => c.arg(reg.reference("app:nothere")).arg("v2"),
                _ => c.arg(&layout).arg(reg.reference("app:v3")),
            };
            let out = c.output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{bad:?} {cmd:?}: {err}");
            assert!(
                err.contains(&format!("NIXOCI_DOCUMENT_TIMEOUT={bad:?}"))
                    && err.contains("expected a number of seconds"),
                "{bad:?} {cmd:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // Nothing was sent: the tag the push would have set is not there.
    let out = tool(t.path())
        .args(["exists", "-q"])
        .arg(reg.reference("app:v3"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A good value is taken.
    let out = tool(t.path())
        .env("NIXOCI_DOCUMENT_TIMEOUT", " 0.5 ")
        .arg("inspect")
        .arg(reg.reference("app:v1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
