//! Images of the local cloud: immutable, content-addressed directories.
//!
//! An image id is `ami-` and the start of the SHA-256 of its tags and every file
//! (path, mode, content), so baking the same tree twice gives the same image and a
//! changed tree a new one. Once baked, files and directories are read-only.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest inside every image directory.
pub const MANIFEST: &str = "image.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub tags: BTreeMap<String, String>,
}

/// Bakes `source` into `images/<id>` and returns the id.
pub fn import(
    images: &Path,
    source: &Path,
    tags: &BTreeMap<String, String>,
) -> std::io::Result<String> {
    let files = list_files(source)?;
    let mut hasher = Sha256::new();
    for (key, value) in tags {
        hasher.update(format!("tag {key}={value}\n"));
    }
    for relative in &files {
        let path = source.join(relative);
        let mode = fs::metadata(&path)?.permissions().mode() & 0o111;
        hasher.update(format!("file {} {mode:o}\n", relative.display()));
        hasher.update(fs::read(&path)?);
    }
    let id = format!("ami-{}", &hex::encode(hasher.finalize())[..17]);
    let target = images.join(&id);
    if target.join(MANIFEST).exists() {
        return Ok(id);
    }
    let staging = images.join(format!(".baking-{id}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    for relative in &files {
        let to = staging.join(relative);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(source.join(relative), &to)?;
    }
    fs::create_dir_all(&staging)?;
    let manifest = Manifest {
        id: id.clone(),
        tags: tags.clone(),
    };
    let text = toml::to_string(&manifest).map_err(std::io::Error::other)?;
    fs::write(staging.join(MANIFEST), text)?;
    seal(&staging)?;
    fs::rename(&staging, &target)?;
    Ok(id)
}

/// Every image whose tags include all of `tags`.
pub fn find(images: &Path, tags: &BTreeMap<String, String>) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(images) else {
        return Ok(found);
    };
    for entry in entries {
        let entry = entry?;
        if let Some(manifest) = manifest(&entry.path())
            && tags.iter().all(|(k, v)| manifest.tags.get(k) == Some(v))
        {
            found.push(manifest.id);
        }
    }
    found.sort();
    Ok(found)
}

/// An image's manifest, if `dir` is a baked image.
pub fn manifest(dir: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(dir.join(MANIFEST)).ok()?;
    toml::from_str(&text).ok()
}

fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Makes a baked tree read-only: files keep only their read and execute bits.
fn seal(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            seal(&path)?;
        } else {
            let mode = fs::metadata(&path)?.permissions().mode() & 0o555;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tree_bakes_to_the_same_read_only_image() {
        let root = std::env::temp_dir().join(format!("slipway-image-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (source, images) = (root.join("src"), root.join("images"));
        fs::create_dir_all(source.join("bin")).unwrap();
        fs::create_dir_all(&images).unwrap();
        fs::write(source.join("bin/app"), "v1").unwrap();
        let tags = BTreeMap::from([("slipway:version".to_string(), "v1".to_string())]);
        let first = import(&images, &source, &tags).unwrap();
        assert_eq!(import(&images, &source, &tags).unwrap(), first);
        fs::write(source.join("bin/app"), "v2").unwrap();
        let second = import(&images, &source, &tags).unwrap();
        assert_ne!(first, second);
        assert_eq!(find(&images, &tags).unwrap().len(), 2);
        let mode = fs::metadata(images.join(&first).join("bin/app"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "baked files must not be writable");
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&root)
            .status();
        let _ = fs::remove_dir_all(&root);
    }

    use std::process::Command;
}
