//! A FIFO (or any other special file) where a file is expected is refused
//! at once, with a message naming it, never waited on (issue 22): every
//! reader opens the file first, without blocking (`O_NONBLOCK`), then
//! checks what it opened (`fstat`), so nothing can be swapped in between a
//! check by path and the open. Each command runs with a generous deadline
//! and is killed after it: a reader that opens a FIFO for reading waits
//! for a writer that never comes, and fails the test by the deadline.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Far more than any of these commands takes on a loaded machine: only a
/// command blocked on a FIFO reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

/// Run `cmd` to failure within [`DEADLINE`] (killed and failing the test
/// after it); its standard error.
fn refused_in_time(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} still ran after {DEADLINE:?}: it waits on the FIFO");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{cmd:?} succeeded");
    err
}

fn mkfifo(path: &Path) {
    run(Command::new("mkfifo").arg(path));
}

/// `nixoci build` of a spec that is a FIFO.
#[test]
fn a_fifo_given_as_a_json_document_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("spec.json");
    mkfifo(&spec);
    let out = t.path().join("out");
    let err = refused_in_time(nixoci().arg("build").arg(&spec).arg("-o").arg(&out));
    assert!(
        err.contains(&format!(
            "{}: not a regular file but a FIFO",
            spec.display()
        )),
        "{err}"
    );
    assert!(!out.exists());

    // A closure graph (read within a size limit) is refused alike.
    let graph = t.path().join("graph.json");
    mkfifo(&graph);
    let err = refused_in_time(nixoci().arg("plan").arg(&graph));
    assert!(
        err.contains(&format!(
            "{}: not a regular file but a FIFO",
            graph.display()
        )),
        "{err}"
    );
}

/// `nixoci build` of an image whose layer directory holds a FIFO where
/// its blob should be: the blob is copied into the image, and was opened
/// (blocking) before it was checked.
#[test]
fn a_fifo_where_a_blob_should_be_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "in/a", b"a\n", 0o644);
    write_json(
        &t.path().join("l.json"),
        &json!({"files": [{"source": "in/a", "destination": "/a"}]}),
    );
    let layer = t.path().join("layer");
    run(nixoci()
        .arg("layer")
        .arg(t.path().join("l.json"))
        .arg("-o")
        .arg(&layer)
        .arg("--quiet"));
    let blob = std::fs::read_dir(layer.join("blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&blob).unwrap();
    mkfifo(&blob);
    write_json(
        &t.path().join("s.json"),
        &json!({"layers": [layer], "architecture": "amd64"}),
    );
    let out = t.path().join("out");
    let err = refused_in_time(
        nixoci()
            .arg("build")
            .arg(t.path().join("s.json"))
            .arg("-o")
            .arg(&out),
    );
    assert!(
        err.contains(&format!(
            "{}: not a regular file but a FIFO",
            blob.display()
        )),
        "{err}"
    );
    assert!(!out.exists());
}
