//! Checks run on the tokens before sqlparser parses a query or an expression, against the
//! two shapes on which its backtracking parser takes time exponential in the text's length
//! (both found by the fuzz targets):
//!
//! - An unclosed `[` after a long dotted name: sqlparser tries the name as a data type, then
//!   as an expression, at every level, and the work grows tenfold with each bracket: six in
//!   60 bytes held a core for 40 seconds (the `sql` target). Every `[` and `(` must be closed,
//!   which a valid text needs anyway.
//! - A dotted name that fails to parse late (`a.b. c.d. … e.`): after each `.` sqlparser tries
//!   the rest as an expression and, when that fails, again as a name, so the work doubles
//!   with each part: 146 bytes took 9 seconds (the `expression` target). A name has at most
//!   [`MAX_NAME_PARTS`] parts, far more than any nesting of structs a query reads.
//!
//! The parser then takes the checked tokens, so the text is tokenized once: the checks cost
//! nothing, and say where the problem is.

use datafusion_sql::sqlparser::dialect::Dialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The most parts a dotted name may have (`a.b.c` has three).
pub const MAX_NAME_PARTS: usize = 16;

/// Why a text was refused before its parse began.
#[derive(Debug)]
pub enum Refused {
    /// It does not tokenize (an unterminated string, say): sqlparser's own error.
    Parse(ParserError),
    /// A bracket is not matched, or a name is too long.
    Shape(Shape),
}

/// A parser over `text` once its brackets are matched and its names short enough
/// (`Parser::try_with_sql`, with the checks between tokenizing and parsing).
pub fn checked_parser<'a>(dialect: &'a dyn Dialect, text: &str) -> Result<Parser<'a>, Refused> {
    let tokens = Tokenizer::new(dialect, text)
        .tokenize_with_location()
        .map_err(|e| Refused::Parse(e.into()))?;
    if let Some(problem) = unbalanced(&tokens).or_else(|| too_long_name(&tokens)) {
        return Err(Refused::Shape(problem));
    }
    Ok(Parser::new(dialect).with_tokens_with_locations(tokens))
}

/// Where a text's shape is refused: line and column (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Line of the bracket, from 1.
    pub line: u64,
    /// Column of the bracket, from 1.
    pub column: u64,
    /// What is wrong, e.g. "'[' is never closed".
    pub message: String,
}

/// sqlparser's error in its own words, and where it says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// `(line, column)`, from 1, when the message says them.
    pub position: Option<(u64, u64)>,
    /// The message without sqlparser's prefix and position.
    pub message: String,
}

/// Reads sqlparser's error, whose text is "sql parser error: … at Line: 3, Column: 14".
pub fn parse_failure(e: &ParserError) -> ParseFailure {
    let text = e.to_string();
    let position = text.split("Line: ").nth(1).and_then(|rest| {
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((line.trim().parse().ok()?, column.parse().ok()?))
    });
    let message = text
        .trim_start_matches("sql parser error: ")
        .split(" at Line: ")
        .next()
        .unwrap_or_default()
        .to_owned();
    ParseFailure { position, message }
}

/// The first bracket among `tokens` that is not matched, if any.
fn unbalanced(tokens: &[TokenWithSpan]) -> Option<Shape> {
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
                return Some(Shape {
                    line: t.span.start.line,
                    column: t.span.start.column,
                    message: format!(
                        "'{}' closes '{}', which was opened at line {}, column {}",
                        t.token, o.token, o.span.start.line, o.span.start.column
                    ),
                });
            }
            None => {
                return Some(Shape {
                    line: t.span.start.line,
                    column: t.span.start.column,
                    message: format!("'{}' closes nothing", t.token),
                });
            }
        }
    }
    open.pop().map(|o| Shape {
        line: o.span.start.line,
        column: o.span.start.column,
        message: format!("'{}' is never closed", o.token),
    })
}

/// The first dotted name of more than [`MAX_NAME_PARTS`] parts: words, numbers and quoted
/// names joined by `.`, with any space between (sqlparser reads `a. b` as `a.b`).
fn too_long_name(tokens: &[TokenWithSpan]) -> Option<Shape> {
    let mut parts = 0;
    let mut start: Option<&TokenWithSpan> = None;
    let mut after_period = false;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::Period if parts > 0 && !after_period => after_period = true,
            Token::Word(_) | Token::Number(..) | Token::SingleQuotedString(_) if after_period => {
                parts += 1;
                after_period = false;
                if parts > MAX_NAME_PARTS {
                    let first = start.unwrap_or(t);
                    return Some(Shape {
                        line: first.span.start.line,
                        column: first.span.start.column,
                        message: format!(
                            "a dotted name of more than {MAX_NAME_PARTS} parts starts here"
                        ),
                    });
                }
            }
            Token::Word(_) | Token::Number(..) => {
                parts = 1;
                start = Some(t);
                after_period = false;
            }
            _ => {
                parts = 0;
                after_period = false;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_sql::sqlparser::dialect::DatabricksDialect;

    #[test]
    fn finds_the_bracket_that_is_not_closed_and_ignores_quoted_ones() {
        let d = DatabricksDialect {};
        let refusal = |text: &str| match checked_parser(&d, text) {
            Err(Refused::Shape(u)) => Some(u),
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

    #[test]
    fn refuses_a_name_of_too_many_parts_wherever_its_spaces_are() {
        let d = DatabricksDialect {};
        let name = |parts: usize, sep: &str| vec!["e"; parts].join(sep);
        for sep in [".", ". ", " . "] {
            let text = format!("SELECT 1 + {}", name(MAX_NAME_PARTS, sep));
            assert!(checked_parser(&d, &text).is_ok(), "{text}");
            let text = format!("SELECT 1 + {}", name(MAX_NAME_PARTS + 1, sep));
            match checked_parser(&d, &text) {
                Err(Refused::Shape(s)) => {
                    assert_eq!((s.line, s.column), (1, 12), "{text}");
                    assert!(s.message.contains("more than 16 parts"), "{}", s.message);
                }
                _ => panic!("{text} was not refused"),
            }
        }
        // Separate names are not one: `a.b c.d` (an alias) and `f(a.b, c.d)`.
        let many = ["a.b.c.d"; 10].join(", ");
        assert!(checked_parser(&d, &format!("SELECT f({many})")).is_ok());
        let aliased = ["a.b.c.d x"; 10].join(" ");
        assert!(checked_parser(&d, &format!("SELECT {aliased}")).is_ok());
    }
}
