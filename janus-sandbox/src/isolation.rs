//! Linux isolation built from util-linux tools, so no `unsafe` is needed:
//!
//! - a **holder** process per sandbox, started with `unshare --mount --pid --net --uts
//!   --ipc --fork`, builds a private root (a read-only tmpfs with the host's `/usr`, `/bin`,
//!   `/lib*`, `/etc`, `/opt` bound read-only, the sandbox's own writable `/workspace`, a
//!   size-limited `/tmp`, its own `/proc`, a minimal `/dev`), brings up loopback — the only
//!   network device in its namespace — and then sleeps as PID 1 inside that root;
//! - each **exec** joins a per-exec cgroup under the sandbox's (memory, pids, CPU limits are
//!   set on the sandbox's), enters the holder's namespaces with `nsenter --root`, drops to an
//!   unprivileged uid with no capabilities and `no_new_privs` with `setpriv`, and runs
//!   `/bin/sh -c`;
//! - killing the processes of a cgroup ends a whole tree, whatever it does with SIGTERM;
//!   killing the holder ends the PID namespace, and with it every process inside.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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

/// The script the holder runs inside its new namespaces.
/// Arguments: new root, host workspace dir, hostname, /tmp size in MiB.
const HOLDER_SCRIPT: &str = r#"
set -e
NEW="$1"; WS="$2"
mount --make-rprivate /
mount -t tmpfs -o size=1m,mode=755 janus-root "$NEW"
for d in usr bin sbin lib lib32 lib64 libx32 etc opt; do
  if [ -L "/$d" ]; then
    ln -s "$(readlink "/$d")" "$NEW/$d"
  elif [ -d "/$d" ]; then
    mkdir -p "$NEW/$d"
    mount --rbind "/$d" "$NEW/$d"
    mount -o remount,bind,ro "$NEW/$d"
  fi
done
mkdir -p "$NEW/workspace" "$NEW/tmp" "$NEW/proc" "$NEW/dev"
mount --bind "$WS" "$NEW/workspace"
mount -t tmpfs -o "size=$4m,mode=1777" janus-tmp "$NEW/tmp"
mount -t proc proc "$NEW/proc"
mount -t tmpfs -o size=64k,mode=755 janus-dev "$NEW/dev"
for n in null zero full random urandom; do
  touch "$NEW/dev/$n"
  mount --bind "/dev/$n" "$NEW/dev/$n"
done
ln -s /proc/self/fd "$NEW/dev/fd"
mount -o remount,ro "$NEW"
ip link set lo up
hostname "$3"
echo ready
# PID 1 must reap: processes orphaned inside the sandbox are re-parented to it.
exec chroot "$NEW" /bin/sh -c 'cd /workspace; while :; do sleep 3600 & wait; done'
"#;

/// Joins the exec's cgroups, enters the sandbox and drops privileges.
/// Arguments: cgroup dirs joined by ':', holder pid, uid, working directory, command.
const EXEC_SCRIPT: &str = r#"
IFS=:
for cgroup in $1; do echo $$ > "$cgroup/cgroup.procs" || exit 125; done
unset IFS
exec nsenter --target "$2" --mount --pid --net --uts --ipc --root --wd -- \
  setpriv --reuid="$3" --regid="$3" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- \
  /bin/sh -c 'cd "$1" || exit 126; exec /bin/sh -c "$2"' sh "$4" "$5"
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
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Err("full isolation needs root (namespaces, mounts and cgroups)".to_owned());
    }
    for tool in ["unshare", "nsenter", "setpriv", "ip", "chroot", "mount"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            return Err(format!(
                "full isolation needs '{tool}' (Debian packages util-linux, iproute2)"
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
fn cgroup_pids(dir: &Path) -> Vec<String> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.split_whitespace().map(str::to_owned));
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

/// SIGKILLs everything in these cgroups until they are empty (or 3 s pass).
pub async fn kill_cgroups(dirs: &[PathBuf]) {
    for _ in 0..300 {
        let pids: Vec<String> = dirs.iter().flat_map(|d| cgroup_pids(d)).collect();
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-9")
            .args(&pids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(?dirs, "processes survived SIGKILL for 3 s");
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

/// A running isolated sandbox.
#[derive(Debug)]
pub struct Isolated {
    holder: Child,
    /// Host pid of the holder (PID 1 of the sandbox).
    pub holder_pid: u32,
    cgroups: Vec<PathBuf>,
    uid: u32,
    exec_counter: std::sync::atomic::AtomicU64,
}

/// Starts the holder of sandbox `id` with state in `dir`.
pub async fn start(
    id: &str,
    dir: &Path,
    workspace: &Path,
    uid: u32,
    limits: Limits,
) -> std::io::Result<Isolated> {
    let root = dir.join("root");
    tokio::fs::create_dir_all(&root).await?;
    let cgroups = create_cgroups(id, limits).await?;
    let tmp_mb = (limits.memory_mb / 4).clamp(16, 1024).to_string();
    let mut holder = Command::new("unshare")
        .args([
            "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "--",
        ])
        .args(["/bin/sh", "-c", HOLDER_SCRIPT, "sh"])
        .arg(&root)
        .arg(workspace)
        .arg(format!("sandbox-{}", id.trim_start_matches("sbx_")))
        .arg(tmp_mb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let unshare_pid = holder.id().unwrap_or(0);
    let stdout = holder.stdout.take();
    let ready = async {
        let mut lines = tokio::io::BufReader::new(stdout?).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "ready" {
                return Some(());
            }
        }
        None
    };
    let ready = tokio::time::timeout(Duration::from_secs(10), ready).await;
    if !matches!(ready, Ok(Some(()))) {
        let _ = holder.kill().await;
        let mut stderr = String::new();
        if let Some(mut pipe) = holder.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        remove_cgroups(&cgroups).await;
        return Err(std::io::Error::other(format!(
            "sandbox holder did not start: {}",
            stderr.trim()
        )));
    }
    // unshare --fork: the holder is unshare's only child.
    let children =
        std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
            .unwrap_or_default();
    let holder_pid = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("cannot find the sandbox holder's pid"))?;
    Ok(Isolated {
        holder,
        holder_pid,
        cgroups,
        uid,
        exec_counter: Default::default(),
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
            tokio::fs::create_dir_all(&exec_dir).await?;
            dirs.push(exec_dir);
        }
        let joined = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", EXEC_SCRIPT, "sh"])
            .arg(joined)
            .arg(self.holder_pid.to_string())
            .arg(self.uid.to_string())
            .arg(cwd)
            .arg(command);
        Ok((cmd, dirs))
    }

    /// Kills every process, the holder (ending the namespaces and their mounts) and
    /// removes the cgroups.
    pub async fn destroy(mut self) {
        kill_cgroups(&self.cgroups).await;
        let _ = self.holder.kill().await;
        let _ = Command::new("kill")
            .args(["-9", &self.holder_pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        let _ = self.holder.wait().await;
        remove_cgroups(&self.cgroups).await;
    }
}
