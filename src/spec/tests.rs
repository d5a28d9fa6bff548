//! Unit tests of the spec model.

use super::*;

#[test]
fn modes() {
    let f: FileSpec = serde_json::from_str(r#"{"source":"x","mode":"0755"}"#).unwrap();
    assert_eq!(f.mode, Some(0o755));
    let not_octal = "mode must be an octal string like \"0755\"";
    for (bad, why) in [
        (r#"493"#, not_octal),
        (r#""9""#, not_octal),
        (r#""17777""#, "mode 17777 (octal) has bits beyond 07777"),
        (r#""+755""#, not_octal),
        (r#""""#, not_octal),
        (r#""0o755""#, not_octal),
    ] {
        let text = format!(r#"{{"source":"x","mode":{bad}}}"#);
        let e = serde_json::from_str::<FileSpec>(&text)
            .map(|f| f.mode)
            .expect_err(&format!("mode {bad} accepted"));
        assert!(e.to_string().contains(why), "mode {bad}: {e}");
    }
}

#[test]
fn unknown_fields_are_refused() {
    let e = serde_json::from_str::<LayerSpec>(r#"{"files":[],"compresion":"gzip"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `compresion`"), "{e}");
    let e = serde_json::from_str::<ImageSpec>(r#"{"config":{"Entrypont":["x"]}}"#).unwrap_err();
    assert!(e.to_string().contains("Entrypont"), "{e}");
}

#[test]
fn tags() {
    for good in ["latest", "v1.2.3", "_x", "A-b_c.d"] {
        validate_tag(good).unwrap();
    }
    for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
        let e = validate_tag(bad).expect_err(bad).to_string();
        assert!(e.contains(&format!("invalid tag {bad:?}")), "{e}");
    }
    assert_eq!(tags_or_default(&[]).unwrap(), vec!["latest"]);
}

#[test]
fn sets_accept_lists_and_objects() {
    let c: ContainerConfig =
        serde_json::from_str(r#"{"ExposedPorts":["80/tcp"],"Volumes":{"/data":{}}}"#).unwrap();
    assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
    assert!(c.volumes.unwrap().contains_key("/data"));
}
