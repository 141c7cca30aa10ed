//! docs/configuration.md ("Conditions and sampling"): rules that answer by
//! header, cookie, query and client, through a running `serve` over HTTP/1.1
//! and h2c with their `Vary` and `Cache-Control`; what `explain` says about
//! them; and the statistics of a sampled A/B rule, stable across processes
//! and reloads.

mod support;

use pingora_redirect::{compile, Decision, RequestView, Scheme, Sources};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::*;

const RULES: &str = r#"
[[redirect]]
id = "beta-header"
host = "a.example"
path = "/app"
to = "https://beta.example/app"
match_headers = { "X-Beta" = "1" }

[[redirect]]
id = "beta-cookie"
host = "a.example"
path = "/app"
to = "https://beta.example/cookie"
match_cookies = { beta = "yes" }

[[redirect]]
id = "campaign"
host = "a.example"
path = "/app"
to = "https://landing.example/news"
query = "drop"
match_query = { utm_source = "news letter" }

[[redirect]]
id = "office"
host = "a.example"
path = "/app"
to = "https://intranet.example/app"
status = 302
match_client = ["192.0.2.0/24"]

[[redirect]]
id = "stable"
host = "a.example"
path = "/app"
to = "https://www.example/app"
status = 301
"#;

/// status, Location, Vary, Cache-Control.
type Answer = (u16, String, Option<String>, String);

/// Header fields of a request, in order.
type Fields = &'static [(&'static str, &'static str)];

/// Each request (extra header fields, query) and what it must get.
fn cases() -> Vec<(Fields, &'static str, Answer)> {
    let a = |status: u16, location: &str, vary: Option<&str>, cc: &str| -> Answer {
        (status, location.into(), vary.map(Into::into), cc.into())
    };
    vec![
        (
            &[("X-Beta", "1")],
            "",
            a(307, "https://beta.example/app", Some("x-beta"), "no-store"),
        ),
        (
            &[("X-Beta", "2")],
            "",
            a(301, "https://www.example/app", None, "max-age=86400"),
        ),
        (
            &[("Cookie", "a=1"), ("Cookie", "beta=yes")],
            "",
            a(
                307,
                "https://beta.example/cookie",
                Some("cookie"),
                "no-store",
            ),
        ),
        (
            &[("Cookie", "beta=no")],
            "",
            a(301, "https://www.example/app", None, "max-age=86400"),
        ),
        (
            &[],
            "?utm_source=news+letter&x=1",
            a(307, "https://landing.example/news", None, "no-store"),
        ),
        (
            &[],
            "?utm_source=news%20letter",
            a(307, "https://landing.example/news", None, "no-store"),
        ),
        (
            &[("X-Forwarded-For", "192.0.2.77")],
            "",
            a(302, "https://intranet.example/app", None, "no-store"),
        ),
        (
            &[("X-Forwarded-For", "198.51.100.7")],
            "",
            a(301, "https://www.example/app", None, "max-age=86400"),
        ),
        (
            &[],
            "",
            a(301, "https://www.example/app", None, "max-age=86400"),
        ),
    ]
}

fn start() -> Proxy {
    Proxy::start_with("h2c = true\ntrusted_proxies = [\"127.0.0.1/32\"]", RULES)
}

#[test]
fn http1_requests_get_the_rule_their_conditions_pick() {
    let proxy = start();
    let mut conn = proxy.connect();
    for (fields, query, want) in cases() {
        let mut req = format!("GET /app{query} HTTP/1.1\r\nHost: a.example\r\n");
        for (n, v) in fields {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        conn.send(req.as_bytes());
        let r = conn.read_response(false);
        let got: Answer = (
            r.status,
            r.header("Location").unwrap_or("").to_string(),
            r.header("Vary").map(str::to_string),
            r.header("Cache-Control").unwrap_or("").to_string(),
        );
        assert_eq!(got, want, "{fields:?} {query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_requests_get_the_rule_their_conditions_pick() {
    let proxy = start();
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(IO_TIMEOUT)
        .resolve("a.example", proxy.addr())
        .build()
        .expect("h2 client");
    for (fields, query, want) in cases() {
        let mut req = client.get(format!("http://a.example:{}/app{query}", proxy.port));
        for (n, v) in fields {
            // Two `Cookie` fields stay two fields on HTTP/2 (RFC 9113
            // §8.2.3 lets a client split cookies this way).
            req = req.header(*n, *v);
        }
        let resp = req.send().await.expect("h2c request");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII").to_string())
        };
        let got: Answer = (
            resp.status().as_u16(),
            h("location").unwrap_or_default(),
            h("vary"),
            h("cache-control").unwrap_or_default(),
        );
        assert_eq!(got, want, "{fields:?} {query}");
    }
}

fn explain(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("explain")
        .args(["-c", "rules.toml"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run explain");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn explain_says_which_conditions_held_and_which_failed() {
    let dir = TempDir::new("explain-conditions");
    dir.write("rules.toml", RULES);
    let args = [
        "--format",
        "json",
        "--header",
        "X-Beta: 2",
        "--header",
        "Cookie: beta=yes",
        "--client",
        "198.51.100.7",
        "https://a.example/app?utm_source=mail",
    ];
    let v: Value = serde_json::from_str(&explain(&dir.path, &args)).expect("JSON");
    let c = |condition: &str, held: bool| json!({"condition": condition, "held": held});
    assert_eq!(
        v,
        json!({
            "outcome": "redirect",
            "rule": "beta-cookie",
            "status": 307,
            "location": "https://beta.example/cookie?utm_source=mail",
            "conditions": [c("cookie beta = \"yes\"", true)],
            "skipped": [
                {"rule": "beta-header", "conditions": [c("header x-beta = \"1\"", false)]},
            ],
        })
    );
    let text = explain(
        &dir.path,
        &[
            "--client",
            "192.0.2.1",
            "https://a.example/app?utm_source=mail",
        ],
    );
    assert_eq!(
        text,
        "redirect 302 https://intranet.example/app?utm_source=mail (rule \"office\")\n  \
         condition client in 192.0.2.0/24: held\n  \
         skipped rule \"beta-header\": header x-beta = \"1\": failed\n  \
         skipped rule \"beta-cookie\": cookie beta = \"yes\": failed\n  \
         skipped rule \"campaign\": query utm_source = \"news letter\": failed\n"
    );
}

const AB: &str = r#"
[[redirect]]
id = "new-design"
host = "a.example"
path = "/home"
to = "https://a.example/home-b"
sample = 30
sample_key = "header:X-User"
"#;

/// Which of `keys` a rule set sends to the sampled side, in process.
fn sampled_in_process(config: &str, keys: &[String]) -> Vec<bool> {
    let sources = Sources::from_text(config, Path::new("ab.toml"), |_| Ok(Vec::new()));
    let (set, problems) = compile(&sources);
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
    keys.iter()
        .map(|k| {
            let mut h = http::HeaderMap::new();
            h.insert("x-user", k.parse().expect("header value"));
            let view = RequestView::new("GET", Scheme::Https, Some("a.example"), b"/home", None)
                .with_headers(&h);
            matches!(set.decide(&view), Decision::Redirect(_))
        })
        .collect()
}

#[test]
fn a_sample_takes_its_share_of_clients_and_each_keeps_its_side() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let first = sampled_in_process(AB, &keys);
    let share = first.iter().filter(|b| **b).count() as f64 / keys.len() as f64;
    assert!(
        (0.285..=0.315).contains(&share),
        "sample = 30 sent {:.2} % of 10,000 clients",
        share * 100.0
    );
    for _ in 0..100 {
        assert_eq!(sampled_in_process(AB, &keys[..500]), first[..500]);
    }
    // The bucket depends on the rule id and the key only: another rule before
    // it changes nothing.
    let other = format!("[[redirect]]\nid = \"x\"\npath = \"/x\"\nto = \"/y\"\n{AB}");
    assert_eq!(sampled_in_process(&other, &keys), first);
    let none = sampled_in_process(&AB.replace("sample = 30", "sample = 0"), &keys);
    assert!(none.iter().all(|b| !b));
    let all = sampled_in_process(&AB.replace("sample = 30", "sample = 100"), &keys);
    assert!(all.iter().all(|b| *b));
    let half = sampled_in_process(&AB.replace("sample = 30", "sample = 0.5"), &keys);
    let n = half.iter().filter(|b| **b).count();
    assert!((25..=80).contains(&n), "sample = 0.5 took {n} of 10,000");
}

/// The Location (or its absence: the 404) each key gets from `proxy`.
fn sides(proxy: &Proxy, keys: &[String]) -> BTreeMap<String, u16> {
    let mut conn = proxy.connect();
    keys.iter()
        .map(|k| {
            conn.send(
                format!("GET /home HTTP/1.1\r\nHost: a.example\r\nX-User: {k}\r\n\r\n").as_bytes(),
            );
            (k.clone(), conn.read_response(false).status)
        })
        .collect()
}

#[test]
fn two_processes_and_a_reload_put_each_client_on_the_same_side() {
    let keys: Vec<String> = (0..400).map(|i| format!("visitor-{i}")).collect();
    let want: BTreeMap<String, u16> = keys
        .iter()
        .cloned()
        .zip(sampled_in_process(AB, &keys))
        .map(|(k, b)| (k, if b { 307 } else { 404 }))
        .collect();
    let one = Proxy::start(AB);
    let two = Proxy::start(AB);
    for _ in 0..3 {
        assert_eq!(sides(&one, &keys), want);
    }
    assert_eq!(sides(&two, &keys), want);
    // A reload with another rule in front: the same sides.
    let config = std::fs::read_to_string(&one.config_path).expect("read the configuration");
    std::fs::write(
        &one.config_path,
        format!("{config}\n[[redirect]]\nid = \"x\"\npath = \"/x\"\nto = \"/y\"\n"),
    )
    .expect("write the configuration");
    send_signal(proxy_pid(&one), SIGHUP, "HUP");
    expect_metric(
        one.admin_port,
        r#"pingora_redirect_config_reloads_total{result="success"}"#,
        Some(1.0),
    );
    assert_eq!(sides(&one, &keys), want);
}

/// Twenty rules on one path told apart by `X-Variant` (found by one hash
/// lookup per run, docs/benchmarks.md), broken by a cookie rule after the
/// tenth, with a case-insensitive rule on the same path (another chain)
/// after the twelfth, and a fallback: the first rule in file order whose
/// conditions hold answers, as if each were tested in turn.
#[test]
fn a_long_run_of_header_variants_answers_in_file_order() {
    let mut config = String::new();
    let rule = |config: &mut String, id: &str, extra: &str| {
        config.push_str(&format!(
            "[[redirect]]\nid = \"{id}\"\nhost = \"a.example\"\npath = \"/home\"\nto = \"https://b.example/{id}\"\n{extra}\n\n"
        ));
    };
    for i in 0..20 {
        if i == 10 {
            rule(&mut config, "cookie", "match_cookies = { c = true }");
        }
        if i == 12 {
            config.push_str(
                "[[redirect]]\nid = \"ci\"\nhost = \"a.example\"\npath = \"/HOME\"\ncase_insensitive = true\nto = \"https://b.example/ci\"\nmatch_query = { flag = true }\n\n",
            );
        }
        rule(
            &mut config,
            &format!("v{i}"),
            &format!("match_headers = {{ \"X-Variant\" = \"v{i}\" }}"),
        );
    }
    rule(&mut config, "rest", "");
    let sources = Sources::from_text(&config, Path::new("variants.toml"), |_| Ok(Vec::new()));
    let (set, problems) = compile(&sources);
    assert!(problems.is_empty(), "{problems:?}");
    let cases: &[(Fields, Option<&[u8]>, &str)] = &[
        (&[("x-variant", "v3")], None, "v3"),
        (&[("x-variant", "v15")], None, "v15"),
        (&[("x-variant", "v17"), ("x-variant", "v2")], None, "v2"),
        (&[("x-variant", "v19, v4")], None, "v4"),
        (&[("x-variant", "v8"), ("x-variant", "v3")], None, "v3"),
        (&[("x-variant", "v9, v1")], None, "v1"),
        (&[("x-variant", " v7 ")], None, "v7"),
        (&[("x-variant", "V7")], None, "rest"),
        (&[("x-variant", "none")], None, "rest"),
        (&[], None, "rest"),
        (&[("x-variant", "v15"), ("cookie", "c=1")], None, "cookie"),
        (&[("x-variant", "v5"), ("cookie", "c=1")], None, "v5"),
        (&[("x-variant", "v15")], Some(b"flag"), "ci"),
        (&[("x-variant", "v11")], Some(b"flag"), "v11"),
        (&[("x-variant", "v12")], Some(b"flag"), "ci"),
        (&[("x-variant", "nothing, v18")], Some(b"flag"), "ci"),
    ];
    for (fields, query, want) in cases {
        let mut h = http::HeaderMap::new();
        for (n, v) in *fields {
            h.append(*n, v.parse().expect("value"));
        }
        let view = RequestView::new("GET", Scheme::Https, Some("a.example"), b"/home", *query)
            .with_headers(&h);
        match set.decide(&view) {
            Decision::Redirect(r) => assert_eq!(r.rule.id(), *want, "{fields:?} {query:?}"),
            other => panic!("{fields:?}: {other:?}"),
        }
    }
}
