//! Child processes (the gateway, the mock) pinned with `taskset`, and what `/proc` says about
//! them: CPU time, resident memory, threads, plus the machine itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;

/// The shell prologue every child runs: raise the open-file limit (to the hard limit if the
/// wanted one is refused), then become the program.
const PROLOGUE: &str =
    r#"ulimit -n "$JANUS_PERF_NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@""#;

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    name: &'static str,
    /// `None` only in the middle of [`Proc::respawn`].
    child: Option<Child>,
}

/// How to start a child.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Short name for logs.
    pub name: &'static str,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Core to pin to with `taskset -c`, if any.
    pub cpu: Option<usize>,
    /// Open-file limit to ask for.
    pub nofile: u64,
    /// Where its stderr goes (inherited when `None`); appended to, so a restarted process
    /// adds to the same log.
    pub stderr: Option<PathBuf>,
}

impl Proc {
    /// Starts the child through `sh` (for `ulimit`), `setpriv` (a parent-death signal) and
    /// `taskset` (for pinning). `exec` keeps the pid, so `/proc/<pid>` is the program itself.
    pub fn spawn(launch: &Launch, stdout: Stdio) -> anyhow::Result<Proc> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(PROLOGUE)
            .arg("sh")
            .env("JANUS_PERF_NOFILE", launch.nofile.to_string());
        // Should this process die without stopping its children (SIGKILL, a signal to it
        // alone), each child gets SIGTERM from the kernel (nginx's master then stops its
        // worker): no process of a run outlives it.
        if has_pdeathsig() {
            command.args(["setpriv", "--pdeathsig", "TERM", "--"]);
        }
        if let Some(cpu) = launch.cpu {
            command.arg("taskset").arg("-c").arg(cpu.to_string());
        }
        command.arg(&launch.program).args(&launch.args);
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null()).stdout(stdout);
        if let Some(path) = &launch.stderr {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            command.stderr(file);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.program.display()))?;
        Ok(Proc {
            name: launch.name,
            child: Some(child),
        })
    }

    /// Starts the mock (`janus-perf mock --listen 127.0.0.1:0 --announce`) and reads the
    /// address it announces on stdout.
    pub fn spawn_mock(launch: &Launch) -> anyhow::Result<(Proc, SocketAddr)> {
        let mut proc = Proc::spawn(launch, Stdio::piped())?;
        let stdout = proc
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .ok_or_else(|| anyhow!("mock has no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the mock's address")?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or_else(|| anyhow!("mock did not announce its address (got {line:?})"))?
            .parse()
            .context("parsing the mock's address")?;
        Ok((proc, addr))
    }

    /// Process id (the program itself, after `exec`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops this process and starts it again from `launch`, keeping the handle.
    pub fn respawn(&mut self, launch: &Launch) -> anyhow::Result<()> {
        self.stop();
        let mut fresh = Proc::spawn(launch, Stdio::null())?;
        self.child = fresh.child.take();
        Ok(())
    }

    /// SIGTERM first, so the gateway shuts down as it would in production (and a profiler
    /// wrapped around it writes its output); SIGKILL if it lingers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Some(status) = child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }

    /// What `/proc` says about it now.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        ProcSample::of(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time, memory and threads of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// Nanoseconds on a CPU, summed over the live threads (`/proc/<pid>/task/*/schedstat`):
    /// precise where clock ticks are 10 ms coarse. Threads that already exited are not
    /// counted (the gateway's, the hop's and the mock's threads live for the whole run).
    pub cpu_ns: u64,
    /// utime + stime, in clock ticks (all threads, exited ones included).
    pub cpu_ticks: u64,
    /// utime alone (user space), in clock ticks.
    pub user_ticks: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn of(pid: u32) -> anyhow::Result<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
        let field = |i: usize| -> anyhow::Result<u64> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| anyhow!("/proc/{pid}/stat has no field {}", i + 3))
        };
        let user_ticks = field(11)?;
        let cpu_ticks = user_ticks + field(12)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let value = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let mut cpu_ns = 0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let path = task.path().join("schedstat");
                cpu_ns += std::fs::read_to_string(path)
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
                    .unwrap_or(0u64);
            }
        }
        Ok(ProcSample {
            cpu_ns,
            cpu_ticks,
            user_ticks,
            rss_kib: value("VmRSS:"),
            threads: value("Threads:"),
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Pins every thread of this process to `cpu` (threads started later inherit it).
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -c {cpu} failed: {status}");
    }
    Ok(())
}

/// Raises this process's open-file limit with `prlimit` (util-linux); returns the soft
/// limit in force afterwards.
pub fn raise_nofile(wanted: u64) -> u64 {
    let pid = std::process::id().to_string();
    let limit = format!("--nofile={wanted}:{wanted}");
    let ok = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // Not root: the hard limit is as far as we may go.
        let hard = nofile_limits().1;
        let limit = format!("--nofile={hard}:{hard}");
        let _ = Command::new("prlimit")
            .args(["--pid", &pid, &limit])
            .status();
    }
    nofile_limits().0
}

/// (soft, hard) open-file limits of this process.
pub fn nofile_limits() -> (u64, u64) {
    nofile_limits_of("self")
}

/// (soft, hard) open-file limits of process `pid` (`"self"` for this one).
pub fn nofile_limits_of(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            let mut numbers = l.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
            (
                numbers.next().unwrap_or(1024),
                numbers.next().unwrap_or(1024),
            )
        })
        .unwrap_or((1024, 1024))
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Distribution (`PRETTY_NAME` of `/etc/os-release`).
    pub os: String,
    /// `rustc --version` of the toolchain on PATH.
    pub rustc: String,
}

impl Machine {
    /// Reads `/proc` and `/etc/os-release`.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024;
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown".into());
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu_model,
            cpus,
            memory_mib,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            os,
            rustc,
        }
    }
}

/// `/proc/loadavg` (1, 5, 15 minutes).
pub fn loadavg() -> [f64; 3] {
    let text = read_trimmed("/proc/loadavg");
    let mut values = text.split_whitespace().filter_map(|v| v.parse().ok());
    [
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
    ]
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): index 0 is the state (field 3), 1 the parent pid, 19 the start time.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Start time of process `pid` (clock ticks since boot), `None` when there is no such
/// process (or it is a zombie): with the pid, it names one process for good.
pub fn start_time(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    if fields.first().is_some_and(|state| state == "Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Pids whose parent is `parent`, from `/proc/*/stat`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = parent.to_string();
    let mut children: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| f.get(1).is_some_and(|ppid| *ppid == parent))
        })
        .collect();
    children.sort_unstable();
    children
}

/// True when `setpriv --pdeathsig` (util-linux) works here; asked once.
fn has_pdeathsig() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// True when `taskset` can be run.
pub fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free port on 127.0.0.1 (bound and released; the gateway binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits for `GET /health` on `addr` to answer 200.
pub async fn wait_healthy(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if health_ok(addr).await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{addr} did not answer GET /health within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `GET /health` on `addr`: true when it answers 200.
pub async fn health_ok(addr: SocketAddr) -> bool {
    use http_body_util::{BodyExt, Empty};
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake::<
        _,
        Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(tcp))
    .await
    else {
        return false;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let Ok(request) = http::Request::get("/health")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new())
    else {
        return false;
    };
    match sender.send_request(request).await {
        Ok(response) => {
            let ok = response.status() == http::StatusCode::OK;
            let _ = response.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}
