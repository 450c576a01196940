//! A check run before sqlparser sees a query or an expression: every `[` and `(` closed.
//!
//! sqlparser backtracks on an unclosed `[` after a long dotted name (it tries the name as a
//! data type, then as an expression, at every level), and the work grows tenfold with each
//! one: six of them in 60 bytes held a core for 40 seconds, ten would for days (found by the
//! `sql` fuzz target). An unclosed bracket is a syntax error anyway, so finding it first —
//! with sqlparser's own tokenizer, which is linear and knows quotes and comments — costs
//! nothing and says where it is.

use datafusion_sql::sqlparser::dialect::Dialect;
use datafusion_sql::sqlparser::tokenizer::{Token, Tokenizer};

/// An unclosed or unopened bracket: its line and column (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbalanced {
    /// Line of the bracket, from 1.
    pub line: u64,
    /// Column of the bracket, from 1.
    pub column: u64,
    /// What is wrong, e.g. "'[' is never closed".
    pub message: String,
}

/// The first bracket of `text` that is not matched, if any. Text that does not tokenize is
/// left to the parser, which says why.
pub fn unbalanced(dialect: &dyn Dialect, text: &str) -> Option<Unbalanced> {
    let tokens = Tokenizer::new(dialect, text)
        .tokenize_with_location()
        .ok()?;
    let mut open = Vec::new();
    for t in tokens {
        let closing = match t.token {
            Token::LBracket | Token::LParen => {
                open.push(t);
                continue;
            }
            Token::RBracket => Token::LBracket,
            Token::RParen => Token::LParen,
            _ => continue,
        };
        match open.pop() {
            Some(o) if o.token == closing => {}
            Some(o) => {
                return Some(Unbalanced {
                    line: t.span.start.line,
                    column: t.span.start.column,
                    message: format!(
                        "'{}' closes '{}', which was opened at line {}, column {}",
                        t.token, o.token, o.span.start.line, o.span.start.column
                    ),
                });
            }
            None => {
                return Some(Unbalanced {
                    line: t.span.start.line,
                    column: t.span.start.column,
                    message: format!("'{}' closes nothing", t.token),
                });
            }
        }
    }
    open.pop().map(|o| Unbalanced {
        line: o.span.start.line,
        column: o.span.start.column,
        message: format!("'{}' is never closed", o.token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_sql::sqlparser::dialect::DatabricksDialect;

    #[test]
    fn finds_the_bracket_that_is_not_closed_and_ignores_quoted_ones() {
        let d = DatabricksDialect {};
        assert_eq!(
            unbalanced(&d, "SELECT a[0], f(b) FROM t WHERE c = '[(' -- ]"),
            None
        );
        let u = unbalanced(&d, "SELECT a.b.c.d[x.y.z.w[1] FROM t").unwrap();
        assert_eq!((u.line, u.column), (1, 15));
        assert!(u.message.contains("never closed"), "{}", u.message);
        let u = unbalanced(&d, "SELECT f(a]").unwrap();
        assert_eq!((u.line, u.column), (1, 11));
        assert!(
            unbalanced(&d, "SELECT a)")
                .unwrap()
                .message
                .contains("closes nothing")
        );
    }
}
