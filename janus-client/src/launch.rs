//! A command started for a conformance check (`janus check --launch CMD`): split like a
//! shell splits words (no shell is run), started in a process group of its own, and ended
//! with that whole group, so nothing it forked survives the check.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal, WaitId, WaitIdOptions};

pub use janus_core::words::split_command;

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
