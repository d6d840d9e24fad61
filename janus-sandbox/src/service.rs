//! A sandbox's long-running command — a launched competitor — and its output.
//!
//! The command (an argv, no shell) starts when its sandbox is ready, in a cgroup under the
//! sandbox's (so the sandbox's memory, pids and CPU limits bind it), and runs until it
//! exits or the sandbox ends. Its stdout and stderr lines are kept (the last
//! [`TAIL_LINES`]) and broadcast, so `GET /api/sandboxes/{id}/logs?follow=true` can stream
//! them to whoever runs it (the gateway's runner logs them tagged with the competitor id).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::broadcast;

/// Output lines kept per service.
pub const TAIL_LINES: usize = 1000;
/// Longest line kept; longer ones are cut (and marked).
const MAX_LINE: usize = 16 * 1024;

/// One line of output, or the final exit record.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// RFC 3339 time the line was read.
    pub at: String,
    /// `stdout`, `stderr`, or `exit` for the last record.
    pub stream: &'static str,
    /// The line (without its newline), or for `exit` the outcome.
    pub line: String,
}

/// The state of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Running.
    Running,
    /// Exited with this code (128 + signal when killed); `oom_killed` when the memory
    /// limit killed a process of it.
    Exited {
        /// Exit code.
        code: i32,
        /// The memory limit struck.
        oom_killed: bool,
    },
}

/// A running (or finished) service.
#[derive(Debug)]
pub struct Service {
    started_at: SystemTime,
    argv: Vec<String>,
    status: Arc<Mutex<Status>>,
    tail: Arc<Mutex<VecDeque<LogLine>>>,
    lines: broadcast::Sender<LogLine>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    restarts: u64,
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `argv` as one `sh -c` command that execs it, each word single-quoted: no expansion,
/// no operators, exactly these words.
pub fn exec_line(argv: &[String]) -> String {
    let mut line = String::from("exec");
    for word in argv {
        line.push_str(" '");
        line.push_str(&word.replace('\'', r"'\''"));
        line.push('\'');
    }
    line
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn push(tail: &Mutex<VecDeque<LogLine>>, lines: &broadcast::Sender<LogLine>, line: LogLine) {
    {
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
    }
    let _ = lines.send(line);
}

impl Service {
    /// Watches a started command: reads its output, records its exit (then releases its
    /// cgroups).
    pub fn watch(
        argv: Vec<String>,
        mut child: tokio::process::Child,
        cgroups: Vec<PathBuf>,
        restarts: u64,
    ) -> Service {
        let status = Arc::new(Mutex::new(Status::Running));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines, _) = broadcast::channel(256);
        let mut tasks = Vec::new();
        let mut readers = Vec::new();
        let pipes: [(
            Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
            &'static str,
        ); 2] = [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                "stdout",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                "stderr",
            ),
        ];
        for (pipe, stream) in pipes {
            let Some(pipe) = pipe else { continue };
            let tail = tail.clone();
            let lines = lines.clone();
            readers.push(tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let mut text = String::from_utf8_lossy(&buf).into_owned();
                            if text.ends_with('\n') {
                                text.pop();
                            }
                            if text.len() > MAX_LINE {
                                let mut cut = MAX_LINE;
                                while !text.is_char_boundary(cut) {
                                    cut -= 1;
                                }
                                text.truncate(cut);
                                text.push_str(" …[cut]");
                            }
                            push(
                                &tail,
                                &lines,
                                LogLine {
                                    at: now(),
                                    stream,
                                    line: text,
                                },
                            );
                        }
                    }
                }
            }));
        }
        {
            let status = status.clone();
            let tail = tail.clone();
            let lines = lines.clone();
            tasks.push(tokio::spawn(async move {
                let exit = child.wait().await;
                // What it wrote last is read before the exit is recorded.
                for reader in readers {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_millis(200), reader).await;
                }
                let code = exit
                    .map(|s| {
                        use std::os::unix::process::ExitStatusExt;
                        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
                    })
                    .unwrap_or(-1);
                let oom_killed = crate::isolation::oom_kills(&cgroups) > 0;
                crate::isolation::release_exec_cgroups(&cgroups).await;
                *status.lock().unwrap_or_else(|p| p.into_inner()) =
                    Status::Exited { code, oom_killed };
                let outcome = if oom_killed {
                    format!("exited with {code} (memory limit)")
                } else {
                    format!("exited with {code}")
                };
                push(
                    &tail,
                    &lines,
                    LogLine {
                        at: now(),
                        stream: "exit",
                        line: outcome,
                    },
                );
            }));
        }
        Service {
            started_at: SystemTime::now(),
            argv,
            status,
            tail,
            lines,
            tasks,
            restarts,
        }
    }

    /// The command.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// How many times it was restarted in this sandbox.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Current state.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The kept lines, and (when `follow`) a receiver of the lines after them. Taken under
    /// one lock, so no line is lost or doubled between the two.
    pub fn logs(&self, follow: bool) -> (Vec<LogLine>, Option<broadcast::Receiver<LogLine>>) {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = (follow && self.status() == Status::Running).then(|| self.lines.subscribe());
        (tail.iter().cloned().collect(), receiver)
    }

    /// The `service` object of the sandbox description.
    pub fn describe(&self) -> Value {
        let (running, exit_code, oom_killed) = match self.status() {
            Status::Running => (true, None, false),
            Status::Exited { code, oom_killed } => (false, Some(code), oom_killed),
        };
        json!({
            "command": self.argv,
            "running": running,
            "exit_code": exit_code,
            "oom_killed": oom_killed,
            "restarts": self.restarts,
            "started_at": humantime::format_rfc3339_seconds(self.started_at).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::exec_line;

    #[test]
    fn argv_is_quoted_word_for_word() {
        let argv: Vec<String> = ["/bin/echo", "a b", "it's", "$HOME;rm"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            exec_line(&argv),
            r"exec '/bin/echo' 'a b' 'it'\''s' '$HOME;rm'"
        );
    }
}
