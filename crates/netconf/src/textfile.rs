//! Reading a small text file that someone else writes (a binding, nfdhcpd's status file)
//! without ever blocking on it, following a link planted in its place, or reading without
//! bound: what every node tool needs from such a file, in one place.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The text of the regular file at `path`, at most `max` bytes of UTF-8. Opened with
/// `O_NONBLOCK|O_NOFOLLOW`: a FIFO opens at once and is then refused, a symbolic link is
/// refused unopened. Refusals are `InvalidData` with a short reason ("a symbolic link:
/// refused", "not a regular file: refused", "larger than … KiB: refused", "not UTF-8
/// text"); absence keeps its `NotFound` kind.
pub fn read(path: &Path, max: u64) -> std::io::Result<String> {
    use nix::fcntl::OFlag;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                refused("a symbolic link: refused".to_owned())
            } else {
                e
            }
        })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(refused("not a regular file: refused".to_owned()));
    }
    let too_large = || refused(format!("larger than {} KiB: refused", max / 1024));
    if meta.len() > max {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The limit again while reading: the file may grow after the fstat.
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    String::from_utf8(buf).map_err(|_| refused("not UTF-8 text".to_owned()))
}

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path, max: u64) -> String {
        read(path, max).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_regular_file_and_refuses_everything_else() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "a\n").unwrap();
        assert_eq!(read(&f, 2).unwrap(), "a\n");
        assert_eq!(err(&f, 1), "larger than 0 KiB: refused");
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(err(&l, 1024), "a symbolic link: refused");
        assert_eq!(err(d.path(), 1024), "not a regular file: refused");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(err(&fifo, 1024), "not a regular file: refused");
        fs::write(&f, [0xff, 0xfe]).unwrap();
        assert_eq!(err(&f, 1024), "not UTF-8 text");
        let gone = d.path().join("gone");
        assert_eq!(
            read(&gone, 1024).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
