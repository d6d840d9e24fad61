//! nginx as the fourth path: Debian's nginx configured as issue 17's table says —
//! `proxy_pass` to the mock over a keep-alive upstream, buffering off, one worker, and a
//! buffered JSON access log to a file (the gateway writes a JSON access line per request
//! too, so both sides log).
//!
//! It runs with a master process and one worker (`master_process on`, the shape nginx is
//! deployed in), in the foreground (`daemon off`), with its own prefix under the run's log
//! directory: config, pid file, error log, access log and temp paths all live there, and
//! every path in the config is relative to that prefix. It listens on 127.0.0.1 only, on a
//! port chosen free at run time. CPU and memory figures are the **worker's** — the process
//! that serves every request; the master only forks it and waits (its RSS is reported once,
//! for scale). The master is pinned with `taskset`, and the worker inherits the pinning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::procs::{self, Launch, Proc, ProcSample};

/// Where Debian's package puts the binary.
pub const DEFAULT_BIN: &str = "/usr/sbin/nginx";

/// Idle connections to the mock the worker keeps (`keepalive` in the upstream block): above
/// the harness's highest concurrency of short requests (64 open-loop connections, 100
/// streams), so no request pays a TCP handshake to the mock — as with the gateway's pool,
/// which keeps every idle connection.
pub const UPSTREAM_KEEPALIVE: usize = 256;

/// What the config is built from.
#[derive(Debug, Clone, Copy)]
pub struct NginxSettings {
    /// Where nginx listens (127.0.0.1, a free port).
    pub listen: SocketAddr,
    /// The mock.
    pub upstream: SocketAddr,
    /// `worker_rlimit_nofile`.
    pub nofile: u64,
    /// `worker_connections` (client and upstream connections together).
    pub worker_connections: u64,
}

impl NginxSettings {
    /// For an open-file limit of `nofile`. `worker_connections` is set 16/15 above it: once
    /// fewer than 1/16 of its connections are free, nginx starts closing connections that
    /// wait for a request ("worker_connections are not enough, reusing connections"), which
    /// would refuse new idle streams well before the descriptors run out. So the
    /// descriptors stay the limit, as they are for the gateway (nginx notes in its error log
    /// that worker_connections exceed the open-file limit).
    pub fn new(listen: SocketAddr, upstream: SocketAddr, nofile: u64) -> NginxSettings {
        NginxSettings {
            listen,
            upstream,
            nofile,
            worker_connections: nofile * 16 / 15 + 256,
        }
    }

    /// Concurrent proxied streams that fit in `worker_connections` without nginx reusing
    /// connections: two connections per stream (client side and mock side), with the same
    /// margin as the gateway's. (The open-file limit is checked separately.)
    pub fn stream_capacity(&self) -> u64 {
        (self.worker_connections * 15 / 16).saturating_sub(64) / 2
    }
}

/// The nginx.conf the harness runs, exactly as written to disk and into the report.
pub fn config_text(s: &NginxSettings) -> String {
    format!(
        r#"# janus-perf: nginx as the fourth path (issue 17). Every path is relative to the
# prefix given with -p (the run's own directory); nothing of the system's nginx is used.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid nginx.pid;
error_log error.log warn;

events {{
    worker_connections {conns};
}}

http {{
    # One JSON line per request, buffered (64 KiB, flushed at least every second), like
    # the gateway's JSON access line per request.
    log_format janus escape=json '{{"time":"$time_iso8601","request_id":"$request_id",'
        '"remote_addr":"$remote_addr","method":"$request_method","uri":"$request_uri",'
        '"status":$status,"bytes_out":$bytes_sent,"request_time":$request_time,'
        '"upstream_status":"$upstream_status",'
        '"upstream_response_time":"$upstream_response_time"}}';
    access_log access.log janus buffer=64k flush=1s;

    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    # One client connection carries a whole run, as it does to the gateway (nginx's
    # default closes it after 1,000 requests).
    keepalive_timeout 75s;
    keepalive_requests 100000000;

    upstream mock {{
        server {upstream};
        keepalive {keepalive};
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }}

    server {{
        listen {listen};

        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # Idle streams are held silent for seconds; nginx sends no keep-alives.
            proxy_read_timeout 300s;
        }}
    }}
}}
"#,
        nofile = s.nofile,
        conns = s.worker_connections,
        upstream = s.upstream,
        keepalive = UPSTREAM_KEEPALIVE,
        listen = s.listen,
    )
}

/// `nginx -v` (it prints `nginx version: nginx/1.22.1` on stderr).
pub fn version(bin: &Path) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} -v", bin.display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let text = text.trim();
    Ok(text
        .strip_prefix("nginx version: ")
        .unwrap_or(text)
        .to_owned())
}

/// Makes sure nginx is at `bin`. With `install`, a missing one is installed from Debian's
/// packages (`apt-get`, as root or through `sudo -n`); no service is started: while the
/// package installs, a `policy-rc.d` that refuses every service start is in place (Debian's
/// mechanism, `invoke-rc.d(8)`), unless the system already has one. Without `install`, a
/// missing nginx is an error that says how to install it.
pub fn ensure_installed(bin: &Path, install: bool) -> anyhow::Result<()> {
    if bin.is_file() {
        return Ok(());
    }
    if !install {
        bail!(
            "nginx is missing at {}: run ./scripts/setup-test-deps (it installs Debian's \
             nginx), or `apt-get install --no-install-recommends nginx`, or pass --nginx-bin",
            bin.display()
        );
    }
    if bin != Path::new(DEFAULT_BIN) {
        bail!(
            "nginx is missing at {} (--nginx-bin); only Debian's {DEFAULT_BIN} is installed \
             automatically",
            bin.display()
        );
    }
    eprintln!("janus-perf: nginx missing: apt-get install -y --no-install-recommends nginx");
    const SCRIPT: &str = r#"set -e
guard=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# janus-perf: no service starts while nginx installs\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  guard=1
fi
trap 'if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
"#;
    let mut command = if is_root() {
        Command::new("sh")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "sh"]);
        sudo
    };
    let status = command
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .status()
        .context("running apt-get (as root, or with sudo -n)")?;
    if !status.success() || !bin.is_file() {
        bail!(
            "installing nginx failed ({status}); install it by hand \
             (`apt-get install --no-install-recommends nginx`) or pass --nginx-bin"
        );
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1))
                .map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A running nginx (master and its one worker), stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    master: Proc,
    /// The worker's pid and its start time (`/proc/<pid>/stat` field 22), so that it is
    /// never confused with a later process that reuses the pid.
    worker: Option<(u32, u64)>,
    launch: Launch,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// Writes `config` into `dir` (the prefix) and starts nginx from `bin`, pinned to `cpu`,
    /// with its stderr in `dir`; returns once `GET /health` answers through it.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        config: &str,
        addr: SocketAddr,
        cpu: Option<usize>,
        nofile: u64,
    ) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).with_context(|| format!("writing {}", conf.display()))?;
        let mut prefix = dir.display().to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let launch = Launch {
            name: "nginx",
            program: bin.to_owned(),
            // -e: the error log before the config is read, so the compiled-in
            // /var/log/nginx is never touched.
            args: vec![
                "-p".into(),
                prefix,
                "-c".into(),
                conf.display().to_string(),
                "-e".into(),
                dir.join("error.log").display().to_string(),
            ],
            env: Vec::new(),
            cpu,
            nofile,
            stderr: Some(dir.join("stderr.log")),
        };
        let master = Proc::spawn(&launch, Stdio::null())?;
        let mut nginx = Nginx {
            master,
            worker: None,
            launch,
            dir: dir.to_owned(),
            addr,
        };
        nginx.await_ready().await?;
        Ok(nginx)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The master's pid.
    pub fn master_pid(&self) -> u32 {
        self.master.pid()
    }

    /// The worker's pid (0 if unknown).
    pub fn worker_pid(&self) -> u32 {
        self.worker.map_or(0, |(pid, _)| pid)
    }

    /// What `/proc` says about the master.
    pub fn master_sample(&self) -> anyhow::Result<ProcSample> {
        self.master.sample()
    }

    /// The worker's open-file soft limit.
    pub fn worker_nofile(&self) -> u64 {
        procs::nofile_limits_of(&self.worker_pid().to_string()).0
    }

    /// Fails if the master exited or its worker is no longer the one measured (nginx
    /// replaces a crashed worker).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.master
            .check_alive()
            .map_err(|e| anyhow!("{e:#}{}", self.log_tail()))?;
        let Some((pid, start)) = self.worker else {
            bail!("nginx has no worker");
        };
        if procs::start_time(pid) != Some(start) {
            bail!("the nginx worker ({pid}) is gone{}", self.log_tail());
        }
        Ok(())
    }

    /// Stops this nginx and starts a fresh one from the same config and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop_worker_too();
        self.master.respawn(&self.launch)?;
        self.await_ready().await
    }

    /// Stops master and worker; the access log buffer is flushed as the worker exits.
    pub fn stop(&mut self) {
        self.stop_worker_too();
    }

    /// The access log, for counting its lines.
    pub fn access_log(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    /// SIGTERM to the master (nginx's fast shutdown: it stops the worker and exits), then,
    /// should the worker have outlived it, SIGKILL to the worker by its pid.
    fn stop_worker_too(&mut self) {
        self.master.stop();
        if let Some((pid, start)) = self.worker.take() {
            for _ in 0..40 {
                if procs::start_time(pid) != Some(start) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if procs::start_time(pid) == Some(start) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }

    async fn await_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.master
                .check_alive()
                .map_err(|e| anyhow!("{e:#}{}", self.log_tail()))?;
            if procs::health_ok(self.addr).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nginx did not answer GET /health on {} within 10 s{}",
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The worker answered, so it exists; it is the master's only child.
        let master = self.master.pid();
        for _ in 0..40 {
            let children = procs::children_of(master);
            if let [worker] = children.as_slice() {
                if let Some(start) = procs::start_time(*worker) {
                    self.worker = Some((*worker, start));
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "nginx master {master} does not have exactly one worker: {:?}",
            procs::children_of(master)
        )
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["stderr.log", "error.log"] {
            let path = self.dir.join(name);
            if let Ok(log) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                if !tail.is_empty() {
                    text.push_str(&format!("\n--- {}:\n{tail}", path.display()));
                }
            }
        }
        text
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop_worker_too();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_loopback_only_and_logs_json() {
        let s = NginxSettings::new(
            SocketAddr::from(([127, 0, 0, 1], 4000)),
            SocketAddr::from(([127, 0, 0, 1], 4001)),
            20_000,
        );
        let text = config_text(&s);
        assert!(text.contains("listen 127.0.0.1:4000;"));
        assert!(text.contains("server 127.0.0.1:4001;"));
        assert!(text.contains("escape=json"));
        assert!(text.contains("access_log access.log janus buffer=64k flush=1s;"));
        assert!(text.contains("worker_processes 1;"));
        assert!(text.contains("daemon off;"));
        assert!(text.contains("proxy_buffering off;"));
        assert!(text.contains("proxy_set_header Connection \"\";"));
        assert!(text.contains("worker_connections 21589;"));
        // 10,000 streams fit without nginx reusing connections; the descriptors decide.
        assert!(s.stream_capacity() >= 10_000, "{}", s.stream_capacity());
        // No absolute path: everything is under the prefix.
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            assert!(
                !line
                    .split_whitespace()
                    .any(|word| word.starts_with('/') && word.len() > 1),
                "absolute path in {line:?}"
            );
        }
    }
}
