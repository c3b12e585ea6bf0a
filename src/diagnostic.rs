//! Errors and warnings about the user's files, each with `file:line` where there is one.
//!
//! `check` prints them all; the other commands refuse to go on while there are errors.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub level: Level,
    /// `file:line`, or just `file`.
    pub at: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        match &self.at {
            Some(at) => write!(f, "{level}: {at}: {}", self.message),
            None => write!(f, "{level}: {}", self.message),
        }
    }
}

/// A growing list of findings.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, level: Level, at: Option<(&str, usize)>, message: impl Into<String>) {
        let at = at.map(|(file, line)| {
            if line == 0 {
                file.to_owned()
            } else {
                format!("{file}:{line}")
            }
        });
        self.items.push(Diagnostic {
            level,
            at,
            message: message.into(),
        });
    }

    pub fn error(&mut self, at: Option<(&str, usize)>, message: impl Into<String>) {
        self.push(Level::Error, at, message);
    }

    pub fn warning(&mut self, at: Option<(&str, usize)>, message: impl Into<String>) {
        self.push(Level::Warning, at, message);
    }

    pub fn errors(&self) -> usize {
        self.items.iter().filter(|d| d.level == Level::Error).count()
    }

    /// Fails with every error listed, for commands that cannot go on.
    pub fn into_result(self) -> anyhow::Result<Diagnostics> {
        if self.errors() == 0 {
            return Ok(self);
        }
        let lines: Vec<String> = self
            .items
            .iter()
            .filter(|d| d.level == Level::Error)
            .map(|d| {
                let s = d.to_string();
                s.strip_prefix("error: ").unwrap_or(&s).to_owned()
            })
            .collect();
        let n = lines.len();
        anyhow::bail!(
            "{}{}",
            lines.join("\n"),
            if n > 1 {
                format!("\n({n} errors; `bulletin check` lists them with warnings)")
            } else {
                String::new()
            }
        )
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}
