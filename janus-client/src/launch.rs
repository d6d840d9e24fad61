//! A command started for a conformance check (`janus check --launch CMD`): split like a
//! shell splits words (no shell is run), started in a process group of its own, and ended
//! with that whole group, so nothing it forked survives the check.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal, WaitId, WaitIdOptions};

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

/// A launched command and the process group it leads (created for it, so ending the group
/// ends exactly what it started).
#[derive(Debug)]
pub struct Launched {
    child: Option<tokio::process::Child>,
    pgid: Option<Pid>,
}

impl Launched {
    /// Starts `command` (see [`split_command`]) as the leader of a new process group, its
    /// stdout and stderr going to this process's stderr.
    pub fn start(command: &str) -> Result<Launched, String> {
        let (env, argv) = split_command(command).map_err(|e| format!("--launch: {e}"))?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env)
            .stdin(Stdio::null())
            // The competitor's own output goes to stderr, keeping stdout for the report.
            .stdout(stderr_stdio())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run '{}': {e}", argv[0]))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        Ok(Launched {
            child: Some(child),
            pgid,
        })
    }

    /// Whether the command has exited (it is not reaped, so this can be asked again).
    pub fn has_exited(&self) -> bool {
        self.pgid.is_some_and(leader_exited)
    }

    /// The leader's pid.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// Ends the whole group: SIGTERM, up to `grace` for the leader to exit, then SIGKILL to
    /// whatever of the group is left. The leader is reaped only after the last signal, so
    /// the group id cannot have been reused by then.
    pub async fn stop(mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Some(pgid) = self.pgid else {
            let _ = child.kill().await;
            return;
        };
        let _ = kill_process_group(pgid, Signal::TERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !leader_exited(pgid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = kill_process_group(pgid, Signal::KILL);
        let _ = child.wait().await;
    }
}

/// Whether the leader has exited, without reaping it (`WNOWAIT`): while it is an unreaped
/// zombie its pid, and so the group id, stay ours.
fn leader_exited(pid: Pid) -> bool {
    matches!(
        rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ),
        Ok(Some(_))
    )
}

impl Drop for Launched {
    /// Not stopped (a panic, an early return): SIGKILL the group while the leader is still
    /// unreaped, i.e. the group is still the one we created.
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Some(pgid) = self.pgid {
                let _ = kill_process_group(pgid, Signal::KILL);
            }
        }
    }
}

fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
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
