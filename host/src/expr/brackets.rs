//! A check run before sqlparser parses a query or an expression: every `[` and `(` closed.
//!
//! sqlparser backtracks on an unclosed `[` after a long dotted name (it tries the name as a
//! data type, then as an expression, at every level), and the work grows tenfold with each
//! one: six of them in 60 bytes held a core for 40 seconds, ten would for days (found by the
//! `sql` fuzz target). An unclosed bracket is a syntax error anyway, so finding it first in
//! the tokens — which the parser then takes, so the text is tokenized once — costs nothing
//! and says where it is.

use datafusion_sql::sqlparser::dialect::Dialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// Why a text was refused before its parse began.
#[derive(Debug)]
pub enum Refused {
    /// It does not tokenize (an unterminated string, say): sqlparser's own error.
    Parse(ParserError),
    /// A bracket is not matched.
    Unbalanced(Unbalanced),
}

/// A parser over `text` once every bracket in it is matched (`Parser::try_with_sql`, with the
/// check between tokenizing and parsing).
pub fn checked_parser<'a>(dialect: &'a dyn Dialect, text: &str) -> Result<Parser<'a>, Refused> {
    let tokens = Tokenizer::new(dialect, text)
        .tokenize_with_location()
        .map_err(|e| Refused::Parse(e.into()))?;
    if let Some(u) = unbalanced(&tokens) {
        return Err(Refused::Unbalanced(u));
    }
    Ok(Parser::new(dialect).with_tokens_with_locations(tokens))
}

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

/// The first bracket among `tokens` that is not matched, if any.
fn unbalanced(tokens: &[TokenWithSpan]) -> Option<Unbalanced> {
    let mut open: Vec<&TokenWithSpan> = Vec::new();
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
        let refusal = |text: &str| match checked_parser(&d, text) {
            Err(Refused::Unbalanced(u)) => Some(u),
            Err(Refused::Parse(e)) => panic!("{text}: {e}"),
            Ok(_) => None,
        };
        assert_eq!(
            refusal("SELECT a[0], f(b) FROM t WHERE c = '[(' -- ]"),
            None
        );
        let u = refusal("SELECT a.b.c.d[x.y.z.w[1] FROM t").unwrap();
        assert_eq!((u.line, u.column), (1, 15));
        assert!(u.message.contains("never closed"), "{}", u.message);
        let u = refusal("SELECT f(a]").unwrap();
        assert_eq!((u.line, u.column), (1, 11));
        assert!(
            refusal("SELECT a)")
                .unwrap()
                .message
                .contains("closes nothing")
        );
        assert!(matches!(
            checked_parser(&d, "SELECT 'open"),
            Err(Refused::Parse(_))
        ));
    }
}
