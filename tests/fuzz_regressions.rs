//! Replays every input the fuzzers found a problem with (`fuzz/regressions/`)
//! and every seed (`fuzz/seeds/`) through the same cases and invariants the
//! fuzz targets run, so a fixed finding stays fixed without cargo-fuzz.

#[path = "../fuzz/src/lib.rs"]
mod cases;

use std::path::Path;

fn replay(dir: &str, case: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["regressions", "seeds"] {
        let dir = root.join(kind).join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let result = std::panic::catch_unwind(|| case(&data));
            assert!(result.is_ok(), "{} fails its invariants", file.display());
            n += 1;
        }
    }
    n
}

#[test]
fn config_inputs_keep_their_invariants() {
    assert!(replay("config", cases::config_case) >= 3);
}

#[test]
fn list_inputs_keep_their_invariants() {
    assert!(replay("list", cases::list_case) >= 2);
}

#[test]
fn decide_inputs_keep_their_invariants() {
    assert!(replay("decide", cases::decide_case) >= 9);
}

#[test]
fn location_inputs_keep_their_invariants() {
    assert!(replay("location", cases::location_case) >= 8);
}

/// The findings themselves, with the answer each now gets.
#[test]
fn fixed_findings_get_their_exact_answers() {
    use pingora_redirect::internals::{normalize_config_host, parse_target, NoGroups};
    // A host whose last label is a number is an IPv4 address to browsers.
    for host in ["wexaex.0x", "a.0xe", "a.b.10", "10.1"] {
        let e = normalize_config_host(host).unwrap_err();
        assert!(e.contains("ends in a number"), "{host}: {e}");
        assert!(parse_target(&format!("https://{host}/x"), false, &NoGroups).is_err());
    }
    assert_eq!(normalize_config_host("a.0xg").unwrap(), "a.0xg");
    assert_eq!(normalize_config_host("192.0.2.1").unwrap(), "192.0.2.1");
    // `${path}` right after a target's host never glues onto the host: a
    // request target that is not an absolute path is refused.
    use pingora_redirect::{compile, Decision, RequestView, Scheme, Sources};
    let src = "[[redirect]]\nid = \"r\"\nregex = \"^(.*)$\"\nto = \"http://ae${path}\"\n";
    let sources = Sources::from_text(src, Path::new("t.toml"), |_| Ok(Vec::new()));
    assert!(sources.problems.is_empty(), "{:?}", sources.problems);
    let (set, _) = compile(&sources);
    let req =
        |path: &'static [u8]| RequestView::new("GET", Scheme::Http, Some("a.example"), path, None);
    match set.decide(&req(b"*")) {
        Decision::BadRequest(b) => assert_eq!(
            (b.status, b.reason.as_str()),
            (400, "the request target is not an absolute path")
        ),
        other => panic!("{other:?}"),
    }
    match set.decide(&req(b"/x")) {
        Decision::Redirect(r) => assert_eq!(r.location, "http://ae/x"),
        other => panic!("{other:?}"),
    }
}
