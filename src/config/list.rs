//! Bulk lists in the Cloudflare Bulk Redirects CSV format
//! (docs/configuration.md, "Bulk lists").
//!
//! No header row; columns `source_url,target_url[,status_code,
//! preserve_query_string,include_subdomains,subpath_matching,
//! preserve_path_suffix]`. [`parse`] reads a list held in memory (the
//! loader read the file) and hands rows one at a time to a callback that
//! borrows from the CSV reader's buffer, so a million-row list is compiled
//! without first being copied into a million small strings.
//!
//! The source URL is split by hand ([`parse_source`]): it is written by
//! people, without a scheme as often as with one, and may hold Unicode or
//! spaces that `http::Uri` refuses; the host is then checked by the same
//! normalisation as a rule's `host`.

use crate::matcher::host::{normalize_config_host, HostPattern};
use crate::problem::Problem;
use crate::request::Scheme;

/// One row of a list, borrowed from the reader.
#[derive(Debug)]
pub struct ListRow<'a> {
    /// 1-based line of the row in the CSV file.
    pub line: u32,
    /// The source URL as written.
    pub source: &'a str,
    pub scheme: Option<Scheme>,
    pub host: HostPattern,
    /// The source path (`/` when the URL has none).
    pub path: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub preserve_query: bool,
    pub include_subdomains: bool,
    pub subpath: bool,
    pub preserve_suffix: bool,
}

/// Most row problems reported one by one.
const MAX_ROW_PROBLEMS: usize = 1000;

fn boolean(s: &str, column: &str) -> Result<bool, String> {
    if s.is_empty() || s.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if s.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(format!(
            "{column} is \"{s}\"; write TRUE or FALSE (or leave it empty for FALSE)"
        ))
    }
}

/// Parses a source URL: `host/path` or `scheme://host/path`.
pub fn parse_source(
    source: &str,
    include_subdomains: bool,
) -> Result<(Option<Scheme>, HostPattern, &str), String> {
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        (Some(Scheme::Https), &source[8..])
    } else if lower.starts_with("http://") {
        (Some(Scheme::Http), &source[7..])
    } else if source.contains("://") {
        return Err("the source URL's scheme must be http or https (or none)".into());
    } else {
        (None, source)
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.contains(':') && !host.starts_with('[') {
        return Err("the source URL takes no port".into());
    }
    if path.contains('?') || path.contains('#') {
        return Err("the source URL takes no query string or fragment".into());
    }
    if path.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("the source URL holds a control character".into());
    }
    let host = normalize_config_host(host).map_err(|e| format!("source host \"{host}\": {e}"))?;
    let pattern = if include_subdomains {
        HostPattern::ApexAndSubdomains(host)
    } else {
        HostPattern::Exact(host)
    };
    Ok((scheme, pattern, path))
}

fn row<'a>(rec: &'a csv::StringRecord, line: u32) -> Result<ListRow<'a>, String> {
    let n = rec.len();
    if !(2..=7).contains(&n) {
        return Err(format!(
            "{n} columns; a row has 2 to 7: source_url,target_url[,status_code,preserve_query_string,include_subdomains,subpath_matching,preserve_path_suffix]"
        ));
    }
    let col = |i: usize| rec.get(i).unwrap_or("");
    let source = col(0);
    let target = col(1);
    if source.is_empty() {
        return Err("the source URL is empty".into());
    }
    if target.is_empty() {
        return Err("the target URL is empty".into());
    }
    let status = match col(2) {
        "" => 301,
        s => match s.parse::<u16>() {
            Ok(c @ (301 | 302 | 303 | 307 | 308)) => c,
            _ => {
                return Err(format!(
                    "status_code is \"{s}\"; write 301, 302, 303, 307 or 308"
                ))
            }
        },
    };
    let preserve_query = boolean(col(3), "preserve_query_string")?;
    let include_subdomains = boolean(col(4), "include_subdomains")?;
    let subpath = boolean(col(5), "subpath_matching")?;
    let preserve_suffix = boolean(col(6), "preserve_path_suffix")?;
    let (scheme, host, path) = parse_source(source, include_subdomains)?;
    Ok(ListRow {
        line,
        source,
        scheme,
        host,
        path,
        target,
        status,
        preserve_query,
        include_subdomains,
        subpath,
        preserve_suffix,
    })
}

/// How many rows `data` can hold at most (its lines), to size tables once.
pub fn row_bound(data: &[u8]) -> usize {
    data.iter().filter(|b| **b == b'\n').count() + 1
}

/// Parses a list held in memory; `file_name` is the name problems carry.
///
/// Every good row goes to `f`; the result is the number of rows, or every
/// problem (`bad_list_row`) with its line.
pub fn parse(
    data: &[u8],
    file_name: &str,
    mut f: impl FnMut(ListRow<'_>),
) -> Result<usize, Vec<Problem>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let mut rec = csv::StringRecord::new();
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut rows = 0usize;
    // Lines are counted from byte offsets: the reader's own line count skips
    // blank lines and CRLF endings differently.
    let (mut counted_to, mut line) = (0usize, 1u32);
    let mut line_at = |byte: usize| -> u32 {
        // A record's position may point at the line break before it.
        let mut byte = byte.min(data.len());
        while byte < data.len() && matches!(data[byte], b'\n' | b'\r') {
            byte += 1;
        }
        if byte > counted_to {
            line += data[counted_to..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u32;
            counted_to = byte;
        }
        line
    };
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = line_at(rec.position().map_or(start, |p| p.byte() as usize));
                if rec.len() == 1 && rec.get(0) == Some("") {
                    continue;
                }
                match row(&rec, line) {
                    Ok(r) => {
                        rows += 1;
                        f(r)
                    }
                    Err(msg) => {
                        if problems.len() < MAX_ROW_PROBLEMS {
                            problems.push(
                                Problem::error("bad_list_row", msg).at(file_name, line, None),
                            );
                        } else {
                            more += 1;
                        }
                    }
                }
            }
            Err(e) => {
                let line = line_at(e.position().map_or(start, |p| p.byte() as usize));
                let msg = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
                    _ => format!("unreadable CSV: {e}"),
                };
                if problems.len() < MAX_ROW_PROBLEMS {
                    problems.push(Problem::error("bad_list_row", msg).at(file_name, line, None));
                } else {
                    more += 1;
                }
            }
        }
    }
    if more > 0 {
        problems.push(
            Problem::error(
                "bad_list_row",
                format!("{more} more bad rows (only the first {MAX_ROW_PROBLEMS} are listed)"),
            )
            .in_file(file_name),
        );
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_line_numbers_across_blank_lines_and_crlf() {
        for (name, text) in [
            (
                "lf.csv",
                "a.example/1,/x\n\na.example/2,/y\na.example/3,/z\n",
            ),
            (
                "crlf.csv",
                "a.example/1,/x\r\n\r\na.example/2,/y\r\na.example/3,/z\r\n",
            ),
        ] {
            let mut lines = Vec::new();
            parse(text.as_bytes(), name, |r| lines.push(r.line)).unwrap();
            assert_eq!(lines, vec![1, 3, 4], "{name}");
        }
    }

    #[test]
    fn parses_sources_with_and_without_scheme() {
        let (s, h, p) = parse_source("https://Old.Example/a/b", false).unwrap();
        assert_eq!(
            (s, h, p),
            (
                Some(Scheme::Https),
                HostPattern::Exact("old.example".into()),
                "/a/b"
            )
        );
        let (s, h, p) = parse_source("old.example", true).unwrap();
        assert_eq!(
            (s, h, p),
            (
                None,
                HostPattern::ApexAndSubdomains("old.example".into()),
                "/"
            )
        );
        assert!(parse_source("ftp://x/a", false).is_err());
        assert!(parse_source("x.example:80/a", false).is_err());
        assert!(parse_source("x.example/a?b", false).is_err());
    }
}
