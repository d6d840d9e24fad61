//! Linux isolation from util-linux tools and safe system calls, so no `unsafe` is needed:
//!
//! - a **holder** per sandbox: `unshare --mount --pid --net --uts --ipc --fork` starts this
//!   binary's `__holder` mode ([`crate::holder`]) as PID 1 of the new namespaces, where it
//!   builds the private root, brings up loopback and reaps; its stdin is the lifeline;
//! - each **exec** joins a per-exec cgroup under the sandbox's (memory, pids, CPU limits are
//!   set on the sandbox's), sets its rlimits, enters the holder's namespaces and root with
//!   `nsenter`, drops to an unprivileged uid with no capabilities and `no_new_privs` with
//!   `setpriv`, and runs `/bin/sh -c`;
//! - killing the processes of a cgroup ends a whole tree, whatever it does with SIGTERM;
//!   killing the holder ends the PID namespace, and with it every process inside. Signals
//!   go through `kill(2)` to single pids only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// Resource limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Memory (and memory+swap) limit in MiB.
    pub memory_mb: u64,
    /// Process limit.
    pub pids: u64,
    /// CPU limit in cores.
    pub cpus: f64,
}

/// Per-process resource limits applied to every command (hard and soft).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    /// Open files.
    pub open_files: u64,
    /// Largest file a process may write, in bytes (0: no limit).
    pub file_size_bytes: u64,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits {
            open_files: 1024,
            file_size_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Joins the exec's cgroups, sets its rlimits (hard and soft: the sandbox user cannot raise
/// them), enters the sandbox and drops privileges, then runs the command.
/// Arguments: cgroup dirs joined by ':', holder pid, uid, working directory, command,
/// open-file limit, file-size limit in 512-byte blocks (or `unlimited`).
const EXEC_SCRIPT: &str = r#"
IFS=:
for cgroup in $1; do echo $$ > "$cgroup/cgroup.procs" || exit 125; done
unset IFS
ulimit -n "$6" && ulimit -f "$7" && ulimit -c 0 || exit 125
exec nsenter --target "$2" --mount --pid --net --uts --ipc --root --wdns="$4" -- \
  setpriv --reuid="$3" --regid="$3" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- \
  /bin/sh -c "$5"
"#;

/// Controllers a sandbox gets (cgroup v1 hierarchies, or the v2 unified one).
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP_PARENT: &str = "janus-sandbox";

/// True when this machine can run full isolation: Linux, root, the tools present.
pub fn full_isolation_available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("full isolation needs Linux".to_owned());
    }
    if !rustix::process::geteuid().is_root() {
        return Err("full isolation needs root (namespaces, mounts and cgroups)".to_owned());
    }
    for tool in ["unshare", "nsenter", "setpriv"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            return Err(format!(
                "full isolation needs '{tool}' (Debian package util-linux)"
            ));
        }
    }
    Ok(())
}

fn cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The sandbox's cgroup directories, one per controller hierarchy.
fn sandbox_cgroups(id: &str) -> Vec<PathBuf> {
    if cgroup_v2() {
        vec![Path::new(CGROUP_ROOT).join(CGROUP_PARENT).join(id)]
    } else {
        V1_CONTROLLERS
            .iter()
            .map(|c| Path::new(CGROUP_ROOT).join(c).join(CGROUP_PARENT).join(id))
            .collect()
    }
}

async fn write(path: PathBuf, value: String) -> std::io::Result<()> {
    tokio::fs::write(&path, value)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Creates the sandbox's cgroups with its limits.
async fn create_cgroups(id: &str, limits: Limits) -> std::io::Result<Vec<PathBuf>> {
    let dirs = sandbox_cgroups(id);
    let memory = (limits.memory_mb * 1024 * 1024).to_string();
    let period = 100_000u64;
    let quota = ((limits.cpus * period as f64) as u64).max(1000);
    if cgroup_v2() {
        let parent = Path::new(CGROUP_ROOT).join(CGROUP_PARENT);
        tokio::fs::create_dir_all(&parent).await?;
        // Controllers must be enabled for the children of each level.
        let _ = write(
            Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
            "+memory +pids +cpu".into(),
        )
        .await;
        let _ = write(
            parent.join("cgroup.subtree_control"),
            "+memory +pids +cpu".into(),
        )
        .await;
        let dir = &dirs[0];
        tokio::fs::create_dir_all(dir).await?;
        write(dir.join("memory.max"), memory).await?;
        let _ = write(dir.join("memory.swap.max"), "0".into()).await;
        write(dir.join("pids.max"), limits.pids.to_string()).await?;
        write(dir.join("cpu.max"), format!("{quota} {period}")).await?;
        write(
            dir.join("cgroup.subtree_control"),
            "+memory +pids +cpu".into(),
        )
        .await?;
    } else {
        for dir in &dirs {
            tokio::fs::create_dir_all(dir).await?;
        }
        write(dirs[0].join("memory.limit_in_bytes"), memory.clone()).await?;
        // Without swap accounting this file is absent; the plain limit still holds.
        let _ = write(dirs[0].join("memory.memsw.limit_in_bytes"), memory).await;
        write(dirs[1].join("pids.max"), limits.pids.to_string()).await?;
        write(dirs[2].join("cpu.cfs_period_us"), period.to_string()).await?;
        write(dirs[2].join("cpu.cfs_quota_us"), quota.to_string()).await?;
    }
    Ok(dirs)
}

/// Pids of the processes in a cgroup and all its descendants.
fn cgroup_pids(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    pids
}

/// The only pids this service ever signals: a single real process (or group) id. Never 0
/// (the caller's group), never -1 ("every process": `kill -9 -15` from procps once parsed
/// `-15` as options and did exactly that), never init.
fn signal_target(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(Pid::from_raw)
}

/// SIGKILLs one process.
pub fn kill_pid(pid: u32) {
    if let Some(pid) = signal_target(pid) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// SIGKILLs a process group.
pub fn kill_group(pgid: u32) {
    if let Some(pgid) = signal_target(pgid) {
        let _ = kill_process_group(pgid, Signal::KILL);
    }
}

/// Whether `pid` lives in this service's own PID namespace (the `nsenter` wrappers of
/// execs do; everything they started inside a sandbox does not).
fn in_our_pid_namespace(pid: u32, ours: &Option<PathBuf>) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    theirs.is_some() && &theirs == ours
}

/// SIGKILLs everything in these cgroups until they are empty (a fork storm may add
/// processes while we kill, hence the loop), then waits until the killed processes are
/// reaped too, so that nothing of the tree is visible when this returns (3 s at most).
///
/// The processes inside the sandbox die first, the `nsenter` wrappers (in our PID
/// namespace) after them: a wrapper reaps its child at once, whereas a child orphaned by
/// its wrapper goes to the host's init, which may take seconds to reap it (issue 11: a
/// timed-out exec answered up to 3 s late waiting for that zombie).
pub async fn kill_cgroups(dirs: &[PathBuf]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let ours = std::fs::read_link("/proc/self/ns/pid").ok();
    let mut killed = std::collections::HashSet::new();
    let mut inside_only = true;
    loop {
        let pids: Vec<u32> = dirs.iter().flat_map(|d| cgroup_pids(d)).collect();
        let (wrappers, inside): (Vec<u32>, Vec<u32>) = pids
            .into_iter()
            .partition(|pid| in_our_pid_namespace(*pid, &ours));
        let targets = if inside_only && !inside.is_empty() {
            inside
        } else if inside_only && !wrappers.is_empty() {
            // Give the wrappers a moment to reap their children and exit on their own.
            inside_only = false;
            let grace = tokio::time::Instant::now() + Duration::from_millis(100);
            while tokio::time::Instant::now() < grace
                && dirs.iter().any(|d| !cgroup_pids(d).is_empty())
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            continue;
        } else {
            inside.into_iter().chain(wrappers).collect()
        };
        if targets.is_empty() {
            break;
        }
        for pid in targets {
            kill_pid(pid);
            killed.insert(pid);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(?dirs, "processes survived SIGKILL for 3 s");
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A dead process leaves its cgroup at once but stays in /proc until its parent (often
    // the sandbox's PID 1, for orphans) has reaped it.
    while killed
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Removes cgroup directories, children first.
async fn remove_cgroups(dirs: &[PathBuf]) {
    for dir in dirs {
        let mut all = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(entry.path());
                    }
                }
            }
            all.push(d);
        }
        // Deepest first; an emptied cgroup may take a moment to become removable.
        for d in all.iter().rev() {
            for _ in 0..50 {
                match tokio::fs::remove_dir(d).await {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }
}

/// OOM kills counted in a cgroup (the victim's cgroup counts them, so pass an exec's).
pub fn oom_kills(dirs: &[PathBuf]) -> u64 {
    let Some(dir) = dirs.first() else {
        return 0;
    };
    let file = if cgroup_v2() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// What the holder and every exec of a sandbox are set up with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Unprivileged uid (and gid) of sandbox commands.
    pub uid: u32,
    /// Cgroup limits.
    pub limits: Limits,
    /// Open-files and file-size limits.
    pub rlimits: Rlimits,
    /// This service's binary, which has the `__holder` mode.
    pub helper_binary: PathBuf,
    /// An unpacked image whose system directories form the root, instead of the host's.
    pub rootfs: Option<PathBuf>,
}

/// A running isolated sandbox.
#[derive(Debug)]
pub struct Isolated {
    /// `unshare`, whose only child is the holder.
    unshare: Child,
    /// The holder's lifeline: dropping it (even by dying) ends the sandbox.
    _lifeline: Option<tokio::process::ChildStdin>,
    /// Host pid of the holder (PID 1 of the sandbox).
    pub holder_pid: u32,
    cgroups: Vec<PathBuf>,
    setup: Setup,
    exec_counter: std::sync::atomic::AtomicU64,
    destroyed: bool,
}

/// Starts the holder of sandbox `id` with state in `dir`.
pub async fn start(
    id: &str,
    dir: &Path,
    workspace: &Path,
    setup: Setup,
) -> std::io::Result<Isolated> {
    let started = std::time::Instant::now();
    let root = dir.join("root");
    tokio::fs::create_dir_all(&root).await?;
    let cgroups = match create_cgroups(id, setup.limits).await {
        Ok(cgroups) => cgroups,
        Err(e) => {
            remove_cgroups(&sandbox_cgroups(id)).await;
            return Err(e);
        }
    };
    let tmp_mb = (setup.limits.memory_mb / 4).clamp(16, 1024).to_string();
    let spawned = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--net",
            "--uts",
            "--ipc",
            "--fork",
            "--kill-child",
            "--",
        ])
        .arg(&setup.helper_binary)
        .arg("__holder")
        .arg(&root)
        .arg(workspace)
        .arg(format!("sandbox-{}", id.trim_start_matches("sbx_")))
        .arg(tmp_mb)
        .arg(setup.rootfs.as_deref().unwrap_or(Path::new("/")))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut unshare = match spawned {
        Ok(child) => child,
        Err(e) => {
            remove_cgroups(&cgroups).await;
            return Err(e);
        }
    };
    let unshare_pid = unshare.id().unwrap_or(0);
    let stdout = unshare.stdout.take();
    let ready = async {
        let mut lines = tokio::io::BufReader::new(stdout?).lines();
        lines.next_line().await.ok().flatten()
    };
    let ready = tokio::time::timeout(Duration::from_secs(10), ready).await;
    if !matches!(&ready, Ok(Some(line)) if line == "ready") {
        let _ = unshare.kill().await;
        let mut stderr = String::new();
        if let Some(mut pipe) = unshare.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = tokio::time::timeout(Duration::from_secs(1), pipe.read_to_string(&mut stderr))
                .await;
        }
        remove_cgroups(&cgroups).await;
        return Err(std::io::Error::other(format!(
            "the sandbox holder ({} __holder) did not start: {}",
            setup.helper_binary.display(),
            stderr.trim()
        )));
    }
    tracing::debug!(sandbox = %id, ms = started.elapsed().as_secs_f64() * 1000.0, "holder ready");
    // unshare --fork: the holder is unshare's only child.
    let children =
        std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
            .unwrap_or_default();
    let Some(holder_pid) = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
    else {
        let _ = unshare.kill().await;
        remove_cgroups(&cgroups).await;
        return Err(std::io::Error::other(
            "cannot find the sandbox holder's pid",
        ));
    };
    Ok(Isolated {
        _lifeline: unshare.stdin.take(),
        unshare,
        holder_pid,
        cgroups,
        setup,
        exec_counter: Default::default(),
        destroyed: false,
    })
}

impl Isolated {
    /// A command that runs `command` inside the sandbox as the unprivileged uid, in a fresh
    /// per-exec cgroup (returned so a timeout can kill exactly this tree).
    pub async fn exec_command(
        &self,
        command: &str,
        cwd: &str,
    ) -> std::io::Result<(Command, Vec<PathBuf>)> {
        let n = self
            .exec_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut dirs = Vec::new();
        for dir in &self.cgroups {
            let exec_dir = dir.join(format!("exec-{n}"));
            tokio::fs::create_dir(&exec_dir).await?;
            dirs.push(exec_dir);
        }
        let joined = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        // `ulimit -f` counts 512-byte blocks.
        let file_blocks = match self.setup.rlimits.file_size_bytes {
            0 => "unlimited".to_owned(),
            bytes => bytes.div_ceil(512).to_string(),
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", EXEC_SCRIPT, "sh"])
            .arg(joined)
            .arg(self.holder_pid.to_string())
            .arg(self.setup.uid.to_string())
            .arg(cwd)
            .arg(command)
            .arg(self.setup.rlimits.open_files.to_string())
            .arg(file_blocks);
        Ok((cmd, dirs))
    }

    /// Kills every process, the holder (ending the namespaces and their mounts) and
    /// removes the cgroups.
    pub async fn destroy(mut self) {
        kill_cgroups(&self.cgroups).await;
        // The holder is PID 1 of the sandbox: its death ends the PID namespace, and the
        // kernel kills whatever is still inside.
        kill_pid(self.holder_pid);
        // `unshare` reaps the holder and exits; killing `unshare` first would orphan the
        // holder's zombie to whatever init this machine has.
        if tokio::time::timeout(Duration::from_secs(2), self.unshare.wait())
            .await
            .is_err()
        {
            let _ = self.unshare.kill().await;
        }
        remove_cgroups(&self.cgroups).await;
        self.destroyed = true;
    }
}

/// A sandbox dropped without [`Isolated::destroy`] (the service's runtime torn down before
/// its shutdown finished, a panic): kill and remove what can be, without waiting long. The
/// holder dies anyway with its lifeline and `unshare` (`kill_on_drop`).
impl Drop for Isolated {
    fn drop(&mut self) {
        if self.destroyed {
            return;
        }
        kill_pid(self.holder_pid);
        for _ in 0..20 {
            let pids: Vec<u32> = self.cgroups.iter().flat_map(|d| cgroup_pids(d)).collect();
            if pids.is_empty() {
                break;
            }
            pids.into_iter().for_each(kill_pid);
            std::thread::sleep(Duration::from_millis(2));
        }
        for dir in &self.cgroups {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Kills and removes the cgroups of sandbox `id` left by a previous run of the service.
pub async fn remove_stale(id: &str) {
    let dirs = sandbox_cgroups(id);
    kill_cgroups(&dirs).await;
    remove_cgroups(&dirs).await;
}

/// Removes an exec's cgroups once it is over, unless processes it left behind still run
/// in them (those are removed with the sandbox).
pub async fn release_exec_cgroups(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = tokio::fs::remove_dir(dir).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    use super::{kill_group, signal_target};

    #[test]
    fn only_single_real_pids_are_ever_signalled() {
        for special in [0, 1, u32::MAX, u32::MAX - 13, 1 << 31] {
            assert!(signal_target(special).is_none(), "{special}");
        }
        assert_eq!(
            signal_target(15).map(|p| p.as_raw_nonzero().get()),
            Some(15)
        );
    }

    /// Regression: killing a group used `kill -9 -<pgid>`, which procps parses as options for
    /// some ids and then signals every process on the machine.
    #[test]
    fn killing_a_group_kills_that_group_only() {
        let mut target = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut bystander = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill_group(target.id());
        assert_eq!(target.wait().unwrap().signal(), Some(9));
        assert!(bystander.try_wait().unwrap().is_none());
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }
}
