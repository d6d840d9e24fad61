//! The files API's access to a sandbox's workspace from the host, race-free.
//!
//! The service runs as root and the sandbox may rearrange its workspace at any moment, so
//! checking a path and then opening it would let a sandbox swap a directory for a symlink
//! in between and read or write host files. Instead every path is walked one component at
//! a time with `openat(…, O_NOFOLLOW)` from a descriptor of the workspace: no symlink is
//! ever followed, whatever happens concurrently. Paths reaching here are already clean
//! ([`crate::sandbox_path`]: no `..`, nothing outside `/workspace`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{
    fchown, fstat, mkdirat, openat, renameat, statat, AtFlags, Dir, FileType, Mode, OFlags, Stat,
    CWD,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

/// Why a workspace operation failed.
#[derive(Debug)]
pub enum FileError {
    /// Nothing there.
    NotFound,
    /// The path is unusable: a symlink, a non-directory parent, not a regular file….
    Invalid(String),
    /// Over the size limit.
    TooLarge,
    /// Anything else.
    Io(String),
}

fn errno(e: Errno, what: &str) -> FileError {
    match e {
        Errno::NOENT => FileError::NotFound,
        Errno::LOOP => FileError::Invalid(format!("{what} is a symlink")),
        Errno::NOTDIR => FileError::Invalid(format!("{what} is not a directory")),
        Errno::ISDIR => FileError::Invalid(format!("{what} is a directory")),
        other => FileError::Io(format!("{what}: {other}")),
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The components of a clean `/workspace/…` path.
fn parts(inside: &str) -> Vec<&str> {
    inside
        .trim_start_matches("/workspace")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect()
}

/// Opens directory `dirs` below `workspace`, never following a link; with `create`, makes
/// missing directories (owned by `owner`, when given).
fn open_dir(
    workspace: &Path,
    dirs: &[&str],
    create: bool,
    owner: Option<u32>,
) -> Result<OwnedFd, FileError> {
    let mut fd =
        openat(CWD, workspace, DIR_FLAGS, Mode::empty()).map_err(|e| errno(e, "the workspace"))?;
    for part in dirs {
        let next = match openat(&fd, *part, DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match mkdirat(&fd, *part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno(e, part)),
                }
                let made =
                    openat(&fd, *part, DIR_FLAGS, Mode::empty()).map_err(|e| errno(e, part))?;
                give(&made, owner)?;
                made
            }
            other => other.map_err(|e| errno(e, part))?,
        };
        fd = next;
    }
    Ok(fd)
}

fn give(fd: &OwnedFd, uid: Option<u32>) -> Result<(), FileError> {
    if let Some(uid) = uid {
        let owner = Uid::from_raw(uid);
        let group = Gid::from_raw(uid);
        fchown(fd, Some(owner), Some(group)).map_err(|e| FileError::Io(format!("chown: {e}")))?;
    }
    Ok(())
}

/// Reads a regular file (at most `limit` bytes, else [`FileError::TooLarge`]).
pub fn read(workspace: &Path, inside: &str, limit: u64) -> Result<Vec<u8>, FileError> {
    let parts = parts(inside);
    let Some((name, dirs)) = parts.split_last() else {
        return Err(FileError::Invalid(
            "the workspace itself is not a file".into(),
        ));
    };
    let dir = open_dir(workspace, dirs, false, None)?;
    // O_NONBLOCK: a FIFO planted by the sandbox must not hang the service.
    let fd = openat(
        &dir,
        *name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(e, name))?;
    let stat = fstat(&fd).map_err(|e| errno(e, name))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(FileError::Invalid(format!("{name} is not a regular file")));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > limit {
        return Err(FileError::TooLarge);
    }
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Io(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Writes `bytes` to a file, creating parent directories; everything it creates belongs to
/// `uid` (when given). The file is written under a fresh name and renamed into place, so
/// an existing symlink is never written through.
pub fn write(
    workspace: &Path,
    inside: &str,
    bytes: &[u8],
    uid: Option<u32>,
) -> Result<(), FileError> {
    let parts = parts(inside);
    let Some((name, dirs)) = parts.split_last() else {
        return Err(FileError::Invalid(
            "the path names the workspace itself".into(),
        ));
    };
    let dir = open_dir(workspace, dirs, true, uid)?;
    match statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if is_link(&stat) => {
            return Err(FileError::Invalid(format!("{name} is a symlink")));
        }
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
            return Err(FileError::Invalid(format!("{name} is a directory")));
        }
        _ => {}
    }
    let tmp = format!(".janus-write-{}", janus_core::random_hex(6));
    let fd = openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| errno(e, name))?;
    let result = give(&fd, uid).and_then(|()| {
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)
            .map_err(|e| FileError::Io(e.to_string()))
    });
    let result =
        result.and_then(|()| renameat(&dir, tmp.as_str(), &dir, *name).map_err(|e| errno(e, name)));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    result
}

fn is_link(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::Symlink
}

/// One directory entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// `file`, `directory`, `symlink` or `other`.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// Lists a directory, sorted by name; symlinks are reported, not followed.
pub fn list(workspace: &Path, inside: &str) -> Result<Vec<Entry>, FileError> {
    let dir = open_dir(workspace, &parts(inside), false, None)?;
    let mut entries = Vec::new();
    let reader = Dir::read_from(&dir).map_err(|e| errno(e, inside))?;
    for entry in reader {
        let entry = entry.map_err(|e| errno(e, inside))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let Ok(stat) = statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            _ => "other",
        };
        entries.push(Entry {
            name,
            kind,
            size: u64::try_from(stat.st_size).unwrap_or(0),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{list, read, write, FileError};

    fn workspace() -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("janus-sandbox-ws-{}", janus_core::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_round_trip_and_links_are_never_followed() {
        let ws = workspace();
        write(&ws, "/workspace/a/b/c.txt", b"hello", None).unwrap();
        assert_eq!(read(&ws, "/workspace/a/b/c.txt", 100).unwrap(), b"hello");
        assert!(matches!(
            read(&ws, "/workspace/a/b/c.txt", 3),
            Err(FileError::TooLarge)
        ));
        assert!(matches!(
            read(&ws, "/workspace/none", 3),
            Err(FileError::NotFound)
        ));
        let outside = workspace();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), ws.join("filelink")).unwrap();
        for path in ["/workspace/dirlink/secret", "/workspace/filelink"] {
            assert!(
                matches!(read(&ws, path, 100), Err(FileError::Invalid(_))),
                "{path}"
            );
            assert!(
                matches!(write(&ws, path, b"x", None), Err(FileError::Invalid(_))),
                "{path}"
            );
        }
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
        let names: Vec<(String, &str)> = list(&ws, "/workspace")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("a".to_owned(), "directory"),
                ("dirlink".to_owned(), "symlink"),
                ("filelink".to_owned(), "symlink")
            ]
        );
        std::fs::remove_dir_all(&ws).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
