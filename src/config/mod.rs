//! The configuration file: its typed model ([`model`]) and the reader that
//! checks it, one file per group of sections.
//!
//! Every problem (an unknown key, a bad value, a missing field, a pool that
//! does not exist) is reported with its file, line, column and the id of the
//! rule it belongs to, all of them at once; what could not be read is left
//! out of the model, so the steps after reading (compiling, following the
//! rules) still run on the rest. What this module does not do: read files
//! (the loader, [`crate::load`], does) or compile rules ([`crate::rules`]).

pub mod conditions;
pub mod list;
mod model;
mod reader;
mod routing;
mod rules;
mod server;
mod tls;

pub(crate) use conditions::rfc3339;
pub use conditions::{methods, Conditions, Facts, Want};
pub use model::*;

use crate::problem::{LineIndex, Problem};
use reader::Reader;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use toml::de::DeTable;

/// Parses and checks configuration text; `path` names it in problems and
/// anchors relative list paths.
///
/// Returns the configuration (as much of it as was valid) and every problem.
pub fn parse(src: &str, path: &Path) -> (Config, Vec<Problem>) {
    let mut r = Reader {
        file: Arc::from(path.display().to_string()),
        src,
        lines: LineIndex::new(src),
        problems: Vec::new(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        pool_refs: Vec::new(),
        pool_names: Vec::new(),
        tls_written: false,
    };
    let mut cfg = Config {
        path: path.to_path_buf(),
        server: ServerConfig::default(),
        defaults: Defaults::default(),
        upstream: None,
        maintenance: None,
        pools: BTreeMap::new(),
        redirects: Vec::new(),
        lists: Vec::new(),
        log: LogConfig::default(),
        log_place: None,
        tls: None,
        certificates: Vec::new(),
    };
    let root = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            r.push("parse", span, None, format!("TOML syntax: {msg}"));
            return (cfg, r.problems);
        }
    };
    r.root(root.get_ref(), &mut cfg);
    r.cross_check(&mut cfg);
    r.tls_cross_check(&mut cfg);
    (cfg, r.problems)
}

/// A configuration with the contents of every list it names: everything a
/// compile needs, read once, so compiling touches no file.
#[derive(Debug)]
pub struct Sources {
    pub config: Config,
    /// One per `config.lists`, in that order: the file's bytes, or the `io`
    /// problem that says why they could not be read.
    pub lists: Vec<Result<Vec<u8>, Problem>>,
    /// One per `config.certificates`, in that order, when the loader read
    /// them (empty from [`Sources::from_text`]: TLS is then left out).
    pub certificates: Vec<Result<CertFiles, Problem>>,
    /// Every problem found reading the configuration.
    pub problems: Vec<Problem>,
}

/// The bytes of one `[[certificate]]`'s files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl Sources {
    /// Parses configuration text (see [`parse`]) and gets each list's bytes
    /// from `read_list` (the files, for the loader; memory, for tests).
    pub fn from_text(
        src: &str,
        path: &Path,
        mut read_list: impl FnMut(&ListSpec) -> std::io::Result<Vec<u8>>,
    ) -> Sources {
        let (config, problems) = parse(src, path);
        let lists = config
            .lists
            .iter()
            .map(|l| {
                read_list(l).map_err(|e| {
                    Problem::error("io", format!("cannot read list \"{}\": {e}", l.id))
                        .in_file(&l.file.display().to_string())
                        .rule(Some(&l.id))
                })
            })
            .collect();
        Sources {
            config,
            lists,
            certificates: Vec::new(),
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> (Config, Vec<Problem>) {
        parse(src, Path::new("t.toml"))
    }

    #[test]
    fn defaults_apply_when_sections_are_missing() {
        let (cfg, problems) = load("");
        assert!(problems.is_empty());
        assert_eq!(cfg.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(cfg.server.admin, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(cfg.defaults, Defaults::default());
        assert!(cfg.upstream.is_none());
    }

    #[test]
    fn unknown_key_names_line_column_rule_and_suggests() {
        let (_, p) = load("[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nstatsu = 301\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].code, "unknown_key");
        assert_eq!((p[0].line, p[0].column), (Some(5), Some(1)));
        assert_eq!(p[0].rule.as_deref(), Some("a"));
        assert!(
            p[0].message.contains("did you mean `status`?"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn syntax_error_is_parse_with_place() {
        let (_, p) = load("[server]\nlisten = [\"127.0.0.1:1\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, "parse");
        assert!(p[0].line.is_some() && p[0].column.is_some());
    }

    #[test]
    fn time_window_must_be_ordered() {
        let (_, p) = load(
            "[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nactive_from = 2026-12-02T00:00:00Z\nactive_until = 2026-12-01T00:00:00Z\n",
        );
        assert_eq!(p[0].code, "bad_time_window");
        assert_eq!(p[0].line, Some(5));
    }

    #[test]
    fn datetime_with_offset_converts_to_unix() {
        let (cfg, p) = load("[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nactive_from = 2026-12-01T01:00:00+01:00\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(cfg.redirects[0].conditions.active_from, Some(1_796_083_200));
    }

    #[test]
    fn unknown_pool_is_an_error() {
        let (_, p) = load("[[redirect]]\nid = \"a\"\nprefix = \"/x\"\npool = \"nope\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, "unknown_pool");
        assert_eq!(p[0].rule.as_deref(), Some("a"));
    }
}
