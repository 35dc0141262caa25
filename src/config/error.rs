//! Configuration errors. Every problem names where it was found (file, line and
//! column when known, the key path), what was found, and what to write instead.

use std::fmt;
use std::path::PathBuf;

/// Stable codes for configuration problems (shown in logs and, later, the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCode {
    /// The file could not be read (missing, permission, not a file).
    Unreadable,
    /// The file is not valid JSON5.
    Syntax,
    /// A key has the wrong type or an invalid value.
    InvalidValue,
    /// Two settings contradict each other (e.g. non-loopback bind without auth).
    Contradiction,
    /// The state directory or a file in it could not be prepared.
    StateDir,
}

impl ConfigCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigCode::Unreadable => "config_unreadable",
            ConfigCode::Syntax => "config_syntax",
            ConfigCode::InvalidValue => "config_invalid_value",
            ConfigCode::Contradiction => "config_contradiction",
            ConfigCode::StateDir => "state_dir",
        }
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub code: ConfigCode,
    /// Dotted key path (`gateway.auth.token`), or empty for file-level problems.
    pub path: String,
    pub message: String,
    /// File and position when known.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Issue {
    pub fn new(code: ConfigCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            code,
            path: path.into(),
            message: message.into(),
            file: None,
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            write!(f, ": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

/// The configuration could not be loaded; the list holds every problem found.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub issues: Vec<Issue>,
}

impl ConfigError {
    pub fn single(issue: Issue) -> Self {
        ConfigError {
            issues: vec![issue],
        }
    }

    /// True when the only problem is that the file could not be read.
    pub fn is_unreadable(&self) -> bool {
        self.issues.iter().all(|i| i.code == ConfigCode::Unreadable)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for issue in &self.issues {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
