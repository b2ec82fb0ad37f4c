//! File ACLs as systemd sets them on a service's credentials.

use anyhow::{ensure, Result};
use std::path::Path;

/// What systemd's `fd_add_uid_acl_permission(fd, uid, ACL_READ)` does to a
/// credential: an access ACL of owner's bits, `user:UID:r--`, group `---`,
/// mask `r--`, other `---`, written as the Linux xattr (setfacl may be
/// missing).
pub fn grant_read_by_acl(path: &Path, uid: u32) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const ANY: u32 = u32::MAX;
    let mut value = 2u32.to_le_bytes().to_vec();
    for (tag, permissions, id) in [
        (0x01u16, 4u16, ANY),
        (0x02, 4, uid),
        (0x04, 0, ANY),
        (0x10, 4, ANY),
        (0x20, 0, ANY),
    ] {
        value.extend(tag.to_le_bytes());
        value.extend(permissions.to_le_bytes());
        value.extend(id.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both strings are NUL-terminated; the value's length is given.
    let done = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    ensure!(
        done == 0,
        "setting the ACL of {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    Ok(())
}
