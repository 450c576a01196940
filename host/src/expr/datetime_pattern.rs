//! Spark's datetime patterns (`yyyy-MM-dd HH:mm:ss`, Java's `DateTimeFormatter` letters) in
//! chrono's `strftime` terms, which DataFusion's `to_char`, `to_timestamp` and `to_date` read.
//! Translated once, when the expression is planned; a letter chrono has no equivalent for is
//! refused by name rather than formatted wrongly.

/// The chrono format that means what Spark's `pattern` does.
pub(super) fn to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // A run of the same letter is one field; its length picks the form.
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        match c {
            '\'' => {
                // Quoted text; '' is a quote.
                if chars.get(i + 1) == Some(&'\'') {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                let Some(end) = chars[i + 1..].iter().position(|&x| x == '\'') else {
                    return Err(format!(
                        "the quote at position {} of pattern '{pattern}' is not closed",
                        i + 1
                    ));
                };
                for &x in &chars[i + 1..i + 1 + end] {
                    push_literal(&mut out, x);
                }
                i += end + 2;
                continue;
            }
            'y' | 'u' => out.push_str(if run == 2 { "%y" } else { "%Y" }),
            'M' | 'L' => out.push_str(match run {
                1 => "%-m",
                2 => "%m",
                3 => "%b",
                _ => "%B",
            }),
            'd' => out.push_str(if run == 1 { "%-d" } else { "%d" }),
            'D' => out.push_str(if run < 3 { "%-j" } else { "%j" }),
            'H' => out.push_str(if run == 1 { "%-H" } else { "%H" }),
            'h' => out.push_str(if run == 1 { "%-I" } else { "%I" }),
            'm' => out.push_str(if run == 1 { "%-M" } else { "%M" }),
            's' => out.push_str(if run == 1 { "%-S" } else { "%S" }),
            'S' => out.push_str(match run {
                3 => "%3f",
                6 => "%6f",
                9 => "%9f",
                n => {
                    return Err(format!(
                        "pattern '{pattern}': {n} fraction digits ('{}'); use S, SSS, SSSSSS or SSSSSSSSS",
                        "S".repeat(n)
                    ));
                }
            }),
            'E' => out.push_str(if run <= 3 { "%a" } else { "%A" }),
            'a' => out.push_str("%p"),
            'z' => out.push_str("%Z"),
            'Z' | 'x' => out.push_str("%z"),
            'X' => out.push_str(if run >= 3 { "%:z" } else { "%z" }),
            c if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "pattern '{pattern}': the letter '{c}' at position {} is not supported here (supported: y M d D H h m s S E a z Z x X and 'quoted text')",
                    i + 1
                ));
            }
            c => {
                for _ in 0..run {
                    push_literal(&mut out, c);
                }
            }
        }
        i += run;
    }
    Ok(out)
}

/// `c` as chrono reads it literally (`%` is written `%%`).
fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::to_chrono;

    #[test]
    fn spark_patterns_become_chrono_formats() {
        assert_eq!(
            to_chrono("yyyy-MM-dd HH:mm:ss").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(to_chrono("d/M/yy").unwrap(), "%-d/%-m/%y");
        assert_eq!(to_chrono("EEE, MMM d ''yy").unwrap(), "%a, %b %-d '%y");
        assert_eq!(to_chrono("100%").unwrap(), "100%%");
    }

    #[test]
    fn unknown_letters_and_open_quotes_are_refused_with_where() {
        let e = to_chrono("yyyy-QQ").unwrap_err();
        assert!(e.contains("'Q' at position 6"), "{e}");
        assert!(to_chrono("'T").unwrap_err().contains("not closed"));
        assert!(
            to_chrono("ss.SS")
                .unwrap_err()
                .contains("2 fraction digits")
        );
    }
}
