//! docs/configuration.md ("Lint"): every error and warning code, through
//! `pingora_redirect::load` on files
//! written to a fresh temporary directory, with its exact code, file, line and
//! rule id.
//!
//! Problems that concern a whole `[[redirect]]` are placed on its
//! `[[redirect]]` line; problems about one key on that key's line; list rows on
//! their CSV line.

mod support;

use pingora_redirect::{Loaded, Problem, Severity};
use std::path::{Path, PathBuf};
use support::TempDir;

/// A reference time after every fixed date below but before the far-future
/// ones: 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

/// A temporary directory holding one configuration and its lists; removed on drop.
struct Fixture {
    tmp: TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new("lint");
        let dir = tmp.path.clone();
        Fixture { tmp, dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        self.tmp.write(name, text)
    }

    /// The name problems give a file of this fixture.
    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn load(&self, config: &str) -> Loaded {
        let path = self.write("redirects.toml", config);
        pingora_redirect::load(&path, NOW).unwrap_or_else(|p| panic!("load failed on I/O: {p}"))
    }
}

fn dump(l: &Loaded) -> String {
    l.problems
        .iter()
        .map(|p| format!("  {p}  [{:?}]", (&p.file, p.line, p.column, &p.rule)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `l` holds exactly one problem with `code`, with this
/// severity, file, line and rule, and returns it.
fn one<'a>(
    l: &'a Loaded,
    severity: Severity,
    code: &str,
    file: &str,
    line: Option<u32>,
    rule: Option<&str>,
) -> &'a Problem {
    let with_code: Vec<&Problem> = l.problems.iter().filter(|p| p.code == code).collect();
    assert_eq!(
        with_code.len(),
        1,
        "expected exactly one `{code}` problem; got:\n{}",
        dump(l)
    );
    let p = with_code[0];
    assert_eq!(p.severity, severity, "severity of `{code}`:\n{}", dump(l));
    assert_eq!(
        p.file.as_deref(),
        Some(file),
        "file of `{code}`:\n{}",
        dump(l)
    );
    assert_eq!(p.line, line, "line of `{code}`:\n{}", dump(l));
    assert_eq!(p.rule.as_deref(), rule, "rule of `{code}`:\n{}", dump(l));
    match severity {
        Severity::Error => assert!(!l.ok(), "an error must stop the load:\n{}", dump(l)),
        Severity::Warning => assert!(
            l.ok() && l.errors().next().is_none(),
            "a warning alone must not stop the load:\n{}",
            dump(l)
        ),
    }
    p
}

fn error<'a>(l: &'a Loaded, code: &str, file: &str, line: u32, rule: Option<&str>) -> &'a Problem {
    one(l, Severity::Error, code, file, Some(line), rule)
}

fn warning<'a>(l: &'a Loaded, code: &str, file: &str, line: u32, rule: &str) -> &'a Problem {
    one(l, Severity::Warning, code, file, Some(line), Some(rule))
}

fn assert_clean(l: &Loaded) {
    assert!(
        l.ok() && l.problems.is_empty(),
        "expected no problem at all:\n{}",
        dump(l)
    );
}

fn assert_no(l: &Loaded, code: &str) {
    assert!(
        l.problems.iter().all(|p| p.code != code),
        "expected no `{code}`:\n{}",
        dump(l)
    );
}

const CFG: &str = "redirects.toml";

// ───────────────────────── parse ─────────────────────────

#[test]
fn parse_error_has_line_and_column() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = = "/x"
to = "/y"
"#,
    );
    let p = error(&l, "parse", &fx.file(CFG), 3, None);
    assert_eq!(p.column, Some(8), "the second `=`: {p}");
}

#[test]
fn parse_error_for_unterminated_string_points_at_its_line() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y
"#,
    );
    let p = error(&l, "parse", &fx.file(CFG), 4, None);
    assert!(p.column.is_some(), "a parse error has a column: {p}");
}

// ───────────────────────── unknown_key ─────────────────────────

#[test]
fn unknown_key_in_a_redirect_names_line_column_and_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"# redirects
[[redirect]]
id = "a"
path = "/x"
to = "/y"
statsu = 301
"#,
    );
    let p = error(&l, "unknown_key", &fx.file(CFG), 6, Some("a"));
    assert_eq!(p.column, Some(1));
    assert!(p.message.contains("statsu"), "{p}");
}

#[test]
fn unknown_key_in_a_section() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[defaults]
status = 308
querry = "drop"
"#,
    );
    error(&l, "unknown_key", &fx.file(CFG), 3, None);
}

#[test]
fn unknown_top_level_section() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[redirects]
x = 1
"#,
    );
    error(&l, "unknown_key", &fx.file(CFG), 1, None);
}

// ───────────────────────── duplicate_id ─────────────────────────

#[test]
fn duplicate_id_is_reported_on_the_second_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"

[[redirect]]
id = "a"
path = "/z"
to = "/y"
"#,
    );
    error(&l, "duplicate_id", &fx.file(CFG), 6, Some("a"));
}

#[test]
fn duplicate_id_between_a_redirect_and_a_list() {
    let fx = Fixture::new();
    fx.write("legacy.csv", "old.example/a,https://new.example/b\n");
    let l = fx.load(
        r#"[[redirect]]
id = "legacy"
path = "/x"
to = "/y"

[[list]]
id = "legacy"
file = "legacy.csv"
"#,
    );
    error(&l, "duplicate_id", &fx.file(CFG), 6, Some("legacy"));
}

// ───────────────────────── duplicate_rule ─────────────────────────

#[test]
fn duplicate_rule_same_host_exact_path_and_conditions() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
host = "old.example"
path = "/x"
methods = ["GET"]
to = "/y"

[[redirect]]
id = "b"
host = "OLD.example."
path = "/x"
methods = ["GET"]
to = "/z"
"#,
    );
    error(&l, "duplicate_rule", &fx.file(CFG), 8, Some("b"));
}

#[test]
fn duplicate_rule_same_prefix_with_and_without_trailing_slash() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
prefix = "/guide"
to = "/y"

[[redirect]]
id = "b"
prefix = "/guide/"
to = "/z"
"#,
    );
    error(&l, "duplicate_rule", &fx.file(CFG), 6, Some("b"));
}

#[test]
fn duplicate_rule_same_regex() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
regex = "^/x/(.*)$"
to = "/y/${1}"

[[redirect]]
id = "b"
regex = "^/x/(.*)$"
to = "/z/${1}"
"#,
    );
    error(&l, "duplicate_rule", &fx.file(CFG), 6, Some("b"));
}

#[test]
fn duplicate_rule_from_a_list_row_names_the_csv_line() {
    let fx = Fixture::new();
    fx.write(
        "legacy.csv",
        "old.example/a,https://new.example/a\nold.example/b,https://new.example/b\n",
    );
    let l = fx.load(
        r#"[[redirect]]
id = "b"
host = "old.example"
path = "/b"
to = "https://new.example/other"

[[list]]
id = "legacy"
file = "legacy.csv"
"#,
    );
    error(
        &l,
        "duplicate_rule",
        &fx.file("legacy.csv"),
        2,
        Some("legacy"),
    );
}

#[test]
fn same_path_with_different_conditions_is_not_a_duplicate() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
methods = ["POST"]
to = "/y"

[[redirect]]
id = "b"
path = "/x"
scheme = "http"
to = "/z"

[[redirect]]
id = "c"
host = "old.example"
path = "/x"
to = "/z"
"#,
    );
    assert_clean(&l);
}

// ───────────────────────── bad_regex ─────────────────────────

#[test]
fn bad_regex_names_the_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "ok"
path = "/x"
to = "/y"

[[redirect]]
id = "broken"
regex = "^/(unclosed"
to = "/y"
"#,
    );
    error(&l, "bad_regex", &fx.file(CFG), 6, Some("broken"));
}

// ───────────────────────── bad_capture ─────────────────────────

fn capture_case(regex: &str, to: &str) -> (Fixture, Loaded) {
    let fx = Fixture::new();
    let cfg = format!(
        "[[redirect]]\nid = \"ok\"\npath = \"/x\"\nto = \"/y\"\n\n[[redirect]]\nid = \"cap\"\nregex = '{regex}'\nto = \"{to}\"\n"
    );
    let l = fx.load(&cfg);
    (fx, l)
}

#[test]
fn bad_capture_numbered_group_that_does_not_exist() {
    let (fx, l) = capture_case("^/blog/(\\d+)$", "/posts/${2}");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn bad_capture_named_group_that_does_not_exist() {
    let (fx, l) = capture_case("^/blog/(?P<year>\\d+)$", "/posts/${month}");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn bad_capture_group_in_the_host_of_to() {
    let (fx, l) = capture_case("^/(\\w+)/", "https://${1}.example/");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn bad_capture_group_as_the_whole_host_of_to() {
    let (fx, l) = capture_case("^/go/([^/]+)", "https://${1}/x");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn bad_capture_group_in_the_port_of_to() {
    let (fx, l) = capture_case("^/(\\d+)/", "https://new.example:${1}/");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn bad_capture_host_variable_without_a_host() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "tls"
prefix = "/"
scheme = "http"
to = "https://${host}"
"#,
    );
    error(&l, "bad_capture", &fx.file(CFG), 1, Some("tls"));
}

#[test]
fn bad_capture_host_variable_in_the_path_without_a_host() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "sites"
prefix = "/"
to = "https://new.example/${host}"
"#,
    );
    error(&l, "bad_capture", &fx.file(CFG), 1, Some("sites"));
}

#[test]
fn groups_in_path_query_and_fragment_and_host_variable_with_host_are_fine() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "re"
host = "*.old.example"
regex = '^/(?P<a>\w+)/(\d+)$'
to = "https://${host}/x/${a}?n=${2}#${1}"
"#,
    );
    assert_clean(&l);
}

// ───────────────────────── unknown_pool ─────────────────────────

#[test]
fn unknown_pool_in_a_redirect() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[pools.backup]
targets = ["https://backup.example.net"]

[[redirect]]
id = "a"
prefix = "/x"
pool = "bakup"
"#,
    );
    error(&l, "unknown_pool", &fx.file(CFG), 7, Some("a"));
}

#[test]
fn unknown_pool_as_failover_pool() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[upstream]
backends = ["127.0.0.1:3000"]
failover_pool = "nope"
"#,
    );
    error(&l, "unknown_pool", &fx.file(CFG), 3, None);
}

#[test]
fn unknown_pool_as_maintenance_redirect_pool() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[maintenance]
enabled = false
redirect_pool = "nope"
"#,
    );
    error(&l, "unknown_pool", &fx.file(CFG), 3, None);
}

// ───────────────────────── bad_time_window ─────────────────────────

#[test]
fn bad_time_window_until_before_from() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "sale"
path = "/x"
to = "/y"
active_from = 2030-12-24T00:00:00Z
active_until = 2030-12-01T00:00:00Z
"#,
    );
    // Placed on `active_from`, where the window starts.
    error(&l, "bad_time_window", &fx.file(CFG), 5, Some("sale"));
}

// ───────────────────────── bad_target ─────────────────────────

fn target_case(to_toml: &str) -> (Fixture, Loaded) {
    let fx = Fixture::new();
    let cfg = format!(
        "[[redirect]]\nid = \"ok\"\npath = \"/x\"\nto = \"/y\"\n\n[[redirect]]\nid = \"t\"\npath = \"/a\"\nto = {to_toml}\n"
    );
    let l = fx.load(&cfg);
    (fx, l)
}

#[test]
fn bad_target_host_without_scheme() {
    let (fx, l) = target_case(r#""evil.example/x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_scheme_relative() {
    let (fx, l) = target_case(r#""//evil.example/x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_slash_backslash() {
    let (fx, l) = target_case(r#"'/\evil.example'"#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_other_scheme() {
    let (fx, l) = target_case(r#""javascript:alert(1)""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_ftp_url() {
    let (fx, l) = target_case(r#""ftp://files.example/x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_control_character() {
    let (fx, l) = target_case(r#""/y\r\nSet-Cookie: a=b""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_tab_character() {
    let (fx, l) = target_case(r#""https://new.example/a\tb""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_userinfo() {
    let (fx, l) = target_case(r#""https://new.example@evil.example/""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_in_a_list_row() {
    let fx = Fixture::new();
    fx.write(
        "legacy.csv",
        "old.example/a,https://new.example/a\nold.example/b,//evil.example/b\n",
    );
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "legacy.csv"
"#,
    );
    let p = l
        .problems
        .iter()
        .find(|p| p.is_error())
        .unwrap_or_else(|| panic!("expected an error:\n{}", dump(&l)));
    assert_eq!(p.code, "bad_list_row", "{}", dump(&l));
    assert!(
        p.message.contains("target \"//evil.example/b\""),
        "the message names the bad target: {}",
        p.message
    );
    assert_eq!(p.file.as_deref(), Some(fx.file("legacy.csv").as_str()));
    assert_eq!(p.line, Some(2));
    assert_eq!(p.rule.as_deref(), Some("legacy"));
    assert!(!l.ok());
}

#[test]
fn every_bad_row_of_a_list_is_bad_list_row_with_what_is_wrong() {
    let fx = Fixture::new();
    fx.write(
        "legacy.csv",
        "old.example/a,https://new.example/a\n\
         old.example/b,javascript:alert(1)\n\
         old.example/../c,https://new.example/c\n\
         old.example/d,https://new.example/${path}\n\
         old.example/e,https://new.example/e,399\n",
    );
    let l = fx.load("[[list]]\nid = \"legacy\"\nfile = \"legacy.csv\"\n");
    let csv = fx.file("legacy.csv");
    let rows: Vec<(&str, Option<u32>, Option<&str>, &str)> = l
        .problems
        .iter()
        .map(|p| (p.code, p.line, p.rule.as_deref(), p.message.as_str()))
        .collect();
    assert!(
        l.problems
            .iter()
            .all(|p| p.file.as_deref() == Some(csv.as_str())),
        "{}",
        dump(&l)
    );
    let lines: Vec<u32> = rows.iter().filter_map(|r| r.1).collect();
    assert_eq!(lines, vec![2, 3, 4, 5], "{}", dump(&l));
    for (code, line, rule, message) in &rows {
        assert_eq!(*code, "bad_list_row", "line {line:?}: {}", dump(&l));
        assert_eq!(*rule, Some("legacy"), "{}", dump(&l));
        let names = match line {
            Some(2) => "target \"javascript:alert(1)\"",
            Some(3) => "source \"old.example/../c\"",
            Some(4) => "target \"https://new.example/${path}\"",
            _ => "status_code is \"399\"",
        };
        assert!(message.contains(names), "line {line:?}: {message}");
    }
    assert!(!l.ok());
}

#[test]
fn bad_target_port_out_of_range() {
    let (fx, l) = target_case(r#""https://new.example:99999/x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_without_host() {
    let (fx, l) = target_case(r#""https:///x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn bad_target_space_in_host() {
    let (fx, l) = target_case(r#""https://new example/x""#);
    error(&l, "bad_target", &fx.file(CFG), 6, Some("t"));
}

#[test]
fn good_targets_load_clean() {
    for to in [
        r#""/""#,
        r#""/new?x=1#top""#,
        r#""https://new.example""#,
        r#""http://new.example:8080/a b/é?q=é""#,
        r#""HTTPS://Bücher.example/""#,
        r#""https://[2001:db8::1]:8443/v6""#,
    ] {
        let (_fx, l) = target_case(to);
        assert!(l.ok() && l.problems.is_empty(), "to = {to}:\n{}", dump(&l));
    }
}

// ───────────────────────── bad_value ─────────────────────────

#[test]
fn bad_value_status() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"
status = 305
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 5, Some("a"));
}

#[test]
fn bad_value_defaults_status() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[defaults]
status = 200
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 2, None);
}

#[test]
fn bad_value_duration() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[server]
grace_period = "5 parsecs"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 2, None);
}

#[test]
fn bad_value_health_check_interval() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[pools.backup]
targets = ["https://backup.example.net"]
health_check = { type = "tcp", interval = "often" }
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 3, None);
}

#[test]
fn bad_value_admin_address() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[server]
admin = "localhost"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 2, None);
}

#[test]
fn bad_value_method() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"
methods = ["GET", "FETCH"]
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 5, Some("a"));
}

#[test]
fn bad_value_query_mode() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"
query = "keep"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 5, Some("a"));
}

#[test]
fn bad_value_scheme_condition() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"
scheme = "ftp"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 5, Some("a"));
}

#[test]
fn bad_value_selection() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[upstream]
backends = ["127.0.0.1:3000"]
selection = "fastest"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 3, None);
}

#[test]
fn bad_value_id_characters() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "has space"
path = "/x"
to = "/y"
"#,
    );
    let p = l
        .problems
        .iter()
        .find(|p| p.code == "bad_value")
        .unwrap_or_else(|| panic!("expected bad_value:\n{}", dump(&l)));
    assert_eq!(p.line, Some(2), "{p}");
    assert!(!l.ok());
}

#[test]
fn bad_value_negative_retry_after() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/y"
retry_after = -1
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 5, Some("a"));
}

#[test]
fn bad_value_path_without_leading_slash() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "docs"
to = "/y"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 3, Some("a"));
}

#[test]
fn bad_value_rule_host_with_port() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
host = "old.example:8080"
path = "/x"
to = "/y"
"#,
    );
    error(&l, "bad_value", &fx.file(CFG), 3, Some("a"));
}

// ───────────────────────── bad_list_row ─────────────────────────

fn list_case(csv: &str) -> (Fixture, Loaded) {
    let fx = Fixture::new();
    fx.write("legacy.csv", csv);
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "legacy.csv"
"#,
    );
    (fx, l)
}

#[test]
fn bad_list_row_one_column() {
    let (fx, l) = list_case(
        "old.example/a,https://new.example/a\nold.example/b\nold.example/c,https://new.example/c\n",
    );
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        2,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_eight_columns() {
    let (fx, l) = list_case(
        "old.example/a,https://new.example/a\nold.example/c,https://new.example/c\nold.example/b,https://new.example/b,301,FALSE,FALSE,FALSE,FALSE,FALSE\n",
    );
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        3,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_status() {
    let (fx, l) = list_case("old.example/a,https://new.example/a,200\n");
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        1,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_boolean() {
    let (fx, l) = list_case(
        "old.example/a,https://new.example/a\nold.example/b,https://new.example/b,301,YES\n",
    );
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        2,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_source_scheme() {
    let (fx, l) = list_case("ftp://old.example/a,https://new.example/a\n");
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        1,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_line_counts_blank_lines() {
    let (fx, l) = list_case(
        "old.example/a,https://new.example/a\n\nold.example/b,https://new.example/b,999\n",
    );
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        3,
        Some("legacy"),
    );
}

#[test]
fn bad_list_row_line_with_crlf_endings() {
    let (fx, l) = list_case(
        "old.example/a,https://new.example/a\r\nold.example/b,https://new.example/b\r\nold.example/c\r\n",
    );
    error(
        &l,
        "bad_list_row",
        &fx.file("legacy.csv"),
        3,
        Some("legacy"),
    );
}

#[test]
fn good_list_of_two_to_seven_columns_loads_clean() {
    let (_fx, l) = list_case(
        "a.example/1,https://new.example/1\n\
         a.example/2,https://new.example/2,302\n\
         a.example/3,https://new.example/3,307,TRUE\n\
         a.example/4,https://new.example/4,308,TRUE,TRUE\n\
         a.example/5,https://new.example/5,301,FALSE,FALSE,TRUE\n\
         https://a.example/6,https://new.example/6,303,TRUE,TRUE,TRUE,TRUE\n",
    );
    assert_clean(&l);
    assert_eq!(l.rules.as_ref().map(|r| r.len()), Some(6));
}

// ───────────────────────── io ─────────────────────────

#[test]
fn io_for_a_missing_list() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "missing.csv"
"#,
    );
    one(
        &l,
        Severity::Error,
        "io",
        &fx.file("missing.csv"),
        None,
        Some("legacy"),
    );
}

#[test]
fn io_for_a_missing_configuration_is_an_err() {
    let fx = Fixture::new();
    let p = pingora_redirect::load(&fx.dir.join("nope.toml"), NOW)
        .err()
        .expect("Err");
    assert_eq!(p.code, "io");
    assert!(p.is_error());
    assert_eq!(p.file.as_deref(), Some(fx.file("nope.toml").as_str()));
}

// ───────────────────────── loop ─────────────────────────

#[test]
fn loop_a_to_b_to_a() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/a"
to = "/b"

[[redirect]]
id = "b"
path = "/b"
to = "/a"
"#,
    );
    let p = error(&l, "loop", &fx.file(CFG), 1, Some("a"));
    assert!(
        p.message.contains("\"a\"") && p.message.contains("\"b\""),
        "names both rules: {p}"
    );
}

#[test]
fn loop_through_absolute_targets_on_the_same_host() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "x"
path = "/unrelated"
to = "/elsewhere"

[[redirect]]
id = "a"
host = "old.example"
path = "/a"
to = "https://old.example/b"

[[redirect]]
id = "b"
host = "old.example"
path = "/b"
to = "https://OLD.example/a?from=b"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 6, Some("a"));
}

#[test]
fn loop_prefix_rule_whose_target_falls_under_itself() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "docs"
prefix = "/docs"
to = "/docs/v2"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("docs"));
}

#[test]
fn loop_host_prefix_rule_to_itself_on_same_host_and_scheme() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "all"
host = "old.example"
prefix = "/"
to = "https://old.example/new"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("all"));
}

#[test]
fn loop_through_list_rows_names_the_csv() {
    let fx = Fixture::new();
    fx.write(
        "legacy.csv",
        "old.example/x,https://new.example/x\nold.example/a,https://old.example/b\nold.example/b,https://old.example/a\n",
    );
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "legacy.csv"
"#,
    );
    error(&l, "loop", &fx.file("legacy.csv"), 2, Some("legacy"));
}

#[test]
fn no_loop_for_http_to_https_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "tls"
host = "old.example"
prefix = "/"
scheme = "http"
to = "https://old.example"
status = 308
"#,
    );
    assert_clean(&l);
}

#[test]
fn no_loop_for_http_to_https_rule_with_host_variable() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "tls"
host = ".old.example"
prefix = "/"
scheme = "http"
to = "https://${host}"
status = 308
"#,
    );
    assert_clean(&l);
}

#[test]
fn no_loop_for_a_pool_target() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[pools.same]
targets = ["https://old.example"]

[[redirect]]
id = "all"
host = "old.example"
prefix = "/"
pool = "same"
"#,
    );
    assert_no(&l, "loop");
    assert_no(&l, "chain");
    assert!(l.ok(), "{}", dump(&l));
}

#[test]
fn no_loop_for_prefix_rule_pointing_outside_itself() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "docs"
prefix = "/docs"
to = "/documentation"
"#,
    );
    assert_clean(&l);
}

#[test]
fn no_loop_for_absolute_target_on_another_host() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "docs"
host = "old.example"
prefix = "/docs"
to = "https://new.example/docs/v2"
"#,
    );
    assert_clean(&l);
}

// ───────────────────────── chain ─────────────────────────

#[test]
fn chain_a_to_b_to_c_names_the_rules() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/a"
to = "/b"

[[redirect]]
id = "b"
path = "/b"
to = "/c"
"#,
    );
    let p = warning(&l, "chain", &fx.file(CFG), 1, "a");
    assert!(
        p.message.contains("\"a\"") && p.message.contains("\"b\""),
        "says which rule to point where: {p}"
    );
}

#[test]
fn chain_through_a_list_row() {
    let fx = Fixture::new();
    fx.write(
        "legacy.csv",
        "old.example/x,https://new.example/x\nold.example/a,https://old.example/b\n",
    );
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "legacy.csv"

[[redirect]]
id = "b"
host = "old.example"
path = "/b"
to = "https://new.example/c"
"#,
    );
    let p = warning(&l, "chain", &fx.file("legacy.csv"), 2, "legacy");
    assert!(p.message.contains("\"b\""), "{p}");
}

// ───────────────────────── shadowed ─────────────────────────

#[test]
fn shadowed_by_an_earlier_unconditional_rule_with_same_host_and_path() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "always"
path = "/a"
to = "/b"

[[redirect]]
id = "never"
path = "/a"
methods = ["GET"]
to = "/c"
"#,
    );
    let p = warning(&l, "shadowed", &fx.file(CFG), 6, "never");
    assert!(p.message.contains("always"), "names the winner: {p}");
}

#[test]
fn not_shadowed_when_the_conditional_rule_comes_first() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "get"
path = "/a"
methods = ["GET"]
to = "/c"

[[redirect]]
id = "rest"
path = "/a"
to = "/b"
"#,
    );
    assert_clean(&l);
}

// ───────────────────────── expired, permanent_with_expiry ─────────────────────────

#[test]
fn expired_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "x"
path = "/x"
to = "/y"

[[redirect]]
id = "sale"
path = "/a"
to = "/b"
status = 307
active_from = 2026-12-01T00:00:00Z
active_until = 2026-12-24T00:00:00Z
"#,
    );
    warning(&l, "expired", &fx.file(CFG), 6, "sale");
    assert_no(&l, "permanent_with_expiry");
}

#[test]
fn not_expired_before_active_until() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "sale"
path = "/a"
to = "/b"
status = 302
active_until = 2036-12-24T00:00:00Z
"#,
    );
    assert_clean(&l);
}

#[test]
fn permanent_with_expiry_for_301() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "x"
path = "/x"
to = "/y"

[[redirect]]
id = "sale"
path = "/a"
to = "/b"
status = 301
active_until = 2036-12-24T00:00:00Z
"#,
    );
    warning(&l, "permanent_with_expiry", &fx.file(CFG), 6, "sale");
    assert_no(&l, "expired");
}

#[test]
fn permanent_with_expiry_for_308_from_defaults() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[defaults]
status = 308

[[redirect]]
id = "sale"
path = "/a"
to = "/b"
active_until = 2036-12-24T00:00:00Z
"#,
    );
    warning(&l, "permanent_with_expiry", &fx.file(CFG), 4, "sale");
}

#[test]
fn no_permanent_with_expiry_without_active_until() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "sale"
path = "/a"
to = "/b"
status = 301
active_from = 2026-12-01T00:00:00Z
"#,
    );
    assert_clean(&l);
}

// ───────────────────────── a clean configuration ─────────────────────────

/// The full configuration example (every key of docs/configuration.md), with
/// a real list file.
const FULL_EXAMPLE: &str = r#"[server]
listen  = ["127.0.0.1:8080"]
admin   = "127.0.0.1:9091"
threads = 2
h2c     = false
grace_period = "5s"
trusted_proxies = []
watch   = false

[defaults]
status = 307
query  = "preserve"
preserve_method = true
permanent_cache_control = "max-age=86400"
temporary_cache_control = "no-store"

[upstream]
backends  = ["127.0.0.1:3000", "127.0.0.1:3001"]
selection = "round_robin"
health_check = { type = "http", path = "/healthz", interval = "2s" }
failover_pool = "backup"

[maintenance]
enabled  = false
redirect_pool = "backup"
retry_after = 300

[pools.backup]
targets = ["https://backup1.example.net", { url = "https://backup2.example.net", weight = 3 }]
selection = "round_robin"
hash_key  = "client_ip"
health_check = { type = "tcp", interval = "5s" }

[[redirect]]
id     = "docs"
host   = "old.example"
prefix = "/docs"
to     = "https://new.example/documentation"
status = 307
query  = "preserve"
keep_suffix = true
methods = ["GET", "HEAD"]
scheme  = "http"
case_insensitive = false
active_from  = 2036-12-01T00:00:00Z
active_until = 2036-12-24T00:00:00Z
cache_control = "no-store"
retry_after = 120
headers = { "X-Redirect-Reason" = "docs moved" }

[[list]]
id   = "legacy"
file = "legacy.csv"
format = "cloudflare"
metrics = "list"
"#;

#[test]
fn the_spec_example_loads_clean_without_the_hash_only_key() {
    let fx = Fixture::new();
    fx.write("legacy.csv", "old.example/a,https://new.example/b\n");
    let cfg = FULL_EXAMPLE.replace("hash_key  = \"client_ip\"\n", "");
    assert_ne!(cfg, FULL_EXAMPLE);
    let l = fx.load(&cfg);
    assert_clean(&l);
}

#[test]
fn the_spec_example_loads_clean_with_hash_selection() {
    let fx = Fixture::new();
    fx.write("legacy.csv", "old.example/a,https://new.example/b\n");
    let cfg = FULL_EXAMPLE.replace(
        "selection = \"round_robin\"\nhash_key",
        "selection = \"hash\"\nhash_key",
    );
    assert_ne!(cfg, FULL_EXAMPLE);
    let l = fx.load(&cfg);
    assert_clean(&l);
}

// ───────────────────────── set aside: where the library differs ─────────────────────────
// Run with `cargo test --release --test lint -- --ignored`.

#[test]
fn spec_gap_the_spec_example_loads_verbatim() {
    let fx = Fixture::new();
    fx.write("legacy.csv", "old.example/a,https://new.example/b\n");
    let l = fx.load(FULL_EXAMPLE);
    assert_clean(&l);
}

#[test]
fn bad_capture_group_in_the_scheme_of_to() {
    let (fx, l) = capture_case("^/(https?)/", "${1}://new.example/x");
    error(&l, "bad_capture", &fx.file(CFG), 6, Some("cap"));
}

#[test]
fn shadowed_regex_identical_to_an_earlier_unconditional_regex() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "always"
regex = "^/a/(.*)$"
to = "/b/${1}"

[[redirect]]
id = "never"
regex = "^/a/(.*)$"
methods = ["GET"]
to = "/c/${1}"
"#,
    );
    warning(&l, "shadowed", &fx.file(CFG), 6, "never");
}

#[test]
fn loop_prefix_rule_on_a_wildcard_host_whose_relative_target_falls_under_itself() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "docs"
host = "*.old.example"
prefix = "/docs"
to = "/docs/v2"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("docs"));
}

#[test]
fn loop_prefix_rule_on_a_dot_wildcard_host_whose_relative_target_falls_under_itself() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "docs"
host = ".old.example"
prefix = "/docs"
to = "/docs/v2"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("docs"));
}

#[test]
fn loop_on_a_method_preserving_rule_for_post_only() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "api"
prefix = "/api"
methods = ["POST"]
status = 308
to = "/api/v2"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("api"));
}

#[test]
fn loop_with_a_scheme_condition_kept_by_a_relative_target() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "plain"
host = "old.example"
prefix = "/"
scheme = "http"
to = "/moved"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("plain"));
}

#[test]
fn loop_through_an_absolute_target_into_a_wildcard_rule() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "wild"
host = "*.old.example"
path = "/a"
to = "https://www.old.example/a"
"#,
    );
    error(&l, "loop", &fx.file(CFG), 1, Some("wild"));
}

#[test]
fn chain_across_hosts() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "one"
host = "a.example"
path = "/x"
to = "https://b.example/y"

[[redirect]]
id = "two"
host = "b.example"
path = "/y"
to = "https://c.example/z"
"#,
    );
    let p = warning(&l, "chain", &fx.file(CFG), 1, "one");
    assert!(p.message.contains("\"two\""), "{p}");
}

#[test]
fn chain_of_three_hops_is_one_warning_per_rule_that_starts_it() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/a"
to = "/b"

[[redirect]]
id = "b"
path = "/b"
to = "/c"

[[redirect]]
id = "c"
path = "/c"
to = "/d"
"#,
    );
    let chains: Vec<&Problem> = l.problems.iter().filter(|p| p.code == "chain").collect();
    let rules: Vec<Option<&str>> = chains.iter().map(|p| p.rule.as_deref()).collect();
    assert_eq!(rules, vec![Some("a"), Some("b")], "{}", dump(&l));
    assert!(
        chains[0].message.contains("\"c\""),
        "names the last rule: {}",
        chains[0]
    );
    assert!(l.ok());
}

#[test]
fn duplicate_rule_case_insensitive_paths_differing_in_case() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/Docs"
case_insensitive = true
to = "/y"

[[redirect]]
id = "b"
path = "/docs"
case_insensitive = true
to = "/z"
"#,
    );
    error(&l, "duplicate_rule", &fx.file(CFG), 7, Some("b"));
}

#[test]
fn unknown_key_in_a_list() {
    let fx = Fixture::new();
    fx.write("legacy.csv", "old.example/a,https://new.example/b\n");
    let l = fx.load(
        r#"[[list]]
id = "legacy"
file = "legacy.csv"
fromat = "cloudflare"
"#,
    );
    error(&l, "unknown_key", &fx.file(CFG), 4, Some("legacy"));
}

#[test]
fn fixture_paths_are_inside_the_temp_dir() {
    let fx = Fixture::new();
    assert!(fx.dir.starts_with(std::env::temp_dir()));
    assert!(Path::new(&fx.file(CFG)).starts_with(&fx.dir));
}

// ───────────────────────── request conditions and sampling ─────────────────────────

#[test]
fn rules_told_apart_by_a_header_value_are_neither_duplicate_nor_shadowed() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/a"
match_headers = { "X-Variant" = "a" }

[[redirect]]
id = "b"
path = "/x"
to = "/b"
match_headers = { "x-variant" = "b" }

[[redirect]]
id = "rest"
path = "/x"
to = "/c"
"#,
    );
    assert_clean(&l);
}

#[test]
fn the_same_header_condition_twice_is_a_duplicate_whatever_the_name_case() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "a"
path = "/x"
to = "/a"
match_headers = { "X-Variant" = "a", "X-Team" = true }

[[redirect]]
id = "b"
path = "/x"
to = "/b"
match_headers = { "x-team" = true, "x-variant" = "a" }
"#,
    );
    error(&l, "duplicate_rule", &fx.file(CFG), 7, Some("b"));
}

#[test]
fn an_unconditional_rule_shadows_a_conditional_one_after_it() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "all"
path = "/x"
to = "/a"

[[redirect]]
id = "beta"
path = "/x"
to = "/b"
match_cookies = { beta = true }
sample = 50
"#,
    );
    warning(&l, "shadowed", &fx.file(CFG), 6, "beta");
}

#[test]
fn bad_condition_values_have_their_places() {
    let fx = Fixture::new();
    let l = fx.load(
        r#"[[redirect]]
id = "h"
path = "/h"
to = "/a"
match_headers = { "X Bad" = "1" }

[[redirect]]
id = "c"
path = "/c"
to = "/a"
match_client = ["10.0.0.0/8", "10.0.0.300/8"]

[[redirect]]
id = "s"
path = "/s"
to = "/a"
sample = 100.5

[[redirect]]
id = "k"
path = "/k"
to = "/a"
sample = 5
sample_key = "ip"

[[redirect]]
id = "v"
path = "/v"
to = "/a"
match_query = { q = 1 }

[[redirect]]
id = "w"
path = "/w"
to = "/a"
sample_key = "client_ip"
"#,
    );
    let bad: Vec<(u32, Option<u32>, &str)> = l
        .problems
        .iter()
        .map(|p| {
            assert_eq!(p.code, "bad_value", "{}", dump(&l));
            assert_eq!(p.file.as_deref(), Some(fx.file(CFG).as_str()));
            (
                p.line.unwrap_or(0),
                p.column,
                p.rule.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        bad,
        vec![
            (5, Some(19), "h"),
            (11, Some(31), "c"),
            (17, Some(10), "s"),
            (24, Some(14), "k"),
            (30, Some(21), "v"),
            (36, Some(14), "w"),
        ],
        "{}",
        dump(&l)
    );
}
