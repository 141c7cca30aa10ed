//! The `pingora-redirect` command line: `serve`, `check`, `explain` and
//! `audit`, nothing else; each is a few calls into the library.

use clap::{Parser, Subcommand, ValueEnum};
use pingora_redirect::explain::{explain_json, explain_text, split_url, Question};
use pingora_redirect::serve::ServeOptions;
use pingora_redirect::{Loaded, Problem, Snapshot};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: a redirect allocates a few small buffers per request, and
/// glibc's malloc spent about a sixth of a redirect's instructions on them
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pingora-redirect",
    version,
    about = "Rule-based redirect engine and front proxy on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum AuditFormat {
    Text,
    Json,
    Csv,
    Markdown,
}

#[derive(Subcommand)]
enum Command {
    /// Run the front proxy.
    Serve {
        /// The configuration file.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// Take the listening sockets over from a running instance.
        #[arg(short = 'u', long)]
        upgrade: bool,
        /// Detach and run in the background.
        #[arg(short = 'd', long)]
        daemon: bool,
    },
    /// Load, compile and lint a configuration; exit 0 when it would load.
    Check {
        /// The configuration file.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        strict: bool,
    },
    /// Show what `serve` would do with one request.
    Explain {
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A request header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The client address the request comes from.
        #[arg(long, default_value = "127.0.0.1")]
        client: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The request URL: its scheme and host are the request's scheme and Host.
        url: String,
    },
    /// Join the rules with their use: inventory and findings.
    Audit {
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// The admin /metrics URL of a running instance (repeatable).
        #[arg(long = "metrics", conflicts_with = "prometheus")]
        metrics: Vec<String>,
        /// A Prometheus server that scrapes the instances.
        #[arg(long)]
        prometheus: Option<String>,
        /// How far back Prometheus is asked (with --prometheus).
        #[arg(long, default_value = "30d")]
        window: String,
        #[arg(long, value_enum, default_value = "text")]
        format: AuditFormat,
    },
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

fn load(conf: &std::path::Path) -> Result<Loaded, Problem> {
    pingora_redirect::load(conf, pingora_redirect::unix_now())
}

const USAGE: &str = "Usage:
  pingora-redirect serve   -c FILE [--upgrade] [--daemon]
  pingora-redirect check   -c FILE [--format text|json] [--strict]
  pingora-redirect explain -c FILE [--method M] [--header 'Name: value']... [--client ADDR] [--format text|json] URL
  pingora-redirect audit   -c FILE (--metrics URL... | --prometheus URL) [--window DURATION] [--format text|json|csv|markdown]";

/// The snapshot of a configuration that loaded; exit 1 (with the reason)
/// when a backend address cannot be used.
fn snapshot(loaded: Loaded) -> Result<Snapshot, ExitCode> {
    Snapshot::from_loaded(loaded).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })
}

/// Prints a usage error, then the usage, and exits 2.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let usage_shown = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            let _ = e.print();
            if usage_shown {
                return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
            }
            eprintln!("\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve {
            conf,
            upgrade,
            daemon,
        } => serve(&conf, upgrade, daemon),
        Command::Check {
            conf,
            format,
            strict,
        } => check(&conf, format, strict),
        Command::Explain {
            conf,
            method,
            headers,
            client,
            format,
            url,
        } => explain(&conf, &method, &headers, &client, format, &url),
        Command::Audit {
            conf,
            metrics,
            prometheus,
            window,
            format,
        } => audit(&conf, &metrics, prometheus.as_deref(), &window, format),
    }
}

fn audit(
    conf: &std::path::Path,
    metrics: &[String],
    prometheus: Option<&str>,
    window: &str,
    format: AuditFormat,
) -> ExitCode {
    use pingora_redirect::audit;
    if metrics.is_empty() == prometheus.is_none() {
        return usage_error("audit takes --metrics URL (one or more) or --prometheus URL");
    }
    let window = match humantime::parse_duration(window) {
        Ok(w) if !w.is_zero() => w,
        _ => {
            return usage_error(&format!(
                "--window \"{window}\" is not a duration such as 30d or 12h"
            ))
        }
    };
    let loaded = match load(conf) {
        Ok(l) => l,
        Err(p) => {
            eprintln!("{p}");
            return ExitCode::from(2);
        }
    };
    let Some(set) = &loaded.rules else {
        print_problems(&loaded.problems);
        eprintln!("{}: does not load; nothing to audit", conf.display());
        return ExitCode::from(1);
    };
    let usage = match prometheus {
        Some(url) => audit::from_prometheus(url, window),
        None => audit::from_metrics(metrics),
    };
    let usage = match usage {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let a = audit::Audit::new(
        &loaded.config,
        set,
        &loaded.problems,
        &usage,
        pingora_redirect::unix_now(),
    );
    let format = match format {
        AuditFormat::Text => audit::Format::Text,
        AuditFormat::Json => audit::Format::Json,
        AuditFormat::Csv => audit::Format::Csv,
        AuditFormat::Markdown => audit::Format::Markdown,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match audit::write(&a, format, &mut out).and_then(|()| std::io::Write::flush(&mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(conf: &std::path::Path, upgrade: bool, daemon: bool) -> ExitCode {
    // SIGHUP reloads and SIGUSR1 reopens the access log once the server
    // runs; until their handlers are installed they (whose default action
    // ends the process) are ignored.
    // SAFETY: setting a signal disposition to SIG_IGN has no handler to race.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let loaded = match load(conf) {
        Ok(l) => l,
        Err(p) => {
            eprintln!("{p}");
            return ExitCode::from(2);
        }
    };
    print_problems(&loaded.problems);
    if !loaded.ok() {
        eprintln!("{}: does not load; not starting", conf.display());
        return ExitCode::from(1);
    }
    let snap = match snapshot(loaded) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match pingora_redirect::serve::run(snap, ServeOptions { upgrade, daemon }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(conf: &std::path::Path, format: Format, strict: bool) -> ExitCode {
    let loaded = match load(conf) {
        Ok(l) => l,
        Err(p) => {
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "rules": 0, "errors": [p], "warnings": []})
                );
            } else {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    let errors: Vec<&Problem> = loaded.errors().collect();
    let warnings: Vec<&Problem> = loaded.warnings().collect();
    let ok = errors.is_empty();
    let n = loaded.rules.as_ref().map_or(0, |r| r.len());
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({"ok": ok, "rules": n, "errors": errors, "warnings": warnings})
        );
    } else {
        print_problems(&loaded.problems);
        if let Some(set) = &loaded.rules {
            let c = set.counts();
            println!(
                "{}: ok, {} rules ({} exact, {} prefix, {} regex), {} warning{}",
                conf.display(),
                n,
                c.exact,
                c.prefix,
                c.regex,
                warnings.len(),
                if warnings.len() == 1 { "" } else { "s" }
            );
        } else {
            println!(
                "{}: does not load: {} error{}",
                conf.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
        }
    }
    if !ok || (strict && !warnings.is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn explain(
    conf: &std::path::Path,
    method: &str,
    headers: &[String],
    client: &str,
    format: Format,
    url: &str,
) -> ExitCode {
    let mut map = http::HeaderMap::new();
    for h in headers {
        let parsed = h.split_once(':').and_then(|(n, v)| {
            let name = http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(v.trim()).ok()?;
            Some((name, value))
        });
        match parsed {
            Some((n, v)) => {
                map.append(n, v);
            }
            None => return usage_error(&format!("--header \"{h}\" is not `Name: value`")),
        }
    }
    let Ok(client) = client.parse::<IpAddr>() else {
        return usage_error(&format!("--client \"{client}\" is not an IP address"));
    };
    let url = match split_url(url) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let loaded = match load(conf) {
        Ok(l) => l,
        Err(p) => {
            eprintln!("{p}");
            return ExitCode::from(2);
        }
    };
    if !loaded.ok() {
        print_problems(&loaded.problems);
        return ExitCode::from(1);
    }
    let snap = match snapshot(loaded) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let question = Question {
        method: method.to_ascii_uppercase(),
        url,
        headers: map,
        client,
    };
    let v = explain_json(&snap, &question, pingora_redirect::unix_now());
    if format == Format::Json {
        println!("{v}");
    } else {
        println!("{}", explain_text(&v));
    }
    ExitCode::SUCCESS
}
