//! The data directory, resolved once at start-up.
//!
//! Every path the coordinator hands on (to the local cloud process, into an
//! image, to an agent running in another working directory) is derived from it,
//! so it must be absolute and free of `..` and symlinks before anything joins
//! onto it: a relative `./.slipway` reached the agents as
//! `./.slipway/cloud/images/...`, which they resolved from their own directory.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data dir {path}: {source}: pick a writable --data-dir")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot resolve data dir {path}: {source}")]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {0} is not a directory: pick another --data-dir")]
    NotADirectory(PathBuf),
}

/// Creates `dir` if needed (owner-only), and returns it absolute, with `..`
/// and symlinks resolved. For the coordinator itself.
pub fn create(dir: &Path) -> Result<PathBuf, DataDirError> {
    std::fs::create_dir_all(dir).map_err(|source| DataDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let resolved = existing(dir)?;
    std::fs::set_permissions(&resolved, std::fs::Permissions::from_mode(0o700)).map_err(
        |source| DataDirError::Create {
            path: resolved.clone(),
            source,
        },
    )?;
    Ok(resolved)
}

/// Resolves `dir` without creating it, for commands that only read what a
/// coordinator left there (`down`, `ca issue`): absolute and canonical if it
/// exists, else absolute as given (the command then says nothing is there).
pub fn resolve(dir: &Path) -> Result<PathBuf, DataDirError> {
    if dir.exists() {
        return existing(dir);
    }
    std::path::absolute(dir).map_err(|source| DataDirError::Resolve {
        path: dir.to_path_buf(),
        source,
    })
}

fn existing(dir: &Path) -> Result<PathBuf, DataDirError> {
    let resolved = dir.canonicalize().map_err(|source| DataDirError::Resolve {
        path: dir.to_path_buf(),
        source,
    })?;
    if !resolved.is_dir() {
        return Err(DataDirError::NotADirectory(resolved));
    }
    Ok(resolved)
}

/// The file a serving coordinator keeps its process id in, so that `down` can
/// stop it along with the local cloud.
const PID_FILE: &str = "coordinator.pid";

/// Records that this process serves `dir`; `down` reads it.
pub fn write_pid(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id()))
}

/// Forgets this process, if it is still the one recorded (a later coordinator
/// on the same directory keeps its own entry).
pub fn remove_pid(dir: &Path) {
    if serving_pid(dir) == Some(std::process::id()) {
        let _ = std::fs::remove_file(dir.join(PID_FILE));
    }
}

/// The file that says where operators reach the coordinator serving `dir`
/// (`https://host:port`): what `ca issue` writes into a profile by default.
/// Written on every start, kept after a stop (the port is the same next time).
const ADDRESS_FILE: &str = "coordinator.address";

pub fn write_address(dir: &Path, address: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(ADDRESS_FILE), format!("{address}\n"))
}

/// The address the coordinator of `dir` last served on, if it ever started.
pub fn address(dir: &Path) -> Option<String> {
    read_address(dir, ADDRESS_FILE)
}

fn read_address(dir: &Path, file: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    Some(text.trim().to_string()).filter(|a| !a.is_empty())
}

/// Where the dev coordinator last served its dashboard: a wall screen's URL
/// stays good across restarts.
const DASHBOARD_FILE: &str = "dashboard.address";

pub fn write_dashboard_address(dir: &Path, address: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(DASHBOARD_FILE), format!("{address}\n"))
}

pub fn dashboard_address(dir: &Path) -> Option<String> {
    read_address(dir, DASHBOARD_FILE)
}

/// The coordinator process that serves `dir`, if one runs: the recorded pid,
/// checked to still be a `slipway-coordinator` (not a reused pid).
pub fn serving_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program = Path::new(std::ffi::OsStr::from_bytes(args.first()?));
    (program.file_name()? == "slipway-coordinator").then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("slipway-data-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    #[test]
    fn a_path_with_dot_dot_and_a_symlink_resolves_to_the_real_directory() {
        let root = scratch("symlink");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let given = root.join("elsewhere/../link/data");
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        let resolved = create(&given).unwrap();
        assert_eq!(resolved, root.join("real/data"));
        assert!(resolved.is_dir());
        let mode = std::fs::metadata(&resolved).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data dir is owner-only");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn resolving_a_missing_directory_creates_nothing_and_makes_it_absolute() {
        let root = scratch("missing");
        let given = root.join("nothing/here");
        let resolved = resolve(&given).unwrap();
        assert!(resolved.is_absolute());
        assert!(!given.exists(), "resolve must not create the directory");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_file_in_place_of_the_data_dir_is_refused_naming_it() {
        let root = scratch("file");
        std::fs::write(root.join("taken"), "x").unwrap();
        let err = create(&root.join("taken")).unwrap_err().to_string();
        assert!(err.contains("taken"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
