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

use crate::config::{CertFiles, CertificateSpec, Config, ListSpec, RedirectRule, Sources};
use crate::problem::Problem;
use crate::rules::{compile, RuleSet};
use std::hash::BuildHasher;
use std::path::Path;

/// A configuration and its compiled rule set, with every problem found.
pub struct Loaded {
    pub config: Config,
    /// What the rules were compiled from ([`rules_key`]): a reload with the
    /// same key keeps the compiled rules.
    pub rules_key: u64,
    /// The list files as they were read, for the next reload.
    pub(crate) list_files: Vec<ListFile>,
    /// `None` when the configuration has errors.
    pub rules: Option<RuleSet>,
    /// The certificates and acceptor of `[tls]`, when it is set.
    pub tls: Option<std::sync::Arc<crate::tls::TlsState>>,
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
    read_sources_with(path, |list| std::fs::read(&list.file))
}

/// [`read_sources`] with `read_list` reading each list.
pub(crate) fn read_sources_with(
    path: &Path,
    read_list: impl FnMut(&ListSpec) -> std::io::Result<Vec<u8>>,
) -> Result<Sources, Problem> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        Problem::error("io", format!("cannot read the configuration: {e}")).at(
            &path.display().to_string(),
            0,
            None,
        )
    })?;
    let mut sources = Sources::from_text(&src, path, read_list);
    if let Some(p) = log_file_problem(&sources.config) {
        sources.problems.push(p);
    }
    sources.certificates = sources
        .config
        .certificates
        .iter()
        .map(read_certificate)
        .collect();
    Ok(sources)
}

/// The files of one `[[certificate]]`; an `io` problem at its place when
/// one cannot be read.
fn read_certificate(spec: &CertificateSpec) -> Result<CertFiles, Problem> {
    let read = |file: &Path, what: &str| {
        std::fs::read(file).map_err(|e| {
            Problem::error(
                "io",
                format!("[[certificate]] {what} \"{}\": {e}", file.display()),
            )
            .at(&spec.place.file, spec.place.line, Some(spec.place.column))
        })
    };
    Ok(CertFiles {
        cert: read(&spec.cert, "cert")?,
        key: read(&spec.key, "key")?,
    })
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

/// A digest of everything the compiled rules depend on: the `[[redirect]]`
/// tables (with their places, which problems name), the `[[list]]` entries
/// and the bytes of every list file, `[defaults]`, the pools, and whether
/// there is an `[upstream]`. Not the server, upstream backends, maintenance
/// or log sections: a maintenance flip keeps the compiled rules. Stable
/// within one process (what a reload compares it with), not across.
pub fn rules_key(sources: &Sources) -> u64 {
    let lists: Vec<u64> = sources
        .lists
        .iter()
        .map(|list| match list {
            Ok(bytes) => list_digest(bytes),
            Err(p) => hasher().hash_one(p.to_string().as_bytes()),
        })
        .collect();
    rules_key_with(sources, &lists)
}

fn hasher() -> &'static hashbrown::DefaultHashBuilder {
    static HASHER: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    HASHER.get_or_init(Default::default)
}

/// The digest of a list file's bytes, for [`rules_key_with`].
pub(crate) fn list_digest(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = hasher().build_hasher();
    for chunk in bytes.chunks(1 << 20) {
        h.write(chunk);
        crate::pace::point();
    }
    h.finish() ^ bytes.len() as u64
}

/// [`rules_key`] with the digests of the lists' bytes given (a reload
/// that finds a list file as it was, same modification time, size and
/// inode, reuses its digest rather than reading it again).
pub(crate) fn rules_key_with(sources: &Sources, list_digests: &[u64]) -> u64 {
    let hasher = hasher();
    let c = &sources.config;
    // `order` is a byte offset in the file: it moves when an earlier
    // section changes length (`enabled = false` to `true`). What counts is
    // the order of the entries, their rank.
    let mut ranks: Vec<usize> = c
        .redirects
        .iter()
        .map(|r| r.order)
        .chain(c.lists.iter().map(|l| l.order))
        .collect();
    ranks.sort_unstable();
    let rank = |order: usize| ranks.partition_point(|&o| o < order);
    let redirects: Vec<RedirectRule> = c
        .redirects
        .iter()
        .map(|r| RedirectRule {
            order: rank(r.order),
            ..r.clone()
        })
        .collect();
    let lists: Vec<ListSpec> = c
        .lists
        .iter()
        .map(|l| ListSpec {
            order: rank(l.order),
            ..l.clone()
        })
        .collect();
    let text = format!(
        "{redirects:?}\n{lists:?}\n{:?}\n{:?}\n{}",
        c.defaults,
        c.pools,
        c.upstream.is_some()
    );
    let mut parts = vec![hasher.hash_one(text.as_bytes())];
    parts.extend_from_slice(list_digests);
    hasher.hash_one(parts)
}

/// Compiles and lints `sources` (pure); `now` (Unix seconds) is for the
/// `expired` warning.
pub fn load_sources(sources: Sources, now: i64) -> Loaded {
    let rules_key = rules_key(&sources);
    let (set, more) = compile(&sources);
    let (tls, tls_problems) = crate::tls::build(&sources.config, &sources.certificates, now);
    let mut problems = sources.problems;
    problems.extend(more);
    problems.extend(set.lint(now));
    problems.extend(tls_problems);
    let ok = !problems.iter().any(Problem::is_error);
    Loaded {
        config: sources.config,
        rules_key,
        list_files: Vec::new(),
        rules: ok.then_some(set),
        tls,
        problems,
    }
}

/// Reads, compiles and lints the configuration at `path` and every list it
/// names. `now` (Unix seconds) is used for the `expired` warning.
///
/// `Err` is an I/O problem with the configuration file itself.
pub fn load(path: &Path, now: i64) -> Result<Loaded, Problem> {
    let mut files = Vec::new();
    let sources = read_sources_with(path, |list| read_list(&list.file, &mut files, None))?;
    let mut loaded = load_sources(sources, now);
    loaded.list_files = files;
    Ok(loaded)
}

/// What identifies a version of a file: modification time, size, inode.
pub(crate) type Stamp = Option<(std::time::SystemTime, u64, u64)>;

pub(crate) fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A list file as it was read: its stamp and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListFile {
    pub(crate) file: std::path::PathBuf,
    pub(crate) stamp: Stamp,
    pub(crate) digest: u64,
}

/// Reads the list `file`, recording it in `files`. With `known` (the list
/// files of the running configuration), a file whose stamp (modification
/// time, size and inode together) is unchanged is not read: its recorded
/// digest stands for its bytes, and the bytes returned are empty, so the
/// caller must read it again before compiling.
pub(crate) fn read_list(
    file: &Path,
    files: &mut Vec<ListFile>,
    known: Option<&[ListFile]>,
) -> std::io::Result<Vec<u8>> {
    let stamp = stamp(file);
    if let Some(k) = known
        .into_iter()
        .flatten()
        .find(|k| stamp.is_some() && k.file == file && k.stamp == stamp)
    {
        files.push(k.clone());
        return Ok(Vec::new());
    }
    let read = std::fs::read(file);
    let digest = match &read {
        Ok(bytes) => list_digest(bytes),
        Err(e) => hasher().hash_one(e.to_string().as_bytes()),
    };
    files.push(ListFile {
        file: file.to_path_buf(),
        stamp,
        digest,
    });
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str, list: &str) -> u64 {
        let list = list.as_bytes().to_vec();
        rules_key(&Sources::from_text(text, Path::new("k.toml"), |_| {
            Ok(list.clone())
        }))
    }

    #[test]
    fn the_rules_key_follows_what_the_rules_are_compiled_from() {
        let base = "[pools.p]\ntargets = [\"https://b.example\"]\n\n[maintenance]\nenabled = false\nredirect_pool = \"p\"\n\n[[redirect]]\nid = \"r\"\npath = \"/a\"\nto = \"/b\"\n\n[[list]]\nid = \"l\"\nfile = \"l.csv\"\n";
        let rows = "a.example/x,https://b.example/y,301\n";
        let k = key(base, rows);
        assert_eq!(k, key(base, rows), "stable");
        // Not the rules: maintenance, the log, an upstream's backends.
        assert_eq!(
            k,
            key(&base.replace("enabled = false", "enabled = true"), rows)
        );
        assert_eq!(
            k,
            key(&format!("{base}\n[log]\naccess = \"stdout\"\n"), rows)
        );
        // The rules: a redirect, a list's bytes, the defaults, a pool.
        assert_ne!(k, key(&base.replace("to = \"/b\"", "to = \"/c\""), rows));
        assert_ne!(k, key(base, "a.example/x,https://b.example/z,301\n"));
        assert_ne!(k, key(&format!("{base}\n[defaults]\nstatus = 308\n"), rows));
        assert_ne!(
            k,
            key(
                &base.replace("https://b.example\"]", "https://c.example\"]"),
                rows
            )
        );
    }
}
