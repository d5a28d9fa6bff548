//! Issue 21, 1.4: concurrent writers of the referrers fallback tag on a
//! registry without the referrers API (distribution 2.8,
//! `common::registry`). The tag's index is read, appended to and written
//! back, which two clients at once can undo for each other. Every run that
//! exits 0 must have its referrer listed afterwards (`nixoci referrers`);
//! a run that could not make sure of it fails, saying so. No test here
//! measures time: how many runs win depends on the machine, and both
//! outcomes are checked. On a registry that keeps referrers itself
//! (`common::peers::ReferrersRegistry`, go-containerregistry's referrers
//! API) there is no tag to fight over: every run succeeds, listed.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::registry::*;
use common::*;
use serde_json::Value;

use common::nixoci_in as tool;

/// What a run that could not keep its referrer listed says.
const GAVE_UP: &str = "other clients replaced the fallback index";

/// The digests `nixoci referrers REF` lists (from the fallback tag).
fn listed(env: &Path, reference: &str) -> BTreeSet<String> {
    listed_from(env, reference, "fallback")
}

/// The digests `nixoci referrers REF` lists, from `source` (`fallback`,
/// or `api`: the registry's referrers API).
fn listed_from(env: &Path, reference: &str, source: &str) -> BTreeSet<String> {
    let out = run(tool(env).arg("referrers").arg(reference).arg("--json"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], source, "{v}");
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Wait for every child; each run's output.
fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Each run that exited 0 has `digest_of(its report)` listed; each that
/// failed says it gave up. Returns how many succeeded.
fn assert_none_lost(
    outputs: &[Output],
    listed: &BTreeSet<String>,
    digests_of: impl Fn(&Value) -> Vec<String>,
    what: &str,
) -> usize {
    let mut ok = 0;
    for (i, out) in outputs.iter().enumerate() {
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            for d in digests_of(&report) {
                assert!(
                    listed.contains(&d),
                    "{what} {i} exited 0, but its referrer {d} is not listed: {report}"
                );
            }
            ok += 1;
        } else {
            assert!(
                err.contains(GAVE_UP) && err.contains("run the command again"),
                "{what} {i} failed otherwise: {err}"
            );
        }
    }
    ok
}

/// `n` `nixoci attach --json` of `reference` started at once, each with a
/// text file of its own (`note-N-I.txt` in `dir`).
fn spawn_attaches(dir: &Path, reference: &str, n: usize) -> Vec<Child> {
    (0..n)
        .map(|i| {
            let file = dir.join(format!("note-{n}-{i}.txt"));
            fs::write(&file, format!("attachment {i} of {n}\n")).unwrap();
            tool(dir)
                .arg("attach")
                .arg(reference)
                .args(["--artifact-type", "text/plain", "--json"])
                .arg(&file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// 8, then 32 `nixoci attach` at once to one image, each of its own file.
#[test]
fn concurrent_attaches_are_all_listed_or_fail_saying_so() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 21, 22, 1000);
    for n in [8usize, 32] {
        let reference = reg.reference(&format!("race{n}/app:1"));
        run(tool(t.path())
            .arg("push")
            .arg(&layout)
            .arg(&reference)
            .arg("-q"));
        let outputs = wait_all(spawn_attaches(t.path(), &reference, n));
        let listed = listed(t.path(), &reference);
        let ok = assert_none_lost(
            &outputs,
            &listed,
            |r| {
                assert_eq!(r["listed"], "fallback", "{r}");
                vec![r["digest"].as_str().unwrap().to_owned()]
            },
            &format!("attach (of {n})"),
        );
        eprintln!("{n} attaches at once: {ok} listed, {} gave up", n - ok);
        // What a run that gave up left unlisted, a second run lists.
        for (i, out) in outputs.iter().enumerate() {
            if !out.status.success() {
                run(tool(t.path())
                    .arg("attach")
                    .arg(&reference)
                    .args(["--artifact-type", "text/plain", "-q"])
                    .arg(t.path().join(format!("note-{n}-{i}.txt"))));
            }
        }
        assert_eq!(listed_count(t.path(), &reference), n);
    }
}

fn listed_count(env: &Path, reference: &str) -> usize {
    listed(env, reference).len()
}

/// 8 `nixoci push` at once of layouts holding one image (the same) and
/// each a referrer of its own, to one repository: every push that exits 0
/// has its referrer listed.
#[test]
fn concurrent_pushes_of_layouts_with_referrers_lose_none() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    let layout = image(env, "app", 31, 32, 1000);
    let n = 8;
    // Each layout: the image and one attachment, made in a repository of
    // its own and pulled with its referrers.
    let layouts: Vec<_> = (0..n)
        .map(|i| {
            let stage = reg.reference(&format!("stage{i}/app:1"));
            run(tool(env).arg("push").arg(&layout).arg(&stage).arg("-q"));
            let file = env.join(format!("sig-{i}.json"));
            fs::write(&file, format!("{{\"signature\": {i}}}\n")).unwrap();
            run(tool(env)
                .arg("attach")
                .arg(&stage)
                .args(["--artifact-type", "application/vnd.example.sig", "-q"])
                .arg(&file));
            let dir = env.join(format!("with-ref-{i}"));
            run(tool(env)
                .arg("pull")
                .arg(&stage)
                .arg(&dir)
                .args(["--referrers", "-q"]));
            dir
        })
        .collect();
    let target = reg.reference("pushrace/app:1");
    let children: Vec<Child> = layouts
        .iter()
        .map(|l| {
            tool(env)
                .arg("push")
                .arg(l)
                .arg(&target)
                .arg("--json")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = wait_all(children);
    let listed = listed(env, &target);
    let ok = assert_none_lost(
        &outputs,
        &listed,
        |r| {
            r["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["digest"].as_str().unwrap().to_owned())
                .collect()
        },
        "push",
    );
    eprintln!("{n} pushes at once: {ok} listed, {} gave up", n - ok);
    // A push that gave up, run again, lists its referrer.
    for (out, l) in outputs.iter().zip(&layouts) {
        if !out.status.success() {
            run(tool(env).arg("push").arg(l).arg(&target).arg("-q"));
        }
    }
    assert_eq!(listed_count(env, &target), n);
}

/// 32 `nixoci attach` at once to one image on a registry that keeps
/// referrers itself (go-containerregistry's referrers API, no
/// `OCI-Subject`): no fallback tag is written, every run exits 0 reported
/// `api`, and the API lists all 32.
#[test]
fn concurrent_attaches_on_a_registry_with_the_api_lose_nothing() {
    let reg = common::peers::ReferrersRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 41, 42, 1000);
    let n = 32;
    let reference = reg.reference("apirace/app:1");
    run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(&reference)
        .arg("-q"));
    let mut attached = BTreeSet::new();
    for (i, out) in wait_all(spawn_attaches(t.path(), &reference, n))
        .iter()
        .enumerate()
    {
        assert!(
            out.status.success(),
            "attach {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["listed"], "api", "attach {i}: {report}");
        attached.insert(report["digest"].as_str().unwrap().to_owned());
    }
    assert_eq!(attached.len(), n);
    assert_eq!(listed_from(t.path(), &reference, "api"), attached);
    let fallback: Vec<String> = reg
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/manifests/sha256-"))
        .collect();
    assert_eq!(fallback, Vec::<String>::new());
}
