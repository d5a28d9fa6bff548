//! Unit tests of the spec model.

use super::*;

#[test]
fn modes() {
    let f: FileSpec = serde_json::from_str(r#"{"source":"x","mode":"0755"}"#).unwrap();
    assert_eq!(f.mode, Some(0o755));
    for bad in [
        r#"493"#,
        r#""9""#,
        r#""17777""#,
        r#""+755""#,
        r#""""#,
        r#""0o755""#,
    ] {
        let text = format!(r#"{{"source":"x","mode":{bad}}}"#);
        assert!(
            serde_json::from_str::<FileSpec>(&text).is_err(),
            "mode {bad} accepted"
        );
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
        assert!(validate_tag(bad).is_err(), "{bad:?} accepted");
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
