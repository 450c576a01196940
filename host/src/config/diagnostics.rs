//! Problems found in a pipeline file, each with where it is: the line, the query and the key
//! path. The bottom of the crate: the error type carries them, so they import nothing.

use std::fmt;

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line in the pipeline file (0 when the problem has no single place).
    pub line: usize,
    /// The query's name, when the problem is inside one.
    pub query: Option<String>,
    /// Dotted key path, e.g. `source.maxFilesPerTrigger`.
    pub key: String,
    /// What is wrong and, where we can tell, what to write instead.
    pub message: String,
}

/// All problems found in a pipeline file, displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// The pipeline file's path as the user gave it.
    pub file: String,
    /// The problems, in file order.
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.items.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for (i, d) in self.items.iter().enumerate() {
            write!(f, "  {}:{}: ", self.file, d.line)?;
            if let Some(q) = &d.query {
                write!(f, "query '{q}': ")?;
            }
            if !d.key.is_empty() {
                write!(f, "{}: ", d.key)?;
            }
            write!(f, "{}", d.message)?;
            if i + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
