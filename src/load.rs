//! Loading: the one place that reads configuration files.
//!
//! [`read_sources`] reads the configuration file and every list it names
//! into [`Sources`]; everything after that is pure: [`compile`] builds the
//! rule set and [`RuleSet::lint`] follows it. [`load`] does the three and
//! keeps every problem of every step, so one run reports them all (a step
//! works on what the step before could use; only a TOML syntax error leaves
//! nothing to go on).
//!
//! ```
//! use pingora_redirect::{compile, RequestView, Scheme, Sources, Decision};
//! use std::path::Path;
//!
//! // Lists can come from memory as well as from files.
//! let src = "[[list]]\nid = \"legacy\"\nfile = \"legacy.csv\"\n";
//! let sources = Sources::from_text(src, Path::new("conf.toml"), |_list| {
//!     Ok(b"old.example/a,https://new.example/b,301\n".to_vec())
//! });
//! let (set, problems) = compile(&sources);
//! assert!(problems.is_empty());
//! let req = RequestView::new("GET", Scheme::Https, Some("old.example"), b"/a", None);
//! assert!(matches!(set.decide(&req), Decision::Redirect(r) if r.location == "https://new.example/b"));
//! ```

use crate::config::{Config, Sources};
use crate::problem::Problem;
use crate::rules::{compile, RuleSet};
use std::path::Path;

/// A configuration and its compiled rule set, with every problem found.
pub struct Loaded {
    pub config: Config,
    /// `None` when the configuration has errors.
    pub rules: Option<RuleSet>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }
    pub fn ok(&self) -> bool {
        self.rules.is_some()
    }
}

/// Reads the configuration file at `path` and every list it names.
///
/// `Err` is an `io` problem with the configuration file itself (`check`
/// exits 2 on it); a list that cannot be read is an `io` problem in the
/// sources, reported with the rest.
pub fn read_sources(path: &Path) -> Result<Sources, Problem> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        Problem::error("io", format!("cannot read the configuration: {e}")).at(
            &path.display().to_string(),
            0,
            None,
        )
    })?;
    let mut sources = Sources::from_text(&src, path, |list| std::fs::read(&list.file));
    if let Some(p) = log_file_problem(&sources.config) {
        sources.problems.push(p);
    }
    Ok(sources)
}

/// An `io` problem when `[log] access` names a file that cannot be: its
/// directory is missing, or it is a directory. (Whether it can be opened is
/// the writer's to find out: it keeps trying, as logrotate may be at work.)
fn log_file_problem(config: &Config) -> Option<Problem> {
    let crate::config::AccessTarget::File(file) = &config.log.access else {
        return None;
    };
    let why = if file.is_dir() {
        "is a directory".to_string()
    } else {
        match file.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => format!("its directory {} does not exist", dir.display()),
            _ => return None,
        }
    };
    let problem = Problem::error(
        "io",
        format!("[log] access = \"{}\": {why}", file.display()),
    );
    Some(match &config.log_place {
        Some(at) => problem.at(&at.file, at.line, Some(at.column)),
        None => problem,
    })
}

/// Compiles and lints `sources` (pure); `now` (Unix seconds) is for the
/// `expired` warning.
pub fn load_sources(sources: Sources, now: i64) -> Loaded {
    let (set, more) = compile(&sources);
    let mut problems = sources.problems;
    problems.extend(more);
    problems.extend(set.lint(now));
    let ok = !problems.iter().any(Problem::is_error);
    Loaded {
        config: sources.config,
        rules: ok.then_some(set),
        problems,
    }
}

/// Reads, compiles and lints the configuration at `path` and every list it
/// names. `now` (Unix seconds) is used for the `expired` warning.
///
/// `Err` is an I/O problem with the configuration file itself.
pub fn load(path: &Path, now: i64) -> Result<Loaded, Problem> {
    Ok(load_sources(read_sources(path)?, now))
}
