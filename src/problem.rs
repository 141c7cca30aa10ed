//! Problems found while loading, compiling and linting a configuration.
//!
//! Every configuration error or warning is a [`Problem`] value that carries its
//! place (file, line, column) and the rule it concerns, from the parser all the
//! way to the user: `check` prints them as text or JSON, `serve` refuses to
//! start on an error, and a reload that fails logs them. The `code` is one of
//! the stable codes of docs/configuration.md ("Lint") so scripts can match
//! on it.

use serde::Serialize;
use std::fmt;

/// How bad a problem is: errors stop a configuration from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One error or warning with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub severity: Severity,
    /// Stable code: `parse`, `unknown_key`, `duplicate_id`, `loop`, `chain`, …
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Problem {
    /// An error with no place yet.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: None,
            line: None,
            column: None,
            rule: None,
        }
    }

    /// A warning with no place yet.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    /// Sets the place of the problem.
    pub fn at(mut self, file: &str, line: u32, column: Option<u32>) -> Self {
        self.file = Some(file.to_string());
        self.line = Some(line);
        self.column = column;
        self
    }

    /// Names the file only (no line applies).
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }

    /// Names the rule the problem concerns.
    pub fn rule(mut self, rule: Option<&str>) -> Self {
        self.rule = rule.map(str::to_string);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    /// `file:line:column: error[code] rule "id": message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            write!(f, ": ")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}]", self.code)?;
        if let Some(rule) = &self.rule {
            write!(f, " rule \"{rule}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Byte offset → 1-based line and column (in characters) for one source text.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// Line and column of byte `offset` in `src`.
    pub fn locate(&self, src: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(src.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let col = src
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line as u32 + 1, col as u32 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_finds_line_and_column() {
        let src = "a = 1\nbé = 2\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.locate(src, 0), (1, 1));
        assert_eq!(idx.locate(src, 6), (2, 1));
        assert_eq!(idx.locate(src, src.find('=').unwrap()), (1, 3));
        let second_eq = src.rfind('=').unwrap();
        assert_eq!(idx.locate(src, second_eq), (2, 4));
    }

    #[test]
    fn display_names_file_line_rule_and_code() {
        let p = Problem::error("loop", "goes round")
            .at("a.toml", 3, Some(1))
            .rule(Some("x"));
        assert_eq!(
            p.to_string(),
            "a.toml:3:1: error[loop] rule \"x\": goes round"
        );
    }
}
