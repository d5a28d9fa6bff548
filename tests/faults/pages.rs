//! Registry faults, continued: a registry that pages its referrers
//! answer (distribution spec 1.1: a `Link` header, `rel="next"`, to each
//! next page), as the proxy's [`Fault::PageReferrers`] makes
//! go-containerregistry's do, in every form a link takes and in the
//! forms nixoci refuses (a loop, another host, no end).

use super::*;
use proxy::PageLink;

/// go-containerregistry's registry (which serves the referrers API) with
/// `subject/app:1` and 5 referrers attached to it, and the proxy in front.
fn five_referrers(t: &Path) -> (common::peers::ReferrersRegistry, FaultProxy, Vec<String>) {
    let reg = common::peers::ReferrersRegistry::start();
    let proxy = FaultProxy::start(reg.port, None);
    let layout = image(t, "app", 15, 16, 1000);
    let image = reg.reference("subject/app:1");
    run(nixoci_in(t)
        .args(["push", "--quiet"])
        .arg(&layout)
        .arg(&image));
    let mut attached: Vec<String> = (0..5)
        .map(|i| {
            let note = t.join(format!("note-{i}.txt"));
            fs::write(&note, format!("note {i}\n")).unwrap();
            let out = run(nixoci_in(t)
                .args(["attach", "--artifact-type", "text/plain", "--json", &image])
                .arg(&note));
            let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(attached["listed"], "api", "{attached}");
            attached["digest"].as_str().unwrap().to_owned()
        })
        .collect();
    attached.sort();
    (reg, proxy, attached)
}

/// The digests of a JSON list of descriptors (or of digests), sorted.
fn digests_of(list: &serde_json::Value) -> Vec<String> {
    let mut digests: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("no list: {list}"))
        .iter()
        .map(|d| d["digest"].as_str().or(d.as_str()).unwrap().to_owned())
        .collect();
    digests.sort();
    digests
}

/// A registry that pages its referrers answer, as the distribution spec
/// 1.1 allows (a `Link` header, `rel="next"`, to each next page):
/// go-containerregistry's, behind the proxy, which cuts its answer into
/// pages of 1 entry linked by relative URLs (a path, and a query alone),
/// and into pages of 2 linked by full URLs. Of 5 referrers attached,
/// `referrers` lists the 5 (one request a page), `pull --referrers`
/// brings the 5, and a push of the image with the 5 finds them all
/// listed already and writes nothing to the registry.
#[test]
fn a_paged_referrers_answer_is_read_to_its_last_page() {
    let t = tempfile::tempdir().unwrap();
    let (reg, proxy, attached) = five_referrers(t.path());
    let image = proxy.reference("subject/app:1");
    // The image and its 5 referrers, pulled from the registry itself.
    let whole = t.path().join("whole");
    run(nixoci_in(t.path())
        .args([
            "pull",
            "--referrers",
            "--quiet",
            &reg.reference("subject/app:1"),
        ])
        .arg(&whole));
    for (per_page, link) in [(1, PageLink::Relative), (2, PageLink::Absolute)] {
        let what = format!("pages of {per_page}, {link:?} links");
        proxy.inject(Fault::PageReferrers { per_page, link }, ALWAYS);
        let out = run(nixoci_in(t.path()).args(["referrers", "--json", &image]));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["source"], "api", "{what}: {listed}");
        assert_eq!(digests_of(&listed["manifests"]), attached, "{what}");
        assert_eq!(proxy.fired(), 5usize.div_ceil(per_page), "{what}: pages");

        let pulled = t.path().join(format!("pulled-{per_page}"));
        let out = run(nixoci_in(t.path())
            .args(["pull", "--referrers", "--json", &image])
            .arg(&pulled));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            digests_of(&report["referrers"]),
            attached,
            "{what}: {report}"
        );
        run(nixoci().arg("verify").arg(&pulled));

        let writes = reg.writes().len();
        let out = run(nixoci_in(t.path())
            .args(["push", "--json"])
            .arg(&whole)
            .arg(&image));
        let pushed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed: Vec<&str> = pushed["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["listed"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["unchanged"; 5], "{what}: {pushed}");
        assert_eq!(
            reg.writes()[writes..],
            [] as [String; 0],
            "{what}: a re-push writes"
        );
    }
}

/// A paged referrers answer whose `Link` leads back to a page already
/// read (a loop), leads to another host (`localhost` for `127.0.0.1`:
/// the request would carry the registry's credentials there), or never
/// ends: `referrers` and `pull --referrers` fail, naming the registry and
/// saying why, ask no page past the bad link, read at most 1000 pages,
/// and `pull` leaves no layout.
#[test]
fn a_referrers_page_link_that_loops_leaves_or_never_ends_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_reg, proxy, _) = five_referrers(t.path());
    let image = proxy.reference("subject/app:1");
    let registry = format!("127.0.0.1:{}", proxy.port);
    let cases = [
        (PageLink::Loop, "leads back to a page it sent before", 3),
        (PageLink::OtherHost, "leads to http://localhost:", 1),
        (
            PageLink::Endless,
            "the registry sends more than 1000 pages; nixoci reads no more",
            1000,
        ),
    ];
    for (link, words, pages) in cases {
        let what = format!("{link:?} links");
        proxy.inject(Fault::PageReferrers { per_page: 2, link }, ALWAYS);
        let out = nixoci_in(t.path())
            .args(["referrers", &image])
            .output()
            .unwrap();
        assert_failed_naming(&out, &[words], &what);
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{registry}: the referrers of sha256:")),
            "{what}: the message names no registry: {err}"
        );
        assert_eq!(proxy.fired(), pages, "{what}: pages asked");
        let pulled = t.path().join("pulls").join(format!("{link:?}"));
        let out = nixoci_in(t.path())
            .args(["pull", "--referrers", &image])
            .arg(pulled.join("out"))
            .output()
            .unwrap();
        assert_failed_naming(&out, &[words], &format!("pull, {what}"));
        assert!(!pulled.join("out").exists(), "{what}: a layout is left");
    }
}
