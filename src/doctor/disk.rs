//! Free space on the filesystem that holds the SQLite store. SQLite needs room for the WAL and for a
//! snapshot's staged rows (about the size of the records table again) before old rows are dropped.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Check;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// Below this, warn: a full snapshot of a large college may not fit.
pub const WARN_BELOW: u64 = GIB;
/// Below this, fail: SQLite will soon answer "database or disk is full" mid-run.
pub const FAIL_BELOW: u64 = 100 * MIB;

/// Bytes available to this (unprivileged) user on the filesystem holding `dir`.
pub fn available(dir: &Path) -> std::io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path; `st` is plain data written by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The verdict for `free` bytes on the filesystem of `dir`.
pub fn verdict(dir: &Path, free: u64) -> Check {
    let detail = format!("{} free on the filesystem of {}", human(free), dir.display());
    if free < FAIL_BELOW {
        Check::fail(
            "disk",
            detail,
            "free space (below 100 MiB SQLite fails mid-run) or move the store with --database-url",
        )
    } else if free < WARN_BELOW {
        Check::warn("disk", detail, "free space: a full snapshot needs room for a second copy of the records")
    } else {
        Check::pass("disk", detail)
    }
}

fn human(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn thresholds() {
        let d = Path::new("/srv");
        assert_eq!(verdict(d, 5 * GIB).status, Status::Pass);
        assert_eq!(verdict(d, GIB - 1).status, Status::Warn);
        assert_eq!(verdict(d, 99 * MIB).status, Status::Fail);
        assert!(verdict(d, 99 * MIB).detail.starts_with("99 MiB free"));
        assert!(available(Path::new("/")).unwrap() > 0);
    }
}
