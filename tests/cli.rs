//! Integration tests of the `pingora-redirect` command line (`check` and
//! `explain`, the problem codes of docs/configuration.md): exit codes, the
//! JSON shapes and the text formats, run against the built binary.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

use support::{TempDir, BIN};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON value ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the binary in `dir` (so configuration paths can be given as written
/// relative to it).
fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run pingora-redirect");
    Run {
        code: out.status.code().expect("exited with a code"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Asserts an exit code, showing the output when it differs.
fn assert_code(r: &Run, code: i32) {
    assert_eq!(
        r.code, code,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

const PROBLEM_KEYS: [&str; 6] = ["code", "message", "file", "line", "column", "rule"];

/// The keys of a problem object, in the order of [`PROBLEM_KEYS`]; checks
/// that it holds no other key, that `code` and `message` are non-empty
/// strings and that every place field has its type (no nulls).
fn problem_keys(p: &Value) -> Vec<&'static str> {
    let obj = p.as_object().expect("a problem is an object");
    for k in obj.keys() {
        assert!(
            PROBLEM_KEYS.contains(&k.as_str()),
            "unexpected key {k:?} in {p}"
        );
    }
    for k in ["code", "message"] {
        let s = obj.get(k).and_then(Value::as_str);
        assert!(s.is_some_and(|s| !s.is_empty()), "{k} missing in {p}");
    }
    for k in ["file", "rule"] {
        if let Some(v) = obj.get(k) {
            assert!(v.as_str().is_some_and(|s| !s.is_empty()), "{k} in {p}");
        }
    }
    for k in ["line", "column"] {
        if let Some(v) = obj.get(k) {
            assert!(v.as_u64().is_some_and(|n| n >= 1), "{k} in {p}");
        }
    }
    PROBLEM_KEYS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect()
}

/// Asserts one problem exactly: its code, place and rule; `None` means the
/// field must be absent.
fn assert_problem(
    p: &Value,
    code: &str,
    file: &str,
    line: u64,
    column: Option<u64>,
    rule: Option<&str>,
) {
    let mut want = vec!["code", "message", "file", "line"];
    if column.is_some() {
        want.push("column");
    }
    if rule.is_some() {
        want.push("rule");
    }
    assert_eq!(problem_keys(p), want, "keys of {p}");
    assert_eq!(p["code"], json!(code), "{p}");
    assert_eq!(p["file"], json!(file), "{p}");
    assert_eq!(p["line"], json!(line), "{p}");
    if let Some(c) = column {
        assert_eq!(p["column"], json!(c), "{p}");
    }
    if let Some(r) = rule {
        assert_eq!(p["rule"], json!(r), "{p}");
    }
}

/// `check --format json` on a configuration that does not load: exit 1,
/// `ok: false`, no warnings, and exactly one error, returned.
fn check_one_error(dir: &TempDir, conf: &str) -> Value {
    let r = run_in(&dir.path, &["check", "-c", conf, "--format", "json"]);
    assert_code(&r, 1);
    let v = r.json();
    assert_eq!(v["ok"], json!(false), "{v}");
    assert_eq!(v["warnings"], json!([]), "{v}");
    let errors = v["errors"].as_array().expect("errors is an array");
    assert_eq!(errors.len(), 1, "{v}");
    assert!(v["rules"].is_u64(), "{v}");
    errors[0].clone()
}

/// `explain --format json`: exit 0 and the object printed.
fn explain_json(dir: &TempDir, conf: &str, extra: &[&str], url: &str) -> Value {
    let mut args = vec!["explain", "-c", conf, "--format", "json"];
    args.extend_from_slice(extra);
    args.push(url);
    let r = run_in(&dir.path, &args);
    assert_code(&r, 0);
    r.json()
}

const GOOD: &str = r#"
[[redirect]]
id = "docs"
prefix = "/docs"
to = "https://new.example/documentation"
status = 308

[[redirect]]
id = "about-page"
host = "old.example"
path = "/about"
to = "https://www.example/about"
status = 301
"#;

/// `/a → /b → /c`: loads, with a `chain` warning on the first rule.
const CHAIN: &str = r#"[[redirect]]
id = "chain-start"
path = "/a"
to = "/b"
status = 301

[[redirect]]
id = "chain-middle"
path = "/b"
to = "/c"
status = 301
"#;

// ---------------------------------------------------------------- check ----

#[test]
fn check_good_configuration_json() {
    let dir = TempDir::new("check-good");
    dir.write("good.toml", GOOD);
    let r = run_in(&dir.path, &["check", "-c", "good.toml", "--format", "json"]);
    assert_code(&r, 0);
    assert_eq!(
        r.json(),
        json!({"ok": true, "rules": 2, "errors": [], "warnings": []})
    );
    // The same under --strict: there is no warning.
    let r = run_in(
        &dir.path,
        &["check", "-c", "good.toml", "--format", "json", "--strict"],
    );
    assert_code(&r, 0);
    assert_eq!(
        r.json(),
        json!({"ok": true, "rules": 2, "errors": [], "warnings": []})
    );
}

#[test]
fn check_good_configuration_text_exits_0() {
    let dir = TempDir::new("check-good-text");
    dir.write("good.toml", GOOD);
    let r = run_in(&dir.path, &["check", "-c", "good.toml"]);
    assert_code(&r, 0);
    assert!(r.all().contains("good.toml"), "{}", r.all());
    assert!(!r.all().contains("error"), "{}", r.all());
}

#[test]
fn check_file_is_named_as_given_on_the_command_line() {
    let dir = TempDir::new("check-abs");
    let conf = dir.write("unknown.toml", "[server]\nthreads = 2\ncolour = 1\n");
    let conf = conf.display().to_string();
    let r = run_in(&dir.path, &["check", "-c", &conf, "--format", "json"]);
    assert_code(&r, 1);
    let v = r.json();
    assert_problem(&v["errors"][0], "unknown_key", &conf, 3, Some(1), None);
}

#[test]
fn check_chain_warns_exit_0_and_strict_exit_1() {
    let dir = TempDir::new("check-chain");
    dir.write("chain.toml", CHAIN);
    let r = run_in(
        &dir.path,
        &["check", "-c", "chain.toml", "--format", "json"],
    );
    assert_code(&r, 0);
    let v = r.json();
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["rules"], json!(2), "{v}");
    assert_eq!(v["errors"], json!([]), "{v}");
    let warnings = v["warnings"].as_array().expect("warnings is an array");
    assert_eq!(warnings.len(), 1, "{v}");
    let w = &warnings[0];
    assert_eq!(w["code"], json!("chain"), "{w}");
    assert_eq!(w["file"], json!("chain.toml"), "{w}");
    assert_eq!(w["rule"], json!("chain-start"), "{w}");
    assert_eq!(w["line"], json!(1), "{w}");
    let keys = problem_keys(w);
    for k in ["code", "message", "file", "line", "rule"] {
        assert!(keys.contains(&k), "{k} missing in {w}");
    }
    // It says where to point the rule: at the target of the next one.
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("chain-middle") || msg.contains("/c"),
        "the chain warning names the next rule or the final target: {msg}"
    );

    // The same file under --strict: exit 1, the warning still reported.
    let r = run_in(
        &dir.path,
        &["check", "-c", "chain.toml", "--format", "json", "--strict"],
    );
    assert_code(&r, 1);
    let s = r.json();
    assert_eq!(s["errors"], json!([]), "{s}");
    assert_eq!(s["warnings"], v["warnings"], "{s}");

    // Text: exit 0 without --strict, 1 with it; the warning is named with
    // file:line, rule id and code either way.
    let r = run_in(&dir.path, &["check", "-c", "chain.toml"]);
    assert_code(&r, 0);
    let out = r.all();
    assert!(out.contains("chain.toml:1"), "{out}");
    assert!(out.contains("chain-start"), "{out}");
    assert!(out.contains("chain"), "{out}");
    let r = run_in(&dir.path, &["check", "-c", "chain.toml", "--strict"]);
    assert_code(&r, 1);
    assert!(r.all().contains("chain.toml:1"), "{}", r.all());
}

#[test]
fn check_parse_error_has_line_and_column() {
    let dir = TempDir::new("check-parse");
    // Line 3: `path "/a"` lacks its `=`; the parser stops at column 6.
    dir.write(
        "parse.toml",
        "[[redirect]]\nid = \"parse-rule\"\npath \"/a\"\nto = \"/b\"\n",
    );
    let p = check_one_error(&dir, "parse.toml");
    assert_problem(&p, "parse", "parse.toml", 3, Some(6), None);

    let r = run_in(&dir.path, &["check", "-c", "parse.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    assert!(out.contains("parse.toml:3"), "{out}");
    assert!(out.contains("parse"), "{out}");
}

#[test]
fn check_unknown_key_has_line_column_and_rule() {
    let dir = TempDir::new("check-unknown");
    dir.write(
        "unknown.toml",
        "[[redirect]]\nid = \"colour-rule\"\npath = \"/a\"\nto = \"/b\"\ncolour = \"red\"\n",
    );
    let p = check_one_error(&dir, "unknown.toml");
    assert_problem(
        &p,
        "unknown_key",
        "unknown.toml",
        5,
        Some(1),
        Some("colour-rule"),
    );
    assert!(p["message"].as_str().unwrap().contains("colour"), "{p}");

    let r = run_in(&dir.path, &["check", "-c", "unknown.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    assert!(out.contains("unknown.toml:5"), "{out}");
    assert!(out.contains("colour-rule"), "{out}");
    assert!(out.contains("unknown_key"), "{out}");
}

#[test]
fn check_bad_regex() {
    let dir = TempDir::new("check-regex");
    dir.write(
        "regex.toml",
        "[[redirect]]\nid = \"regex-rule\"\nregex = \"^/(a\"\nto = \"/b\"\n",
    );
    let p = check_one_error(&dir, "regex.toml");
    let keys = problem_keys(&p);
    for k in ["code", "message", "file", "line", "rule"] {
        assert!(keys.contains(&k), "{k} missing in {p}");
    }
    assert_eq!(p["code"], json!("bad_regex"), "{p}");
    assert_eq!(p["file"], json!("regex.toml"), "{p}");
    assert_eq!(p["rule"], json!("regex-rule"), "{p}");
    // The rule's table (line 1) or its `regex` key (line 3).
    let line = p["line"].as_u64().unwrap();
    assert!(line == 1 || line == 3, "{p}");

    let r = run_in(&dir.path, &["check", "-c", "regex.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    assert!(out.contains(&format!("regex.toml:{line}")), "{out}");
    assert!(out.contains("regex-rule"), "{out}");
    assert!(out.contains("bad_regex"), "{out}");
}

#[test]
fn check_loop() {
    let dir = TempDir::new("check-loop");
    dir.write(
        "loop.toml",
        "[[redirect]]\nid = \"loop-x\"\npath = \"/a\"\nto = \"/b\"\n\n\
         [[redirect]]\nid = \"loop-y\"\npath = \"/b\"\nto = \"/a\"\n",
    );
    let p = check_one_error(&dir, "loop.toml");
    let keys = problem_keys(&p);
    for k in ["code", "message", "file", "line", "rule"] {
        assert!(keys.contains(&k), "{k} missing in {p}");
    }
    assert_eq!(p["code"], json!("loop"), "{p}");
    assert_eq!(p["file"], json!("loop.toml"), "{p}");
    // Either rule of the cycle, at the line of its table.
    let (rule, line) = match p["rule"].as_str().unwrap() {
        "loop-x" => ("loop-x", 1),
        "loop-y" => ("loop-y", 6),
        other => panic!("loop reported on {other:?}: {p}"),
    };
    assert_eq!(p["line"], json!(line), "{p}");

    let r = run_in(&dir.path, &["check", "-c", "loop.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    assert!(out.contains(&format!("loop.toml:{line}")), "{out}");
    assert!(out.contains(rule), "{out}");
    assert!(out.contains("loop"), "{out}");
}

#[test]
fn check_prefix_rule_targeting_itself_is_a_loop() {
    let dir = TempDir::new("check-selfloop");
    dir.write(
        "self.toml",
        "[[redirect]]\nid = \"self-rule\"\nprefix = \"/a\"\nto = \"/a/b\"\n",
    );
    let p = check_one_error(&dir, "self.toml");
    assert_eq!(p["code"], json!("loop"), "{p}");
    assert_eq!(p["rule"], json!("self-rule"), "{p}");
    assert_eq!(p["file"], json!("self.toml"), "{p}");
    assert_eq!(p["line"], json!(1), "{p}");
}

#[test]
fn check_bad_list_row_names_csv_file_and_line() {
    let dir = TempDir::new("check-list");
    dir.write(
        "list.toml",
        "[[list]]\nid = \"legacy-list\"\nfile = \"rows.csv\"\nformat = \"cloudflare\"\n",
    );
    dir.write(
        "rows.csv",
        "a.example/x,https://b.example/y,301\n\
         c.example/z,https://b.example/z,302\n\
         not a row\n",
    );
    let p = check_one_error(&dir, "list.toml");
    assert_problem(&p, "bad_list_row", "rows.csv", 3, None, Some("legacy-list"));

    let r = run_in(&dir.path, &["check", "-c", "list.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    assert!(out.contains("rows.csv:3"), "{out}");
    assert!(out.contains("legacy-list"), "{out}");
    assert!(out.contains("bad_list_row"), "{out}");
}

/// (file contents, code, line, column, rule)
type ErrorCase<'a> = (&'a str, &'a str, u64, Option<u64>, Option<&'a str>);

#[test]
fn check_other_error_codes() {
    let cases: &[ErrorCase] = &[
        (
            "[[redirect]]\nid = \"dup\"\npath = \"/a\"\nto = \"/b\"\n\n\
             [[redirect]]\nid = \"dup\"\npath = \"/c\"\nto = \"/d\"\n",
            "duplicate_id",
            6,
            Some(1),
            Some("dup"),
        ),
        (
            "[[redirect]]\nid = \"first\"\npath = \"/a\"\nto = \"/b\"\n\n\
             [[redirect]]\nid = \"second\"\npath = \"/a\"\nto = \"/d\"\n",
            "duplicate_rule",
            6,
            Some(1),
            Some("second"),
        ),
        (
            "[[redirect]]\nid = \"pooled\"\nprefix = \"/a\"\npool = \"nope\"\n",
            "unknown_pool",
            4,
            Some(8),
            Some("pooled"),
        ),
        (
            "[[redirect]]\nid = \"status-rule\"\npath = \"/a\"\nto = \"/b\"\nstatus = 304\n",
            "bad_value",
            5,
            Some(10),
            Some("status-rule"),
        ),
        (
            "[server]\ngrace_period = \"5 parsecs\"\n",
            "bad_value",
            2,
            Some(16),
            None,
        ),
        (
            "[[redirect]]\nid = \"window\"\npath = \"/a\"\nto = \"/b\"\n\
             active_from = 2030-01-02T00:00:00Z\nactive_until = 2030-01-01T00:00:00Z\n",
            "bad_time_window", // at the `active_from` value
            5,
            Some(15),
            Some("window"),
        ),
    ];
    for (i, (src, code, line, column, rule)) in cases.iter().enumerate() {
        let dir = TempDir::new("check-codes");
        let name = format!("case{i}.toml");
        dir.write(&name, src);
        let p = check_one_error(&dir, &name);
        assert_problem(&p, code, &name, *line, *column, *rule);
    }
}

#[test]
fn check_target_and_capture_errors_name_the_rule() {
    // (file contents, code, rule): the place is the rule's file and a line
    // inside its table.
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[redirect]]\nid = \"ftp-target\"\npath = \"/a\"\nto = \"ftp://x/b\"\n",
            "bad_target",
            "ftp-target",
        ),
        (
            "[[redirect]]\nid = \"slashes\"\npath = \"/a\"\nto = \"//evil.example/b\"\n",
            "bad_target",
            "slashes",
        ),
        (
            "[[redirect]]\nid = \"no-group\"\nregex = \"^/(?P<x>a)$\"\nto = \"/b/${y}\"\n",
            "bad_capture",
            "no-group",
        ),
        (
            "[[redirect]]\nid = \"host-less\"\npath = \"/a\"\nto = \"https://${host}/b\"\n",
            "bad_capture",
            "host-less",
        ),
        (
            "[[redirect]]\nid = \"group-host\"\nregex = \"^/(?P<x>[a-z]+)$\"\n\
             to = \"https://${x}.example/b\"\n",
            "bad_capture",
            "group-host",
        ),
    ];
    for (i, (src, code, rule)) in cases.iter().enumerate() {
        let dir = TempDir::new("check-targets");
        let name = format!("case{i}.toml");
        dir.write(&name, src);
        let p = check_one_error(&dir, &name);
        let keys = problem_keys(&p);
        for k in ["code", "message", "file", "line", "rule"] {
            assert!(keys.contains(&k), "{k} missing in {p}");
        }
        assert_eq!(p["code"], json!(code), "{p}");
        assert_eq!(p["file"], json!(name), "{p}");
        assert_eq!(p["rule"], json!(rule), "{p}");
        let line = p["line"].as_u64().unwrap();
        assert!((1..=4).contains(&line), "{p}");
    }
}

#[test]
fn check_warnings_shadowed_expired_permanent_with_expiry() {
    let cases: &[(&str, &str, u64, &str)] = &[
        (
            "[[redirect]]\nid = \"always\"\npath = \"/a\"\nto = \"/b\"\n\n\
             [[redirect]]\nid = \"never\"\npath = \"/a\"\nmethods = [\"GET\"]\nto = \"/d\"\n",
            "shadowed",
            6,
            "never",
        ),
        (
            "[[redirect]]\nid = \"old-campaign\"\npath = \"/a\"\nto = \"/b\"\nstatus = 302\n\
             active_until = 2001-01-01T00:00:00Z\n",
            "expired",
            1,
            "old-campaign",
        ),
        (
            "[[redirect]]\nid = \"perm\"\npath = \"/a\"\nto = \"/b\"\nstatus = 301\n\
             active_until = 2099-01-01T00:00:00Z\n",
            "permanent_with_expiry",
            1,
            "perm",
        ),
    ];
    for (i, (src, code, line, rule)) in cases.iter().enumerate() {
        let dir = TempDir::new("check-warnings");
        let name = format!("case{i}.toml");
        dir.write(&name, src);
        let r = run_in(&dir.path, &["check", "-c", &name, "--format", "json"]);
        assert_code(&r, 0);
        let v = r.json();
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(v["errors"], json!([]), "{v}");
        let w = v["warnings"].as_array().expect("warnings is an array");
        assert_eq!(w.len(), 1, "{v}");
        assert_eq!(w[0]["code"], json!(code), "{v}");
        assert_eq!(w[0]["file"], json!(name), "{v}");
        assert_eq!(w[0]["line"], json!(line), "{v}");
        assert_eq!(w[0]["rule"], json!(rule), "{v}");
        problem_keys(&w[0]);

        let r = run_in(&dir.path, &["check", "-c", &name, "--strict"]);
        assert_code(&r, 1);
    }
}

#[test]
fn check_reports_every_error_at_once() {
    let dir = TempDir::new("check-many");
    dir.write(
        "many.toml",
        "[[redirect]]\nid = \"one\"\npath = \"/a\"\nto = \"/b\"\nbogus = 1\n\n\
         [[redirect]]\nid = \"two\"\npath = \"/c\"\nto = \"/d\"\nstatus = 299\n",
    );
    let r = run_in(&dir.path, &["check", "-c", "many.toml", "--format", "json"]);
    assert_code(&r, 1);
    let v = r.json();
    assert_eq!(v["ok"], json!(false), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    assert_problem(
        &errors[0],
        "unknown_key",
        "many.toml",
        5,
        Some(1),
        Some("one"),
    );
    assert_problem(
        &errors[1],
        "bad_value",
        "many.toml",
        11,
        Some(10),
        Some("two"),
    );

    let r = run_in(&dir.path, &["check", "-c", "many.toml"]);
    assert_code(&r, 1);
    let out = r.all();
    for s in ["many.toml:5", "many.toml:11", "\"one\"", "\"two\""] {
        assert!(out.contains(s), "{s} missing in {out}");
    }
}

#[test]
fn check_missing_configuration_exits_2() {
    let dir = TempDir::new("check-missing");
    let r = run_in(&dir.path, &["check", "-c", "does-not-exist.toml"]);
    assert_code(&r, 2);
    assert!(r.all().contains("does-not-exist.toml"), "{}", r.all());
}

#[test]
fn usage_errors_exit_2_and_print_the_usage() {
    let dir = TempDir::new("usage");
    dir.write("good.toml", GOOD);
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["frobnicate", "-c", "good.toml"],
        &["check", "-c", "good.toml", "--bogus"],
        &["check", "--format", "json"],
        &["check"],
        &["explain", "-c", "good.toml", "--bogus", "http://x.example/"],
        &["explain", "http://x.example/"],
        &["explain", "-c", "good.toml"],
    ];
    for args in cases {
        let r = run_in(&dir.path, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.all().contains("Usage"),
            "{args:?}: no usage in {}",
            r.all()
        );
        assert!(r.stdout.is_empty(), "{args:?}: stdout {}", r.stdout);
    }
}

#[test]
fn bundled_example_configuration_passes_check() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example.toml");
    let example = example.display().to_string();
    let dir = TempDir::new("example");
    let r = run_in(&dir.path, &["check", "-c", &example]);
    assert_code(&r, 0);
    let r = run_in(&dir.path, &["check", "-c", &example, "--format", "json"]);
    assert_code(&r, 0);
    let v = r.json();
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["errors"], json!([]), "{v}");
    assert!(v["rules"].as_u64().is_some_and(|n| n > 0), "{v}");
}

// -------------------------------------------------------------- explain ----

const EXPLAIN: &str = r#"
[pools.mirrors]
targets = ["https://mirror.example.net"]

[[redirect]]
id = "docs"
prefix = "/docs"
to = "https://new.example/documentation"
status = 308

[[redirect]]
id = "old-page"
host = "old.example"
path = "/old"
to = "https://www.example/new"
status = 301

[[redirect]]
id = "downloads"
host = "old.example"
prefix = "/downloads"
pool = "mirrors"
status = 307

[[list]]
id = "legacy"
file = "legacy.csv"
format = "cloudflare"
"#;

const LEGACY_CSV: &str = "a.example/x,https://b.example/y,301\n\
http://a.example/cat,https://b.example/shop,302,TRUE,FALSE,TRUE,TRUE\n";

fn explain_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("explain.toml", EXPLAIN);
    dir.write("legacy.csv", LEGACY_CSV);
    dir
}

#[test]
fn explain_redirect_json_is_exact() {
    let dir = explain_dir("explain-redirect");
    let v = explain_json(
        &dir,
        "explain.toml",
        &[],
        "https://old.example/docs/install?v=2",
    );
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "docs",
            "status": 308,
            "location": "https://new.example/documentation/install?v=2"
        })
    );
    let v = explain_json(&dir, "explain.toml", &[], "http://old.example/old");
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "old-page",
            "status": 301,
            "location": "https://www.example/new"
        })
    );
}

#[test]
fn explain_host_is_the_urls_host_normalised() {
    let dir = explain_dir("explain-host");
    // Upper case, a port and a trailing dot: still old.example.
    let v = explain_json(&dir, "explain.toml", &[], "https://OLD.Example.:8443/old");
    assert_eq!(v["rule"], json!("old-page"), "{v}");
    // Another host: the host-bound rule does not apply.
    let v = explain_json(&dir, "explain.toml", &[], "https://other.example/old");
    assert_eq!(v, json!({"outcome": "not_found"}));
}

#[test]
fn explain_list_row() {
    let dir = explain_dir("explain-list");
    let v = explain_json(&dir, "explain.toml", &[], "https://a.example/x");
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "legacy",
            "status": 301,
            "location": "https://b.example/y",
            "source": "a.example/x",
            "line": 1
        })
    );
    // Row 2: an http-only prefix row keeping the suffix and the query.
    let v = explain_json(&dir, "explain.toml", &[], "http://a.example/cat/z?q=1");
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "legacy",
            "status": 302,
            "location": "https://b.example/shop/z?q=1",
            "source": "http://a.example/cat",
            "line": 2,
            "conditions": [{"condition": "scheme http", "held": true}]
        })
    );
    // Its scheme condition: https does not match, and explain says so.
    let v = explain_json(&dir, "explain.toml", &[], "https://a.example/cat/z");
    assert_eq!(
        v,
        json!({
            "outcome": "not_found",
            "skipped": [{"rule": "legacy", "conditions": [{"condition": "scheme http", "held": false}]}]
        })
    );
}

#[test]
fn explain_pool_rule_names_the_pool() {
    let dir = explain_dir("explain-pool");
    let v = explain_json(
        &dir,
        "explain.toml",
        &[],
        "https://old.example/downloads/f.zip?a=1",
    );
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "downloads",
            "status": 307,
            "pool": "mirrors",
            "location": "https://mirror.example.net/downloads/f.zip?a=1"
        })
    );
}

#[test]
fn explain_not_found_without_upstream() {
    let dir = explain_dir("explain-not-found");
    let v = explain_json(&dir, "explain.toml", &[], "https://old.example/nothing");
    assert_eq!(v, json!({"outcome": "not_found"}));
    // A prefix matches on a segment boundary only.
    let v = explain_json(&dir, "explain.toml", &[], "https://old.example/docsx");
    assert_eq!(v, json!({"outcome": "not_found"}));
}

#[test]
fn explain_proxy_with_upstream() {
    let dir = TempDir::new("explain-proxy");
    dir.write(
        "up.toml",
        r#"
[upstream]
backends = ["127.0.0.1:3000", "127.0.0.1:3001"]
selection = "round_robin"

[[redirect]]
id = "docs"
prefix = "/docs"
to = "https://new.example/documentation"
status = 308
"#,
    );
    let v = explain_json(&dir, "up.toml", &[], "http://x.example/other?q=1");
    assert_eq!(v, json!({"outcome": "proxy"}));
    // A rule still answers first.
    let v = explain_json(&dir, "up.toml", &[], "http://x.example/docs/a");
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "docs",
            "status": 308,
            "location": "https://new.example/documentation/a"
        })
    );
}

#[test]
fn explain_bad_request_for_a_path_above_the_root() {
    let dir = explain_dir("explain-bad-request");
    for url in [
        "https://old.example/../etc/passwd",
        "https://old.example/docs/../../x",
        "https://old.example/a/%2e%2e/%2E%2E/b",
    ] {
        let v = explain_json(&dir, "explain.toml", &[], url);
        assert_eq!(v["outcome"], json!("bad_request"), "{url}: {v}");
        assert_eq!(v["status"], json!(400), "{url}: {v}");
        assert!(v.get("location").is_none(), "{url}: {v}");
        assert!(v.get("rule").is_none(), "{url}: {v}");
    }
    // Dot segments that stay inside the root are resolved before matching.
    let v = explain_json(&dir, "explain.toml", &[], "https://old.example/x/../old");
    assert_eq!(v["rule"], json!("old-page"), "{v}");
}

#[test]
fn explain_method_post_turns_301_into_308() {
    let dir = explain_dir("explain-post");
    let v = explain_json(
        &dir,
        "explain.toml",
        &["--method", "POST"],
        "https://old.example/old",
    );
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "old-page",
            "status": 308,
            "location": "https://www.example/new"
        })
    );
    // GET and HEAD keep the 301.
    for m in ["GET", "HEAD"] {
        let v = explain_json(
            &dir,
            "explain.toml",
            &["--method", m],
            "https://old.example/old",
        );
        assert_eq!(v["status"], json!(301), "{m}: {v}");
    }
    // A list row's 301 too.
    let v = explain_json(
        &dir,
        "explain.toml",
        &["--method", "POST"],
        "https://a.example/x",
    );
    assert_eq!(v["status"], json!(308), "{v}");
    assert_eq!(v["rule"], json!("legacy"), "{v}");
}

#[test]
fn explain_method_rules_302_303_and_preserve_method_false() {
    let dir = TempDir::new("explain-methods");
    dir.write(
        "m.toml",
        r#"
[[redirect]]
id = "s302"
host = "h.example"
path = "/s302"
to = "https://t.example/s302"
status = 302

[[redirect]]
id = "s303"
host = "h.example"
path = "/s303"
to = "https://t.example/s303"
status = 303

[[redirect]]
id = "no-preserve"
host = "h.example"
path = "/keep"
to = "https://t.example/keep"
status = 301
preserve_method = false

[[redirect]]
id = "get-only"
host = "h.example"
path = "/form"
methods = ["GET", "HEAD"]
to = "https://t.example/form-get"
status = 302

[[redirect]]
id = "form-any"
host = "h.example"
prefix = "/form"
to = "https://t.example/form-any"
status = 307
"#,
    );
    let status = |method: &str, path: &str| -> Value {
        let url = format!("https://h.example{path}");
        explain_json(&dir, "m.toml", &["--method", method], &url)
    };
    assert_eq!(status("GET", "/s302")["status"], json!(302));
    assert_eq!(status("PUT", "/s302")["status"], json!(307));
    assert_eq!(status("POST", "/s303")["status"], json!(303));
    assert_eq!(status("POST", "/keep")["status"], json!(301));
    // A rule whose method condition fails is skipped for the next candidate.
    assert_eq!(status("GET", "/form")["rule"], json!("get-only"));
    assert_eq!(
        status("POST", "/form"),
        json!({
            "outcome": "redirect",
            "rule": "form-any",
            "status": 307,
            "location": "https://t.example/form-any",
            "skipped": [{
                "rule": "get-only",
                "conditions": [{"condition": "methods GET, HEAD", "held": false}]
            }]
        })
    );
}

#[test]
fn explain_text_format_for_a_redirect() {
    let dir = explain_dir("explain-text");
    let r = run_in(
        &dir.path,
        &[
            "explain",
            "-c",
            "explain.toml",
            "https://old.example/docs/a",
        ],
    );
    assert_code(&r, 0);
    let out = &r.stdout;
    assert!(out.contains("308"), "{out}");
    assert!(out.contains("https://new.example/documentation/a"), "{out}");
    assert!(out.contains("docs"), "{out}");
    // Explicit --format text is the same.
    let t = run_in(
        &dir.path,
        &[
            "explain",
            "-c",
            "explain.toml",
            "--format",
            "text",
            "https://old.example/docs/a",
        ],
    );
    assert_code(&t, 0);
    assert_eq!(t.stdout, r.stdout);
}

#[test]
fn explain_exits_0_whatever_the_outcome_in_text_too() {
    let dir = explain_dir("explain-text-outcomes");
    for url in [
        "https://old.example/nothing",
        "https://old.example/../x",
        "https://a.example/x",
        "https://old.example/downloads/f",
    ] {
        let r = run_in(&dir.path, &["explain", "-c", "explain.toml", url]);
        assert_code(&r, 0);
        assert!(!r.stdout.trim().is_empty(), "{url}");
    }
}

#[test]
fn explain_accepts_headers() {
    let dir = explain_dir("explain-headers");
    let v = explain_json(
        &dir,
        "explain.toml",
        &["--header", "Accept: text/html", "--header", "X-Test: 1"],
        "https://old.example/old",
    );
    assert_eq!(v["rule"], json!("old-page"), "{v}");
}

#[test]
fn explain_configuration_that_does_not_load_exits_1() {
    let dir = TempDir::new("explain-broken");
    dir.write(
        "loop.toml",
        "[[redirect]]\nid = \"loop-x\"\npath = \"/a\"\nto = \"/b\"\n\n\
         [[redirect]]\nid = \"loop-y\"\npath = \"/b\"\nto = \"/a\"\n",
    );
    dir.write(
        "unknown.toml",
        "[[redirect]]\nid = \"colour-rule\"\npath = \"/a\"\nto = \"/b\"\ncolour = \"red\"\n",
    );
    for format in ["text", "json"] {
        let r = run_in(
            &dir.path,
            &[
                "explain",
                "-c",
                "unknown.toml",
                "--format",
                format,
                "http://x.example/a",
            ],
        );
        assert_code(&r, 1);
        assert!(r.stderr.contains("unknown.toml:5"), "{}", r.stderr);
        assert!(r.stderr.contains("unknown_key"), "{}", r.stderr);
        assert!(r.stderr.contains("colour-rule"), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);

        let r = run_in(
            &dir.path,
            &[
                "explain",
                "-c",
                "loop.toml",
                "--format",
                format,
                "http://x.example/a",
            ],
        );
        assert_code(&r, 1);
        assert!(r.stderr.contains("loop"), "{}", r.stderr);
        assert!(r.stderr.contains("loop.toml:"), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
}

#[test]
fn explain_url_that_is_not_http_exits_2() {
    let dir = explain_dir("explain-bad-url");
    for url in ["ftp://old.example/old", "/old", "old.example/old"] {
        let r = run_in(
            &dir.path,
            &["explain", "-c", "explain.toml", "--format", "json", url],
        );
        assert_eq!(r.code, 2, "{url}: {}", r.all());
        assert!(r.stdout.is_empty(), "{url}: {}", r.stdout);
        assert!(r.stderr.contains(url), "{url}: {}", r.stderr);
    }
}

/// Two errors from two phases of the load (the model, the compile, a list,
/// the lint): `check` in both formats and `serve`'s refusal report both,
/// each with its code, file, line, column and rule.
#[test]
fn every_error_of_every_phase_is_reported_in_one_run() {
    use support::two_errors::{CASES, CSV_NAME};
    for case in &CASES {
        let dir = TempDir::new("two-errors");
        dir.write("two.toml", case.sections);
        if let Some(csv) = case.csv {
            dir.write(CSV_NAME, csv);
        }
        let r = run_in(&dir.path, &["check", "-c", "two.toml", "--format", "json"]);
        assert_code(&r, 1);
        let v = r.json();
        assert_eq!(v["ok"], json!(false), "{}: {v}", case.name);
        let errors = v["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 2, "{}: {v}", case.name);
        for (got, want) in errors.iter().zip(&case.expect) {
            let file = if want.in_config { "two.toml" } else { CSV_NAME };
            assert_problem(
                got,
                want.code,
                file,
                u64::from(want.line),
                want.column.map(u64::from),
                Some(want.rule),
            );
        }

        let r = run_in(&dir.path, &["check", "-c", "two.toml"]);
        assert_code(&r, 1);
        let out = r.all();
        for want in &case.expect {
            let prefix = want.prefix("two.toml", CSV_NAME, 0);
            assert!(
                out.lines().any(|l| l.starts_with(&prefix)),
                "{}: no line starts with {prefix:?}:\n{out}",
                case.name
            );
        }
        assert!(
            out.contains("two.toml: does not load: 2 errors"),
            "{}:\n{out}",
            case.name
        );

        let r = run_in(&dir.path, &["serve", "-c", "two.toml"]);
        assert_code(&r, 1);
        for want in &case.expect {
            let prefix = want.prefix("two.toml", CSV_NAME, 0);
            assert!(
                r.stderr.lines().any(|l| l.starts_with(&prefix)),
                "{}: serve did not report {prefix:?}:\n{}",
                case.name,
                r.stderr
            );
        }
    }
}
