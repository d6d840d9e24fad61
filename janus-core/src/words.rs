//! Splitting a command line the way a POSIX shell splits words, without running a shell:
//! `janus check --launch CMD` and the gateway's `--launch ID=CMD` share this one rule.

/// `NAME=value` pairs for a launched command's environment.
pub type Environment = Vec<(String, String)>;

/// Splits `command` the way a POSIX shell splits words — blanks separate words, `'…'` keeps
/// everything literally, `"…"` keeps everything but `\"`, `\\`, `\$` and `` \` ``, and a
/// backslash outside quotes escapes the next character — and takes leading `NAME=value`
/// words as environment variables, as a shell would. No expansion of any kind (`$VAR`,
/// `~`, globs) and no operators (`|`, `;`, `&&`, redirections): run `sh -c '…'` explicitly
/// for those.
pub fn split_command(command: &str) -> Result<(Environment, Vec<String>), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated \" quote".to_owned()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".to_owned()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("a trailing backslash escapes nothing".to_owned()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    let mut env = Vec::new();
    let mut rest = words.into_iter().peekable();
    while let Some(assignment) = rest.next_if(|w| is_assignment(w)) {
        if let Some((name, value)) = assignment.split_once('=') {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    let argv: Vec<String> = rest.collect();
    if argv.is_empty() {
        return Err("no command to run".to_owned());
    }
    Ok((env, argv))
}

fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::split_command;

    fn argv(command: &str) -> Vec<String> {
        split_command(command).unwrap().1
    }

    #[test]
    fn words_split_like_a_shell_splits_them() {
        assert_eq!(argv("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(
            argv(r#"sh -c 'echo "$X" | cat'"#),
            ["sh", "-c", r#"echo "$X" | cat"#]
        );
        assert_eq!(argv(r#"x "a \"b\" \$c \n""#), ["x", r#"a "b" $c \n"#]);
        assert_eq!(argv(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(argv("'a'\"b\"c"), ["abc"]);
        assert_eq!(argv("x ''"), ["x", ""]);
    }

    #[test]
    fn leading_assignments_are_environment() {
        let (env, argv) = split_command("A=1 B_2='x y' prog C=3").unwrap();
        assert_eq!(
            env,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B_2".to_owned(), "x y".to_owned())
            ]
        );
        assert_eq!(argv, ["prog", "C=3"]);
    }

    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        assert!(split_command("").unwrap_err().contains("no command"));
        assert!(split_command("A=1").unwrap_err().contains("no command"));
        assert!(split_command("'open").unwrap_err().contains("unterminated"));
        assert!(split_command("\"open")
            .unwrap_err()
            .contains("unterminated"));
        assert!(split_command("x \\").unwrap_err().contains("backslash"));
    }
}
