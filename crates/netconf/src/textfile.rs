//! Reading a small text file that someone else writes (a binding, nfdhcpd's status file,
//! a tool's settings) without ever blocking on it or reading without bound, and, for files
//! that are never links, without following a link planted in its place: what every node
//! tool needs from such a file, in one place.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// The text of the regular file at `path`, at most `max` bytes of UTF-8. Opened with
/// `O_NONBLOCK|O_NOFOLLOW`: a FIFO opens at once and is then refused, a symbolic link is
/// refused unopened. Refusals are `InvalidData` with a short reason ("a symbolic link:
/// refused", "not a regular file: refused", "larger than … KiB: refused", "not UTF-8
/// text"); absence keeps its `NotFound` kind.
pub fn read(path: &Path, max: u64) -> std::io::Result<String> {
    read_opened(path, max, Links::Refuse)
}

/// As [`read`], but a symbolic link at `path` is followed (for settings files, which
/// configuration management often installs as links): the file it ends at must still be
/// a regular file of at most `max` bytes of UTF-8, and a FIFO or device there is refused
/// without waiting. A dangling link is `NotFound`; a loop of links is the system's error.
pub fn read_following(path: &Path, max: u64) -> std::io::Result<String> {
    read_opened(path, max, Links::Follow)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Links {
    Refuse,
    Follow,
}

fn read_opened(path: &Path, max: u64, links: Links) -> std::io::Result<String> {
    // O_NONBLOCK: opening a FIFO without a writer returns at once (the fstat below then
    // refuses it); on a regular file the flag changes nothing.
    let mut flags = OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= OFlag::O_NOFOLLOW;
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| {
            if links == Links::Refuse && e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
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

    #[test]
    fn following_reads_through_a_link_and_refuses_what_it_ends_at_if_not_regular() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "a = 1\n").unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        // A link to a link is followed too.
        let ll = d.path().join("ll");
        std::os::unix::fs::symlink(&l, &ll).unwrap();
        assert_eq!(read_following(&f, 1024).unwrap(), "a = 1\n");
        assert_eq!(read_following(&l, 1024).unwrap(), "a = 1\n");
        assert_eq!(read_following(&ll, 1024).unwrap(), "a = 1\n");
        let ferr = |p: &Path, max: u64| read_following(p, max).unwrap_err().to_string();
        assert_eq!(ferr(&l, 5), "larger than 0 KiB: refused");
        // A FIFO without a writer, directly or behind a link: refused, not waited on.
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let to_fifo = d.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        assert_eq!(ferr(&fifo, 1024), "not a regular file: refused");
        assert_eq!(ferr(&to_fifo, 1024), "not a regular file: refused");
        // A directory and a device behind a link.
        let to_dir = d.path().join("to-dir");
        std::os::unix::fs::symlink(d.path(), &to_dir).unwrap();
        assert_eq!(ferr(&to_dir, 1024), "not a regular file: refused");
        assert_eq!(
            ferr(Path::new("/dev/null"), 1024),
            "not a regular file: refused"
        );
        // Too large, behind a link (a sparse 3 KiB file).
        let big = d.path().join("big");
        fs::File::create(&big).unwrap().set_len(3 << 10).unwrap();
        let to_big = d.path().join("to-big");
        std::os::unix::fs::symlink(&big, &to_big).unwrap();
        assert_eq!(ferr(&to_big, 1 << 10), "larger than 1 KiB: refused");
        fs::write(&f, [b'a', 0xff, b'\n']).unwrap();
        assert_eq!(ferr(&l, 1024), "not UTF-8 text");
        // Dangling: absent, as for a missing file; a loop: the system's error.
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("gone"), &dangling).unwrap();
        assert_eq!(
            read_following(&dangling, 1024).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert_eq!(
            read_following(&a, 1024).unwrap_err().raw_os_error(),
            Some(nix::errno::Errno::ELOOP as i32)
        );
        // The refusing reader still refuses the same links.
        assert_eq!(err(&l, 1024), "a symbolic link: refused");
        assert_eq!(err(&to_fifo, 1024), "a symbolic link: refused");
    }
}
