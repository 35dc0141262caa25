//! A nesting-depth check that runs before a JSON5 parse. The `json5` crate
//! parses recursively with no limit of its own, so a few kilobytes of
//! `[[[[…` would overflow the stack and abort the process. serde_json stops
//! at 128 levels; config text gets the same limit, with its position.

/// The deepest nesting accepted in a config text (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// Where the text first goes deeper than the limit (1-based line and column).
#[derive(Debug, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// Scans JSON5 text for `{`/`[` nesting, skipping strings and comments.
/// It does not validate anything else: the parser that follows does.
pub fn check(text: &str, max: usize) -> Result<(), TooDeep> {
    #[derive(Clone, Copy)]
    enum St {
        Code,
        Str(char),
        Escape(char),
        LineComment,
        BlockComment,
    }
    let mut st = St::Code;
    let mut depth = 0usize;
    let (mut line, mut col) = (1usize, 0usize);
    let mut prev = '\0';
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
        st = match st {
            St::Code => match c {
                '"' | '\'' => St::Str(c),
                '/' if prev == '/' => St::LineComment,
                '*' if prev == '/' => St::BlockComment,
                '{' | '[' => {
                    depth += 1;
                    if depth > max {
                        return Err(TooDeep { line, column: col });
                    }
                    St::Code
                }
                '}' | ']' => {
                    depth = depth.saturating_sub(1);
                    St::Code
                }
                _ => St::Code,
            },
            St::Str(q) => match c {
                '\\' => St::Escape(q),
                c if c == q => St::Code,
                _ => St::Str(q),
            },
            St::Escape(q) => St::Str(q),
            St::LineComment if c == '\n' => St::Code,
            St::BlockComment if c == '/' && prev == '*' => St::Code,
            s => s,
        };
        // A `/` that opened a comment must not also close `*/` or start `//`.
        prev = match (st, c) {
            (St::LineComment | St::BlockComment, '/' | '*') if prev == '/' => '\0',
            _ => c,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nesting_outside_strings_and_comments() {
        assert_eq!(check("{a:[[1]]}", 3), Ok(()));
        assert_eq!(check("{a:[[[1]]]}", 3), Err(TooDeep { line: 1, column: 6 }));
        // Brackets in strings and comments do not count.
        assert_eq!(check(r#"{a:"[[[[", b:'{{{{\'[[[['}"#, 1), Ok(()));
        assert_eq!(check("{// [[[[\n a: 1 /* {{{{ */}", 1), Ok(()));
        assert_eq!(check("{/*/ [[ */ a: 1}", 1), Ok(()));
        // Depth goes back down between siblings.
        assert_eq!(check("{a:[1],b:[2],c:{d:[3]}}", 3), Ok(()));
        assert_eq!(
            check("{\n a: [\n  [\n   [1]]]}", 3),
            Err(TooDeep { line: 4, column: 4 })
        );
    }

    #[test]
    fn deep_text_is_refused_without_recursion() {
        let deep = format!("{{a:{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(check(&deep, MAX_DEPTH).unwrap_err().line, 1);
    }
}
