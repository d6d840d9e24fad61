//! Sandboxes and their manager: creation with capacity and priority preemption, exec with
//! timeouts and capped output, files, TTL reaping, termination that leaves nothing behind.

use std::collections::{HashMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{Mutex, RwLock};

use crate::config::{Config, IsolationMode};
use crate::error::SandboxError;
use crate::isolation::{self, Isolated, Limits};
use crate::workspace;

/// Terminated ids remembered so late calls get 409 instead of 404.
const TOMBSTONES: usize = 4096;

/// What a create asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Time to live.
    pub ttl: Duration,
    /// 0 (most important) … 100; HIGH = 1, NORMAL = 2, LOW = 3.
    pub priority: u8,
    /// May be terminated to make room for more important work.
    pub preemptable: bool,
    /// Limits.
    pub limits: Limits,
    /// Environment for every exec.
    pub env: Vec<(String, String)>,
    /// Ports the client wants reachable (recorded).
    pub expose_ports: Vec<u16>,
    /// Flavor name (recorded).
    pub flavor: Option<String>,
    /// A long-running command (argv) started when the sandbox is ready: a launched
    /// competitor. Its output is kept and streamed by `GET …/logs`.
    pub command: Option<Vec<String>>,
    /// An unpacked image used read-only as the sandbox's root (checked against
    /// `--allow-rootfs`); the host's system directories otherwise.
    pub rootfs: Option<PathBuf>,
    /// Size of `/workspace` in MiB, enforced by a size-capped tmpfs (full isolation).
    pub disk_mb: Option<u64>,
}

/// One live sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// `sbx_` + hex.
    pub id: String,
    created_at: SystemTime,
    expires_at: Mutex<Instant>,
    ttl: Duration,
    /// Priority (smaller is more important).
    pub priority: u8,
    /// Preemptable.
    pub preemptable: bool,
    env: Vec<(String, String)>,
    expose_ports: Vec<u16>,
    flavor: Option<String>,
    dir: PathBuf,
    workspace: PathBuf,
    isolated: Mutex<Option<Isolated>>,
    /// Serializes destruction with in-flight use.
    busy: RwLock<()>,
    /// Wakes the running agent to cancel it.
    pub agent_cancel: Arc<tokio::sync::Notify>,
    /// Forward helpers inside the sandbox and their host-side relays.
    forwards: Mutex<Vec<(tokio::process::Child, tokio::task::JoinHandle<()>)>>,
    /// `/workspace` size in MiB, when limited.
    disk_mb: Option<u64>,
    /// `/workspace` is a tmpfs mounted by this service (unmounted on destroy).
    disk_mounted: bool,
    /// The image used as root, if any.
    rootfs: Option<PathBuf>,
    /// The long-running command, if the sandbox was created with one.
    service: std::sync::Mutex<Option<crate::service::Service>>,
    /// Where this sandbox's forward sockets live, when not under `dir` (a long `--root`).
    socket_dir: Option<PathBuf>,
    limits: Limits,
}

/// A command started in a sandbox.
#[derive(Debug)]
pub struct Spawned {
    /// The process (the wrapper that enters the sandbox).
    pub child: tokio::process::Child,
    /// Its cgroups (full isolation): killing them ends the whole tree.
    pub cgroups: Vec<PathBuf>,
    /// Its process group (no isolation).
    pub pgid: Option<u32>,
}

/// Kills a spawned command's whole tree: its cgroups under full isolation, else its
/// process group.
pub async fn kill_tree(cgroups: &[PathBuf], pgid: Option<u32>) {
    if cgroups.is_empty() {
        if let Some(pgid) = pgid {
            isolation::kill_group(pgid);
        }
    } else {
        isolation::kill_cgroups(cgroups).await;
    }
}

/// Kills a spawned command's whole tree with SIGKILL and reaps the command meanwhile: until
/// it is reaped its zombie stays in /proc, and killing a cgroup waits for every killed pid
/// to vanish (issue 11: that made a timed-out exec answer 3 s late).
pub async fn kill_and_reap(
    child: &mut tokio::process::Child,
    cgroups: &[PathBuf],
    pgid: Option<u32>,
) -> Option<std::process::ExitStatus> {
    let reap = async {
        if cgroups.is_empty() {
            let _ = child.start_kill();
        } else {
            // The wrapper dies with its cgroup, after the tree inside; SIGKILL it directly
            // only if it somehow outlives that.
            if let Ok(status) = tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
                return status.ok();
            }
            let _ = child.start_kill();
        }
        child.wait().await.ok()
    };
    let ((), status) = tokio::join!(kill_tree(cgroups, pgid), reap);
    status
}

/// The outcome of an exec.
#[derive(Debug, Serialize)]
pub struct ExecResult {
    /// Standard output (capped).
    pub stdout: String,
    /// Standard error (capped).
    pub stderr: String,
    /// Exit code; 128 + signal when killed.
    pub exit_code: i32,
    /// Same, in the other spelling clients read.
    #[serde(rename = "exitCode")]
    pub exit_code_camel: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// The timeout killed it.
    pub timed_out: bool,
    /// The memory limit killed a process.
    pub oom_killed: bool,
}

/// Longest Unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Room a socket path needs below its base: `/sbx_<24 hex>/f<n>.sock`.
const SOCKET_SUFFIX: usize = "/sbx_000000000000000000000000/f999.sock".len();

/// The folder under which each sandbox's forward sockets live: the sandbox folders under
/// `--root` when that is short enough for a Unix socket path, else a short folder in the
/// temporary directory (or `/tmp`) named after the root, so a restarted service finds it.
pub fn socket_base(root: &Path) -> PathBuf {
    let fits = |base: &Path| base.as_os_str().len() + SOCKET_SUFFIX <= MAX_SOCKET_PATH;
    if fits(root) {
        return root.to_owned();
    }
    let hash = janus_core::sha256_hex(root.as_os_str().as_encoded_bytes());
    let name = format!("janus-sbx-{}", &hash[..12]);
    let temp = std::env::temp_dir().join(&name);
    if fits(&temp) {
        temp
    } else {
        Path::new("/tmp").join(name)
    }
}

/// All sandboxes.
#[derive(Debug)]
pub struct Manager {
    config: Config,
    socket_base: PathBuf,
    sandboxes: RwLock<HashMap<String, Arc<Sandbox>>>,
    tombstones: Mutex<VecDeque<String>>,
    /// Serializes capacity decisions so two creates cannot both take the last slot.
    admission: Mutex<()>,
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

impl Sandbox {
    /// The JSON clients get for this sandbox.
    pub async fn describe(&self, config: &Config) -> Value {
        let remaining = self
            .expires_at
            .lock()
            .await
            .saturating_duration_since(Instant::now());
        json!({
            "sandboxId": self.id,
            "sandbox_id": self.id,
            "id": self.id,
            "status": "running",
            "url": format!("{}/sandboxes/{}", config.public_url, self.id),
            "created_at": rfc3339(self.created_at),
            "ttl_seconds": self.ttl.as_secs(),
            "ttl_remaining": remaining.as_secs(),
            "priority": self.priority,
            "preemptable": self.preemptable,
            "expose_ports": self.expose_ports,
            "flavor": self.flavor,
            "isolation": match config.isolation { IsolationMode::Full => "full", IsolationMode::None => "none" },
            "resources": {"memory_mb": self.limits.memory_mb, "pids": self.limits.pids, "cpu": self.limits.cpus, "disk_mb": self.disk_mb},
            "rootfs": self.rootfs.as_ref().map(|p| p.display().to_string()),
            "service": self
                .service
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(crate::service::Service::describe),
        })
    }
}

/// Removes what a previous run of the service left under its `--root` when it died without
/// terminating its sandboxes (their processes died with it: see the holder's lifeline).
pub async fn recover(config: &Config) {
    let Ok(mut entries) = tokio::fs::read_dir(&config.root).await else {
        return;
    };
    let mut stale = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("sbx_") {
            continue;
        }
        if config.isolation == IsolationMode::Full {
            isolation::remove_stale(&name).await;
        }
        if let Err(e) = tokio::fs::remove_dir_all(entry.path()).await {
            tracing::warn!(sandbox = %name, error = %e, "cannot remove a stale sandbox");
        }
        stale += 1;
    }
    let sockets = socket_base(&config.root);
    if sockets != config.root {
        if let Ok(mut entries) = tokio::fs::read_dir(&sockets).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                if entry.file_name().to_string_lossy().starts_with("sbx_") {
                    let _ = tokio::fs::remove_dir_all(entry.path()).await;
                }
            }
        }
    }
    if stale > 0 {
        tracing::warn!(stale, root = %config.root.display(), "removed sandboxes left by an earlier run");
    }
}

/// Creates a folder only its owner can enter, parents included (the socket base is shared
/// with nothing else, but it may sit in a world-writable temporary directory).
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Resolves a path a client names (relative to `/workspace`, or absolute under it) to the
/// path inside the sandbox; `..`, NUL and paths outside `/workspace` are refused.
pub fn sandbox_path(path: &str) -> Result<String, SandboxError> {
    let bad = |why: &str| SandboxError::BadRequest {
        param: "path".into(),
        message: format!("invalid path '{path}': {why}"),
    };
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let relative = match path.strip_prefix("/workspace") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        Some(_) => return Err(bad("outside /workspace")),
        None if path.starts_with('/') => {
            return Err(bad("absolute paths must be under /workspace"))
        }
        None => path,
    };
    let mut parts = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("'..' is not allowed")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("outside /workspace")),
        }
    }
    Ok(if parts.is_empty() {
        "/workspace".to_owned()
    } else {
        format!("/workspace/{}", parts.join("/"))
    })
}

impl Manager {
    /// A manager with no sandboxes.
    pub fn new(config: Config) -> Manager {
        Manager {
            socket_base: socket_base(&config.root),
            config,
            sandboxes: RwLock::default(),
            tombstones: Mutex::default(),
            admission: Mutex::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sandbox with this id: 404 unknown, 409 terminated.
    pub async fn get(&self, id: &str) -> Result<Arc<Sandbox>, SandboxError> {
        if let Some(sandbox) = self.sandboxes.read().await.get(id) {
            return Ok(sandbox.clone());
        }
        if self.tombstones.lock().await.iter().any(|t| t == id) {
            return Err(SandboxError::Terminated(id.to_owned()));
        }
        Err(SandboxError::NotFound(id.to_owned()))
    }

    /// Whether this id was terminated (not expired).
    pub async fn is_terminated(&self, id: &str) -> bool {
        self.tombstones.lock().await.iter().any(|t| t == id)
    }

    /// All live sandboxes.
    pub async fn list(&self) -> Vec<Arc<Sandbox>> {
        let mut list: Vec<_> = self.sandboxes.read().await.values().cloned().collect();
        list.sort_by_key(|s| s.created_at);
        list
    }

    /// Creates a sandbox, preempting a less important preemptable one at capacity.
    pub async fn create(&self, request: CreateRequest) -> Result<Arc<Sandbox>, SandboxError> {
        let _admission = self.admission.lock().await;
        let count = self.sandboxes.read().await.len();
        if count >= self.config.max_sandboxes {
            // Least important first (largest number), oldest first among equals; equal or
            // more important work is never preempted.
            let victim = {
                let map = self.sandboxes.read().await;
                map.values()
                    .filter(|s| s.preemptable && s.priority > request.priority)
                    .max_by_key(|s| (s.priority, std::cmp::Reverse(s.created_at)))
                    .map(|s| s.id.clone())
            };
            match victim {
                Some(id) => {
                    tracing::info!(sandbox = %id, "preempting a low-priority sandbox to make room");
                    self.terminate(&id, true).await?;
                }
                None => return Err(SandboxError::AtCapacity(self.config.max_sandboxes)),
            }
        }
        if self.config.isolation == IsolationMode::None {
            tracing::warn!("creating a sandbox with --isolation none: NOTHING is isolated");
        }
        let id = format!("sbx_{}", janus_core::random_hex(12));
        let dir = self.config.root.join(&id);
        let workspace = dir.join("workspace");
        tokio::fs::create_dir_all(&workspace).await.map_err(|e| {
            SandboxError::Internal(format!("cannot create {}: {e}", workspace.display()))
        })?;
        // `disk_mb`: /workspace is a tmpfs of that size, mounted where the files API and
        // the sandbox's bind mount both see it (decided in decisions.md: cgroup v1 has no
        // disk limit). Without isolation nothing is enforced, as nothing else is.
        let disk_mounted = match (request.disk_mb, self.config.isolation) {
            (Some(mb), IsolationMode::Full) => {
                let options = std::ffi::CString::new(format!("size={mb}m,mode=0755"))
                    .map_err(|e| SandboxError::Internal(e.to_string()))?;
                if let Err(e) = rustix::mount::mount(
                    "janus-workspace",
                    &workspace,
                    "tmpfs",
                    rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
                    options.as_c_str(),
                ) {
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    return Err(SandboxError::Internal(format!(
                        "cannot size /workspace ({mb} MiB): {e}"
                    )));
                }
                true
            }
            (Some(_), IsolationMode::None) => {
                tracing::warn!("disk_mb is not enforced with --isolation none");
                false
            }
            (None, _) => false,
        };
        let isolated = match self.config.isolation {
            IsolationMode::Full => {
                chown(&workspace, self.config.uid)?;
                let setup = isolation::Setup {
                    uid: self.config.uid,
                    limits: request.limits,
                    rlimits: self.config.rlimits,
                    helper_binary: self.config.helper_binary.clone(),
                    rootfs: request.rootfs.clone(),
                };
                match isolation::start(&id, &dir, &workspace, setup).await {
                    Ok(isolated) => Some(isolated),
                    Err(e) => {
                        unmount_workspace(&workspace, disk_mounted);
                        let _ = tokio::fs::remove_dir_all(&dir).await;
                        return Err(SandboxError::Internal(format!(
                            "cannot start the sandbox: {e}"
                        )));
                    }
                }
            }
            IsolationMode::None => {
                tokio::fs::create_dir_all(dir.join("tmp"))
                    .await
                    .map_err(|e| SandboxError::Internal(e.to_string()))?;
                None
            }
        };
        let mut env = request.env;
        let mut forwards = Vec::new();
        let mut forward_error = None;
        // Regression (issue 11): sockets under a long --root failed with "path must be
        // shorter than SUN_LEN"; they go to a short folder then.
        let socket_dir = (self.socket_base != self.config.root && isolated.is_some())
            .then(|| self.socket_base.join(&id));
        if let Some(socket_dir) = &socket_dir {
            if let Err(e) = create_private_dir(socket_dir) {
                forward_error = Some(format!("cannot create {}: {e}", socket_dir.display()));
            }
        }
        for (index, (name, target)) in self.config.forwards.iter().enumerate() {
            if forward_error.is_some() {
                break;
            }
            let port = target.rsplit_once(':').map(|(_, p)| p).unwrap_or("0");
            let key = format!(
                "SANDY_FORWARD_{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            match &isolated {
                Some(isolated) => {
                    let socket = socket_dir
                        .as_ref()
                        .unwrap_or(&dir)
                        .join(format!("f{index}.sock"));
                    match self
                        .start_forward(isolated.holder_pid, port, &socket, target.clone())
                        .await
                    {
                        Ok(forward) => forwards.push(forward),
                        Err(e) => {
                            forward_error = Some(format!("cannot forward {name}: {e}"));
                            break;
                        }
                    }
                    env.push((key, format!("127.0.0.1:{port}")));
                }
                // Without isolation the sandbox shares the host's network.
                None => env.push((key, target.clone())),
            }
        }
        if let Some(message) = forward_error {
            for (mut child, relay) in forwards {
                let _ = child.kill().await;
                relay.abort();
            }
            if let Some(isolated) = isolated {
                isolated.destroy().await;
            }
            unmount_workspace(&workspace, disk_mounted);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            if let Some(socket_dir) = &socket_dir {
                let _ = tokio::fs::remove_dir_all(socket_dir).await;
            }
            return Err(SandboxError::Internal(message));
        }
        let sandbox = Arc::new(Sandbox {
            id: id.clone(),
            created_at: SystemTime::now(),
            expires_at: Mutex::new(Instant::now() + request.ttl),
            ttl: request.ttl,
            priority: request.priority,
            preemptable: request.preemptable,
            env,
            expose_ports: request.expose_ports,
            flavor: request.flavor,
            dir,
            workspace,
            isolated: Mutex::new(isolated),
            busy: RwLock::new(()),
            agent_cancel: Arc::default(),
            forwards: Mutex::new(forwards),
            socket_dir,
            limits: request.limits,
            disk_mb: request.disk_mb,
            disk_mounted,
            rootfs: request.rootfs,
            service: std::sync::Mutex::new(None),
        });
        self.sandboxes
            .write()
            .await
            .insert(id.clone(), sandbox.clone());
        if let Some(argv) = request.command {
            if let Err(e) = self.start_service(&sandbox, argv, 0).await {
                let _ = self.terminate(&id, false).await;
                return Err(e);
            }
        }
        Ok(sandbox)
    }

    /// Starts the sandbox's long-running command (see [`crate::service`]).
    async fn start_service(
        &self,
        sandbox: &Sandbox,
        argv: Vec<String>,
        restarts: u64,
    ) -> Result<(), SandboxError> {
        let line = crate::service::exec_line(&argv);
        let spawned = self.spawn(sandbox, &line, None, &[]).await?;
        let service =
            crate::service::Service::watch(argv, spawned.child, spawned.cgroups, restarts);
        *sandbox.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
        Ok(())
    }

    /// Starts the command again in the same sandbox (same id, same proxy URL, same
    /// workspace) after it exited: what a runner does after a crash. 409 while it runs.
    pub async fn restart_service(&self, sandbox: &Sandbox) -> Result<(), SandboxError> {
        let (argv, restarts) = {
            let service = sandbox.service.lock().unwrap_or_else(|p| p.into_inner());
            match &*service {
                None => {
                    return Err(SandboxError::BadRequest {
                        param: "command".into(),
                        message: format!("sandbox {} was created without a 'command'", sandbox.id),
                    })
                }
                Some(s) if s.status() == crate::service::Status::Running => {
                    return Err(SandboxError::ServiceRunning(sandbox.id.clone()))
                }
                Some(s) => (s.argv().to_vec(), s.restarts() + 1),
            }
        };
        self.start_service(sandbox, argv, restarts).await
    }

    /// The service's kept output lines and, when `follow`, the stream of what comes next.
    pub fn service_logs(
        &self,
        sandbox: &Sandbox,
        follow: bool,
    ) -> Result<
        (
            Vec<crate::service::LogLine>,
            Option<tokio::sync::broadcast::Receiver<crate::service::LogLine>>,
        ),
        SandboxError,
    > {
        let service = sandbox.service.lock().unwrap_or_else(|p| p.into_inner());
        match &*service {
            Some(service) => Ok(service.logs(follow)),
            None => Err(SandboxError::BadRequest {
                param: "command".into(),
                message: format!("sandbox {} was created without a 'command'", sandbox.id),
            }),
        }
    }

    /// Terminates a sandbox: kills every process, removes its namespaces, cgroups and files.
    /// Idempotent for ids already terminated.
    pub async fn terminate(&self, id: &str, preempted: bool) -> Result<(), SandboxError> {
        let removed = self.sandboxes.write().await.remove(id);
        let Some(sandbox) = removed else {
            return if self.is_terminated(id).await {
                Ok(())
            } else {
                Err(SandboxError::NotFound(id.to_owned()))
            };
        };
        self.destroy(&sandbox).await;
        let mut tombstones = self.tombstones.lock().await;
        tombstones.push_back(id.to_owned());
        while tombstones.len() > TOMBSTONES {
            tombstones.pop_front();
        }
        tracing::info!(sandbox = %id, preempted, "sandbox terminated");
        Ok(())
    }

    async fn destroy(&self, sandbox: &Sandbox) {
        sandbox.agent_cancel.notify_waiters();
        for (mut child, relay) in sandbox.forwards.lock().await.drain(..) {
            let _ = child.kill().await;
            relay.abort();
        }
        // Wait for nothing; in-flight execs are killed with the rest.
        if let Some(isolated) = sandbox.isolated.lock().await.take() {
            isolated.destroy().await;
        }
        let _guard = sandbox.busy.write().await;
        // Its processes are gone with the holder; the watcher tasks go with the service.
        drop(
            sandbox
                .service
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        unmount_workspace(&sandbox.workspace, sandbox.disk_mounted);
        if let Some(socket_dir) = &sandbox.socket_dir {
            let _ = tokio::fs::remove_dir_all(socket_dir).await;
        }
        if let Err(e) = tokio::fs::remove_dir_all(&sandbox.dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "could not remove the sandbox directory");
            }
        }
    }

    /// Starts a forward: a helper listening inside the sandbox, relaying to a host socket
    /// that connects to `target`.
    async fn start_forward(
        &self,
        holder_pid: u32,
        port: &str,
        socket: &Path,
        target: String,
    ) -> std::io::Result<(tokio::process::Child, tokio::task::JoinHandle<()>)> {
        let relay = crate::relay::serve_forward(socket, target)?;
        let mut child = tokio::process::Command::new("nsenter")
            .args(["--target", &holder_pid.to_string(), "--net", "--"])
            .arg(&self.config.helper_binary)
            .args(["__forward", port])
            .arg(socket)
            // The lifeline, as the holder's: the child keeps the write end (in `Child`);
            // when this service goes, even by SIGKILL, the helper reads end-of-file and
            // exits instead of outliving it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take();
        let ready = async {
            let mut lines = tokio::io::BufReader::new(stdout?).lines();
            lines.next_line().await.ok().flatten()
        };
        match tokio::time::timeout(Duration::from_secs(5), ready).await {
            Ok(Some(line)) if line.trim() == "ready" => Ok((child, relay)),
            _ => {
                let _ = child.kill().await;
                relay.abort();
                Err(std::io::Error::other("the forward helper did not start"))
            }
        }
    }

    /// A byte stream to `127.0.0.1:port` inside the sandbox (the proxy route): the relay
    /// helper's pipes under full isolation, a plain socket without.
    pub async fn connect_inside(
        &self,
        sandbox: &Sandbox,
        port: u16,
    ) -> Result<crate::relay::Inside, SandboxError> {
        let holder = sandbox.isolated.lock().await.as_ref().map(|i| i.holder_pid);
        match holder {
            None => {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| {
                        SandboxError::BadGateway(format!(
                            "nothing answers on port {port} in the sandbox: {e}"
                        ))
                    })?;
                Ok(crate::relay::Inside::Socket(stream))
            }
            Some(pid) => {
                let mut child = tokio::process::Command::new("nsenter")
                    .args(["--target", &pid.to_string(), "--net", "--"])
                    .arg(&self.config.helper_binary)
                    .args(["__connect", "127.0.0.1", &port.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| {
                        SandboxError::Internal(format!("cannot start the proxy helper: {e}"))
                    })?;
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    return Err(SandboxError::Internal(
                        "the proxy helper has no pipes".into(),
                    ));
                };
                Ok(crate::relay::Inside::Helper {
                    child,
                    io: tokio::io::join(stdout, stdin),
                })
            }
        }
    }

    /// Extends the TTL from now.
    pub async fn refresh(
        &self,
        id: &str,
        ttl: Option<Duration>,
    ) -> Result<Arc<Sandbox>, SandboxError> {
        let sandbox = self.get(id).await?;
        let ttl = ttl.unwrap_or(sandbox.ttl);
        *sandbox.expires_at.lock().await = Instant::now() + ttl;
        Ok(sandbox)
    }

    /// Removes expired sandboxes; their ids then answer 404.
    pub async fn reap_expired(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for sandbox in self.sandboxes.read().await.values() {
            if *sandbox.expires_at.lock().await <= now {
                expired.push(sandbox.id.clone());
            }
        }
        for id in expired {
            let removed = self.sandboxes.write().await.remove(&id);
            if let Some(sandbox) = removed {
                self.destroy(&sandbox).await;
                tracing::info!(sandbox = %id, "sandbox expired and was reaped");
            }
        }
    }

    /// Terminates everything (service shutdown).
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.sandboxes.read().await.keys().cloned().collect();
        for id in ids {
            let _ = self.terminate(&id, false).await;
        }
        if self.socket_base != self.config.root {
            // Empty by now; fails harmlessly if another service with this root uses it.
            let _ = tokio::fs::remove_dir(&self.socket_base).await;
        }
    }

    /// Starts `command` with `/bin/sh -c` in the sandbox, stdout and stderr piped.
    pub async fn spawn(
        &self,
        sandbox: &Sandbox,
        command: &str,
        cwd: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Spawned, SandboxError> {
        let cwd = sandbox_path(cwd.unwrap_or("/workspace"))?;
        let isolated = sandbox.isolated.lock().await;
        let (mut cmd, cgroups) = match &*isolated {
            Some(isolated) => isolated
                .exec_command(command, &cwd)
                .await
                .map_err(|e| SandboxError::Internal(format!("cannot prepare the exec: {e}")))?,
            None => {
                let host_cwd = sandbox
                    .workspace
                    .join(cwd.trim_start_matches("/workspace").trim_start_matches('/'));
                let mut cmd = tokio::process::Command::new("/bin/sh");
                cmd.args(["-c", command]).current_dir(host_cwd);
                cmd.process_group(0);
                (cmd, Vec::new())
            }
        };
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/workspace")
            .env("LANG", "C.UTF-8")
            .env("SANDBOX_ID", &sandbox.id);
        if isolated.is_none() {
            cmd.env("TMPDIR", sandbox.dir.join("tmp"));
        }
        for (key, value) in sandbox.env.iter().chain(env) {
            cmd.env(key, value);
        }
        drop(isolated);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| SandboxError::Internal(format!("cannot run the command: {e}")))?;
        let pgid = child.id();
        Ok(Spawned {
            child,
            cgroups,
            pgid,
        })
    }

    /// Runs `command` with `/bin/sh -c` in the sandbox.
    pub async fn exec(
        &self,
        sandbox: &Sandbox,
        command: &str,
        timeout: Duration,
        cwd: Option<&str>,
        env: &[(String, String)],
    ) -> Result<ExecResult, SandboxError> {
        let _busy = sandbox.busy.read().await;
        let started = Instant::now();
        let Spawned {
            mut child,
            cgroups: exec_cgroups,
            pgid,
        } = self.spawn(sandbox, command, cwd, env).await?;
        let limit = self.config.max_output_bytes;
        let stdout = capture(child.stdout.take(), limit);
        let stderr = capture(child.stderr.take(), limit);
        let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                // Kill the whole tree with SIGKILL, whatever it does with SIGTERM, and reap
                // our own child meanwhile: until it is reaped its zombie stays in /proc, and
                // kill_cgroups waits for every killed pid to vanish (issue 11: that made a
                // timed-out exec answer 3 s late).
                (kill_and_reap(&mut child, &exec_cgroups, pgid).await, true)
            }
        };
        // Background processes may keep the pipes open; take what came within a moment.
        // One deadline for both pipes.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        let stdout = collect(stdout, deadline).await;
        let stderr = collect(stderr, deadline).await;
        let exit_code = status
            .map(|s| {
                use std::os::unix::process::ExitStatusExt;
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
            })
            .unwrap_or(-1);
        let oom_killed = isolation::oom_kills(&exec_cgroups) > 0;
        isolation::release_exec_cgroups(&exec_cgroups).await;
        Ok(ExecResult {
            stdout,
            stderr,
            exit_code,
            exit_code_camel: exit_code,
            duration_ms: started.elapsed().as_millis() as u64,
            timed_out,
            oom_killed,
        })
    }

    /// Runs a workspace operation off the async threads; paths are cleaned first.
    async fn on_workspace<T: Send + 'static>(
        &self,
        sandbox: &Sandbox,
        path: &str,
        op: impl FnOnce(&Path, &str) -> Result<T, workspace::FileError> + Send + 'static,
    ) -> Result<T, SandboxError> {
        let inside = sandbox_path(path)?;
        let root = sandbox.workspace.clone();
        let shown = path.to_owned();
        let outcome = tokio::task::spawn_blocking(move || op(&root, &inside))
            .await
            .map_err(|e| SandboxError::Internal(e.to_string()))?;
        outcome.map_err(|e| match e {
            workspace::FileError::NotFound => SandboxError::FileNotFound(shown),
            workspace::FileError::Invalid(why) => SandboxError::BadRequest {
                param: "path".into(),
                message: format!("invalid path '{shown}': {why}"),
            },
            workspace::FileError::TooLarge => SandboxError::TooLarge(self.config.max_body_bytes),
            workspace::FileError::Io(why) => SandboxError::Internal(why),
        })
    }

    /// Writes a file in the workspace, owned by the sandbox user.
    pub async fn write_file(
        &self,
        sandbox: &Sandbox,
        path: &str,
        bytes: &[u8],
    ) -> Result<u64, SandboxError> {
        let _busy = sandbox.busy.read().await;
        let owner = (self.config.isolation == IsolationMode::Full).then_some(self.config.uid);
        let bytes = bytes.to_vec();
        let size = bytes.len() as u64;
        self.on_workspace(sandbox, path, move |root, inside| {
            workspace::write(root, inside, &bytes, owner)
        })
        .await?;
        Ok(size)
    }

    /// Reads a file of the workspace.
    pub async fn read_file(&self, sandbox: &Sandbox, path: &str) -> Result<Vec<u8>, SandboxError> {
        let _busy = sandbox.busy.read().await;
        let limit = self.config.max_body_bytes as u64;
        self.on_workspace(sandbox, path, move |root, inside| {
            workspace::read(root, inside, limit)
        })
        .await
    }

    /// The bytes of `/workspace/artifacts/<name>` and their MIME type.
    pub async fn artifact(
        &self,
        sandbox: &Sandbox,
        name: &str,
    ) -> Result<(Vec<u8>, &'static str), SandboxError> {
        let bytes = self
            .read_file(sandbox, &format!("artifacts/{name}"))
            .await?;
        Ok((bytes, janus_core::mime_type_for_name(name)))
    }

    /// Lists a workspace directory.
    pub async fn list_files(&self, sandbox: &Sandbox, path: &str) -> Result<Value, SandboxError> {
        let _busy = sandbox.busy.read().await;
        let entries = self
            .on_workspace(sandbox, path, workspace::list)
            .await?
            .into_iter()
            .map(|e| json!({"name": e.name, "type": e.kind, "size": e.size}))
            .collect::<Vec<_>>();
        Ok(json!({"path": sandbox_path(path)?, "entries": entries}))
    }
}

/// Hands a workspace path to the sandbox user (never following a symlink).
/// Detaches the `/workspace` tmpfs (lazily: a process still inside cannot keep it).
fn unmount_workspace(workspace: &Path, mounted: bool) {
    if mounted {
        if let Err(e) = rustix::mount::unmount(workspace, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!(workspace = %workspace.display(), error = %e, "cannot unmount /workspace");
        }
    }
}

fn chown(path: &Path, uid: u32) -> Result<(), SandboxError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .map_err(|e| SandboxError::Internal(format!("chown {}: {e}", path.display())))
}

type Captured = Arc<std::sync::Mutex<(Vec<u8>, u64)>>;

/// Reads a pipe to the end into `out`, keeping at most `limit` bytes and counting the rest.
async fn read_capped(mut pipe: impl tokio::io::AsyncRead + Unpin, limit: usize, out: Captured) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut captured = out.lock().unwrap_or_else(|p| p.into_inner());
                let room = limit.saturating_sub(captured.0.len());
                captured.0.extend_from_slice(&buf[..n.min(room)]);
                captured.1 += (n - n.min(room)) as u64;
            }
        }
    }
}

/// Starts capturing a pipe.
fn capture(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    limit: usize,
) -> (Captured, Option<tokio::task::JoinHandle<()>>) {
    let out: Captured = Arc::default();
    let task = pipe.map(|pipe| tokio::spawn(read_capped(pipe, limit, out.clone())));
    (out, task)
}

/// What was captured; waits until `deadline` for the pipe to close (a background process
/// may hold it open), then takes what arrived.
async fn collect(
    (out, task): (Captured, Option<tokio::task::JoinHandle<()>>),
    deadline: tokio::time::Instant,
) -> String {
    if let Some(mut task) = task {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
    let captured = out.lock().unwrap_or_else(|p| p.into_inner());
    let mut text = String::from_utf8_lossy(&captured.0).into_owned();
    if captured.1 > 0 {
        text.push_str(&format!(
            "\n[output truncated: {} more bytes not shown]",
            captured.1
        ));
    }
    text
}
