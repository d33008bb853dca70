//! Crash-safe file replacement: a reader sees the old file or the new one, never a mix.

use crate::Error;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`: write a temp file in the same directory, fsync it, rename it over
/// the target, fsync the directory. A kill at any point leaves the old or the new content.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().ok_or(Error::InvalidState("a file path needs a parent directory"))?;
    let name = path.file_name().ok_or(Error::InvalidState("a file path needs a name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io("creating a temporary file"))?;
        restrict(&f)?;
        f.write_all(bytes).map_err(Error::io("writing a temporary file"))?;
        f.sync_all().map_err(Error::io("syncing a temporary file"))
    })();
    if let Err(e) = written {
        // A full disk (or any failed write) leaves the old file as it was, and no half-written
        // temporary file taking the space a retry needs.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(Error::io("renaming a file into place"))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn restrict(f: &File) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(Error::io("restricting a file"))
}

#[cfg(not(unix))]
fn restrict(_: &File) -> Result<(), Error> {
    Ok(())
}

/// Syncs a directory, so renames and removals in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("syncing a directory"))
}

/// Overwrites a file's bytes with zeros, syncs, then removes it. Best effort against recovery on
/// simple file systems; the real protection is that the content is sealed.
pub fn shred(path: &Path) -> Result<(), Error> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mut f = OpenOptions::new().write(true).open(path).map_err(Error::io("opening a file to shred"))?;
            let len = usize::try_from(meta.len()).unwrap_or(usize::MAX).min(64 << 20);
            f.write_all(&vec![0u8; len]).map_err(Error::io("overwriting a file"))?;
            f.sync_all().map_err(Error::io("syncing a shredded file"))?;
            fs::remove_file(path).map_err(Error::io("removing a file"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io { what: "reading a file's size", source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("cfg");
        write(&p, b"one").expect("first write");
        write(&p, b"two").expect("second write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn shred_removes_and_tolerates_absence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("x");
        write(&p, b"secret").expect("write");
        shred(&p).expect("shred");
        assert!(!p.exists());
        shred(&p).expect("absent is fine");
    }
}
