//! PID 1 of a sandbox: a hidden mode of this binary (`__holder`) that `unshare` starts in
//! fresh mount, PID, network, UTS and IPC namespaces.
//!
//! It builds the sandbox's private root with mount system calls (no shell, no `mount`
//! processes: that is what keeps create-to-ready in milliseconds), brings up loopback — the
//! only network device in its namespace — names the host, enters the new root, says
//! `ready`, and then reaps orphans for as long as it lives. It lives exactly as long as the
//! service holds its stdin open: when the service goes away, even by SIGKILL, the holder
//! sees end-of-file and exits, and the kernel kills every process of its PID namespace.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::mount::{
    mount, mount_bind, mount_bind_recursive, mount_change, mount_remount, MountFlags,
    MountPropagationFlags,
};

/// Host directories the sandbox sees, read-only (symlinks such as `/bin -> usr/bin` are
/// recreated as symlinks).
const HOST_DIRS: [&str; 9] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt",
];
/// Device nodes bound from the host.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn context(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> std::io::Error {
    move |e| std::io::Error::other(format!("{what}: {e}"))
}

fn io_context(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn tmpfs(target: &Path, flags: MountFlags, options: &str) -> std::io::Result<()> {
    let options = CString::new(options).map_err(std::io::Error::other)?;
    mount("janus", target, "tmpfs", flags, options.as_c_str())
        .map_err(context(format!("mount tmpfs on {}", target.display())))
}

/// Mount points at or below `under`, with the flags each must keep when made read-only.
fn mounts_under(under: &Path) -> std::io::Result<Vec<(PathBuf, MountFlags)>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let under = under.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let point = unescape_octal(point);
        if point != under && !point.starts_with(&format!("{under}/")) {
            continue;
        }
        let mut flags = MountFlags::empty();
        for option in options.split(',') {
            match option {
                "nosuid" => flags |= MountFlags::NOSUID,
                "nodev" => flags |= MountFlags::NODEV,
                "noexec" => flags |= MountFlags::NOEXEC,
                _ => {}
            }
        }
        found.push((PathBuf::from(point), flags));
    }
    Ok(found)
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(&[b'\\', a, b, c]) = bytes.get(i..i + 4) {
            if [a, b, c].iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value =
                    (u32::from(a - b'0') << 6) | (u32::from(b - b'0') << 3) | u32::from(c - b'0');
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Binds `source` (with everything mounted below it) at `target`, every mount read-only.
fn bind_read_only(source: &Path, target: &Path) -> std::io::Result<()> {
    mount_bind_recursive(source, target).map_err(context(format!("bind {}", source.display())))?;
    for (point, keep) in mounts_under(target)? {
        mount_remount(&point, MountFlags::BIND | MountFlags::RDONLY | keep, "")
            .map_err(context(format!("read-only {}", point.display())))?;
    }
    Ok(())
}

/// Builds the root at `new`: the system directories of `base` read-only (`/`, the host's;
/// or an unpacked image — a launched competitor's `rootfs`), `workspace` writable at
/// `/workspace`, a size-limited `/tmp` and `/dev/shm`, the sandbox's own `/proc`, a minimal
/// `/dev`; then the root itself is made read-only.
fn build_root(new: &Path, workspace: &Path, tmp_mb: u64, base: &Path) -> std::io::Result<()> {
    // Nothing done here may propagate back to the host.
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(context("make / private"))?;
    tmpfs(
        new,
        MountFlags::NOSUID | MountFlags::NODEV,
        "size=1m,mode=755",
    )?;
    // The host root lends only its system directories; an image lends all of its own
    // top-level entries (an image's `/app` is as much part of it as its `/usr`), except
    // the ones built here.
    let names: Vec<String> = if base == Path::new("/") {
        HOST_DIRS.iter().map(|n| (*n).to_owned()).collect()
    } else {
        std::fs::read_dir(base)
            .map_err(io_context(base.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !["workspace", "tmp", "proc", "dev", "sys"].contains(&n.as_str()))
            .collect()
    };
    for name in &names {
        let host = base.join(name);
        let inside = new.join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&host)?;
                symlink(&target, &inside).map_err(io_context(inside.display()))?;
            }
            Ok(meta) if meta.is_dir() => {
                std::fs::create_dir(&inside).map_err(io_context(inside.display()))?;
                bind_read_only(&host, &inside)?;
            }
            _ => {}
        }
    }
    for dir in ["workspace", "tmp", "proc", "dev"] {
        std::fs::create_dir(new.join(dir)).map_err(io_context(new.join(dir).display()))?;
    }
    mount_bind(workspace, new.join("workspace")).map_err(context("bind /workspace"))?;
    let tmp_options = format!("size={tmp_mb}m,mode=1777");
    tmpfs(
        &new.join("tmp"),
        MountFlags::NOSUID | MountFlags::NODEV,
        &tmp_options,
    )?;
    mount(
        "proc",
        new.join("proc"),
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(context("mount /proc"))?;
    let dev = new.join("dev");
    tmpfs(
        &dev,
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "size=64k,mode=755",
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            let inside = dev.join(name);
            std::fs::File::create(&inside).map_err(io_context(inside.display()))?;
            mount_bind(&host, &inside).map_err(context(format!("bind {}", host.display())))?;
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name)).map_err(io_context(name))?;
    }
    std::fs::create_dir(dev.join("shm"))?;
    tmpfs(
        &dev.join("shm"),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        &tmp_options,
    )?;
    mount_remount(
        new,
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        "",
    )
    .map_err(context("read-only root"))?;
    Ok(())
}

/// Sets `lo` up over rtnetlink (ifindex 1 in every new network namespace): an
/// `RTM_NEWLINK` request with `IFF_UP`, then the kernel's acknowledgement.
fn loopback_up() -> std::io::Result<()> {
    use rustix::net::{recv, send, socket, AddressFamily, RecvFlags, SendFlags, SocketType};
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    const IFF_UP: u32 = 1;
    let fd =
        socket(AddressFamily::NETLINK, SocketType::RAW, None).map_err(context("netlink socket"))?;
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()); // nlmsg_flags
    message.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    message.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    message.extend_from_slice(&[0u8, 0u8]); // ifi_family AF_UNSPEC, padding
    message.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    message.extend_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    send(&fd, &message, SendFlags::empty()).map_err(context("netlink send"))?;
    let mut answer = [0u8; 256];
    let (n, _) = recv(&fd, &mut answer[..], RecvFlags::empty()).map_err(context("netlink recv"))?;
    // nlmsghdr (16 bytes), then for NLMSG_ERROR an i32 errno, 0 meaning success.
    let kind = answer.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let errno = answer
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (n >= 20, kind, errno) {
        (true, Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (true, Some(NLMSG_ERROR), Some(code)) => Err(std::io::Error::from_raw_os_error(-code)),
        _ => Err(std::io::Error::other("unexpected netlink answer")),
    }
}

/// `__pause NAME`: sleeps until the sandbox ends (the holder's permanent child; `NAME`, the
/// sandbox's hostname, is only there to tell in `ps` whose it is).
pub fn pause_main() -> std::io::Result<()> {
    // Named for `ps` inside the sandbox (the executable is `/proc/self/exe`).
    let _ = rustix::thread::set_name(c"janus-pause");
    loop {
        std::thread::park();
    }
}

/// The holder: `__holder NEW_ROOT WORKSPACE HOSTNAME TMP_MB BASE` (`BASE`: `/`, or the
/// image whose system directories form the root). Never returns on success.
pub fn holder_main(
    new: &Path,
    workspace: &Path,
    hostname: &str,
    tmp_mb: &str,
    base: &Path,
) -> std::io::Result<()> {
    let tmp_mb: u64 = tmp_mb
        .parse()
        .map_err(|_| std::io::Error::other("bad /tmp size"))?;
    build_root(new, workspace, tmp_mb, base)?;
    loopback_up().map_err(io_context("bring up loopback"))?;
    rustix::system::sethostname(hostname.as_bytes()).map_err(context("sethostname"))?;
    std::os::unix::fs::chroot(new).map_err(io_context("chroot"))?;
    std::env::set_current_dir("/workspace")?;
    {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(b"ready\n")?;
        stdout.flush()?;
    }
    // The lifeline: the service holds our stdin; end-of-file means it is gone.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    // Orphans inside the sandbox are re-parented to PID 1, which must reap them at once
    // (a killed tree must vanish from `ps`). A child that never exits keeps `wait` blocking
    // instead of failing with ECHILD, so no polling is needed.
    let _pause = std::process::Command::new("/proc/self/exe")
        .arg("__pause")
        .arg(hostname)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .spawn();
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_octal;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal("/end\\"), "/end\\");
        assert_eq!(unescape_octal("/x\\134y"), "/x\\y");
    }
}
