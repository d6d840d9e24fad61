//! A minimal image (an unpacked root for `rootfs`) made from host binaries: each binary
//! and the shared libraries it loads (as `ldd` reports them), plus what every command in a
//! sandbox goes through (`/bin/sh`, `setpriv`). Enough to launch a competitor built on this
//! machine exactly as the platform runs it (`janus up --launch`, tests).

use std::path::Path;

/// What every sandbox command needs inside the root: the shell it runs under and the
/// privilege drop it enters through.
const ALWAYS: [&str; 2] = ["/bin/sh", "/usr/bin/setpriv"];

/// Builds an image at `root` holding `binaries` (absolute host paths, kept at the same
/// paths inside) with their libraries. Files are hard-linked when possible, else copied.
pub fn image_from_binaries(root: &Path, binaries: &[&Path]) -> std::io::Result<()> {
    for binary in ALWAYS.iter().map(Path::new).chain(binaries.iter().copied()) {
        place(root, binary)?;
        let ldd = std::process::Command::new("ldd").arg(binary).output()?;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux….so.2 (0x…)`
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                place(root, Path::new(path))?;
            }
        }
    }
    std::fs::create_dir_all(root.join("etc"))?;
    Ok(())
}

/// `path` at the same place under `root` (and, when it is a symlink, its target too).
fn place(root: &Path, path: &Path) -> std::io::Result<()> {
    let relative = path
        .strip_prefix("/")
        .map_err(|_| std::io::Error::other(format!("{} is not absolute", path.display())))?;
    let target = root.join(relative);
    if target.exists() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let real = std::fs::canonicalize(path)?;
    if std::fs::hard_link(&real, &target).is_err() {
        std::fs::copy(&real, &target)?;
    }
    if real != path {
        place(root, &real)?;
    }
    Ok(())
}
