//! A minimal image (an unpacked root for `rootfs`) made from host binaries: each binary
//! and the shared libraries it loads (as `ldd` reports them), plus what every command in a
//! sandbox goes through (`/bin/sh`, `setpriv`). Enough to launch a competitor built on this
//! machine exactly as the platform runs it (`janus up --launch`, tests).

use std::path::Path;

/// What every sandbox command needs inside the root: the shell it runs under and the
/// privilege drop it enters through.
const ALWAYS: [&str; 2] = ["/bin/sh", "/usr/bin/setpriv"];

/// Where a sandbox mounts its own file systems over the image: a binary kept there would
/// be hidden.
const MOUNTED_OVER: [&str; 5] = ["/tmp", "/workspace", "/proc", "/dev", "/sys"];

/// Builds an image at `root` holding `binaries` (absolute host paths, kept at the same
/// paths inside) with their libraries. Files are hard-linked when possible, else copied.
/// A binary under a path the sandbox mounts over (`/tmp`, `/workspace`, …) is refused:
/// place it with [`image_with_binaries_at`] instead.
pub fn image_from_binaries(root: &Path, binaries: &[&Path]) -> std::io::Result<()> {
    let placed: Vec<(&Path, &Path)> = binaries.iter().map(|b| (*b, *b)).collect();
    image_with_binaries_at(root, &placed)
}

/// [`image_from_binaries`] with each binary at a path of its own inside the image:
/// `(host path, path inside)`, e.g. a build under `/tmp` placed at `/app/competitor`.
pub fn image_with_binaries_at(root: &Path, binaries: &[(&Path, &Path)]) -> std::io::Result<()> {
    for (_, inside) in binaries {
        if let Some(mount) = MOUNTED_OVER.iter().find(|m| inside.starts_with(m)) {
            return Err(std::io::Error::other(format!(
                "{} would be hidden in the sandbox ({mount} is mounted over the image): place it elsewhere",
                inside.display()
            )));
        }
    }
    for binary in ALWAYS.iter().map(Path::new) {
        place(root, binary)?;
        place_libraries(root, binary)?;
    }
    for (host, inside) in binaries {
        place_at(root, host, inside)?;
        place_libraries(root, host)?;
    }
    std::fs::create_dir_all(root.join("etc"))?;
    Ok(())
}

/// The shared libraries `binary` loads, at their own paths.
fn place_libraries(root: &Path, binary: &Path) -> std::io::Result<()> {
    let ldd = std::process::Command::new("ldd").arg(binary).output()?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux….so.2 (0x…)`
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            place(root, Path::new(path))?;
        }
    }
    Ok(())
}

/// The file at `host` as `inside` under `root` (hard-linked when possible, else copied).
fn place_at(root: &Path, host: &Path, inside: &Path) -> std::io::Result<()> {
    let relative = inside
        .strip_prefix("/")
        .map_err(|_| std::io::Error::other(format!("{} is not absolute", inside.display())))?;
    let target = root.join(relative);
    if target.exists() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let real = std::fs::canonicalize(host)?;
    if std::fs::hard_link(&real, &target).is_err() {
        std::fs::copy(&real, &target)?;
    }
    Ok(())
}

/// `path` at the same place under `root` (and, when it is a symlink, its target too).
fn place(root: &Path, path: &Path) -> std::io::Result<()> {
    let real = std::fs::canonicalize(path)?;
    place_at(root, path, path)?;
    if real != path {
        place(root, &real)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    #[test]
    fn a_binary_placed_where_the_sandbox_mounts_over_is_refused_by_name() {
        let root = std::env::temp_dir().join(format!("janus-image-test-{}", std::process::id()));
        for inside in ["/tmp/app", "/workspace/bin/app"] {
            let error =
                super::image_with_binaries_at(&root, &[(Path::new("/bin/sh"), Path::new(inside))])
                    .unwrap_err();
            assert!(error.to_string().contains(inside), "{error}");
        }
        super::image_with_binaries_at(&root, &[(Path::new("/bin/sh"), Path::new("/app/sh"))])
            .unwrap();
        assert!(root.join("app/sh").is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
