//! Reading a small text file that someone else writes (a binding, nfdhcpd's status file,
//! a tool's settings) without ever blocking on it or reading without bound, and, for files
//! that are never links, without following a link planted in its place: what every node
//! tool needs from such a file, in one place. And the other half: replacing a file
//! atomically ([`write_atomic`]) without following a link planted under its temporary name.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;

/// The text of the regular file at `path`, at most `max` bytes of UTF-8. Opened with
/// `O_NONBLOCK|O_NOFOLLOW`: a FIFO opens at once and is then refused, a symbolic link is
/// refused unopened. Refusals are `InvalidData` with a short reason ("a symbolic link:
/// refused", "not a regular file: refused", "larger than … KiB: refused", "not UTF-8
/// text"); absence keeps its `NotFound` kind.
pub fn read(path: &Path, max: u64) -> std::io::Result<String> {
    read_opened(path, max, Links::Refuse).map(|(text, _)| text)
}

/// As [`read`], but a symbolic link at `path` is followed (for settings files, which
/// configuration management often installs as links): the file it ends at must still be
/// a regular file of at most `max` bytes of UTF-8, and a FIFO or device there is refused
/// without waiting. A dangling link is `NotFound`; a loop of links is the system's error.
pub fn read_following(path: &Path, max: u64) -> std::io::Result<String> {
    read_opened(path, max, Links::Follow).map(|(text, _)| text)
}

/// As [`read_following`], with the metadata of the file read (of the link's target),
/// taken from the open file: a check of its owner or mode then concerns the very bytes
/// returned, not whatever the path names a moment later.
pub fn read_following_with_metadata(
    path: &Path,
    max: u64,
) -> std::io::Result<(String, fs::Metadata)> {
    read_opened(path, max, Links::Follow)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Links {
    Refuse,
    Follow,
}

fn read_opened(path: &Path, max: u64, links: Links) -> std::io::Result<(String, fs::Metadata)> {
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
    let text = String::from_utf8(buf).map_err(|_| refused("not UTF-8 text".to_owned()))?;
    Ok((text, meta))
}

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// What a [`write_atomic`] survives. Readers never see half a file whichever is chosen
/// (the file appears by a rename); this is only about a crash of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: after a crash the name may hold the old file, the new one, or a torn or
    /// empty one. For files rebuilt or checked when read (caches, state of kernel objects
    /// that a reboot loses anyway), where an fsync would only slow the hot path.
    None,
    /// The file is fsynced before the rename: after a crash the name holds the old file or
    /// the whole new one. The directory is not fsynced, so the rename itself may be lost.
    File,
    /// As [`Durability::File`], and the directory is fsynced after the rename: once the
    /// call returns, the new file survives a crash.
    Directory,
}

/// Replaces the file at `path` with `bytes`, atomically: see [`write_atomic_with`].
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> std::io::Result<()> {
    write_atomic_with(path, mode, durability, |f| f.write_all(bytes))
}

/// Replaces the file at `path` with what `fill` writes into a new file (opened for reading
/// and writing, at offset 0), atomically: readers see the old file or the whole new one.
///
/// The new file is a temporary in the same directory, named by [`temp_path`]: hidden (a
/// dot-name, which watchers of the directory skip), unique to this process and this
/// call. Whatever is left under that name (a dead process's temporary, a planted link,
/// FIFO or file) is unlinked first, which never follows a link; the file is then created
/// with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, so a link planted in between fails the
/// write (`AlreadyExists`) instead of being followed. Its mode is set to `mode` with
/// `fchmod`, whatever the umask. It is fsynced as `durability` asks, closed, and only then
/// renamed onto `path` (a close after the rename would reach an inotify watcher of the
/// directory as a second write, IN_CLOSE_WRITE after IN_MOVED_TO). The rename replaces
/// whatever is at `path` without opening it; a directory there fails it.
///
/// On any error the temporary is removed and `path` is as it was, except when only the
/// fsync of the directory failed (`Durability::Directory`): the new file is then in
/// place, and the error says "cannot sync <directory>". The directory must exist.
pub fn write_atomic_with<T>(
    path: &Path,
    mode: u32,
    durability: Durability,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = temp_path(path, SEQ.fetch_add(1, Ordering::Relaxed))?;
    write_through(path, &tmp, mode, durability, fill)
}

/// The temporary name [`write_atomic_with`] uses for `path` in the call numbered `seq` of
/// this process (one counter for every path, from 0): `<dir>/.<name>.tmp<pid>.<seq>`.
/// Every temporary of `path` starts with [`temp_prefix`]. `InvalidInput` if `path` has no
/// file name.
pub fn temp_path(path: &Path, seq: u64) -> std::io::Result<PathBuf> {
    let mut name = temp_prefix(path)?;
    name.push(format!("{}.{seq}", std::process::id()));
    Ok(path.with_file_name(name))
}

/// What the name of every temporary of `path` starts with (`.<name>.tmp`), for a sweep of
/// those a killed writer left.
pub fn temp_prefix(path: &Path) -> std::io::Result<std::ffi::OsString> {
    let Some(file) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: no file name to write", path.display()),
        ));
    };
    let mut name = std::ffi::OsString::from(".");
    name.push(file);
    name.push(".tmp");
    Ok(name)
}

/// Removes the temporaries of `path` that writers killed between create and rename left
/// (see [`temp_path`]): regular files of this user older than `older_than`, so that a
/// writer still at work keeps its own. Links and anything else under such a name stay
/// (an unlink would not follow them, but they are not ours). Best effort: errors are
/// ignored, as the only cost of a leftover is its space.
pub fn remove_stale_temporaries(path: &Path, older_than: std::time::Duration) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(prefix) = temp_prefix(path) else {
        return;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for e in entries.flatten() {
        if !e.file_name().as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        // `DirEntry::metadata` does not follow a link.
        let stale = e.metadata().ok().is_some_and(|m| {
            m.is_file()
                && m.uid() == me
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > older_than)
        });
        if stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn write_through<T>(
    path: &Path,
    tmp: &Path,
    mode: u32,
    durability: Durability,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let written = (|| {
        match fs::remove_file(tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(tmp)?;
        // The mode given to open is masked by the umask; fchmod is not.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        let out = fill(&mut f)?;
        if durability != Durability::None {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(tmp, path)?;
        Ok(out)
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    let out = written?;
    if durability == Durability::Directory {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot sync {}: {e}", dir.display()))
            })?;
    }
    Ok(out)
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

    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::symlink as link;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn write_atomic_replaces_the_file_whole_with_the_mode_asked() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "old, and longer than the new text\n").unwrap();
        for (mode, durability) in [
            (0o600, Durability::None),
            (0o640, Durability::File),
            (0o644, Durability::Directory),
        ] {
            write_atomic(&f, b"new\n", mode, durability).unwrap();
            assert_eq!(fs::read(&f).unwrap(), b"new\n");
            assert_eq!(mode_of(&f), mode, "{durability:?}");
            assert_eq!(names(d.path()), ["f"], "only the file is left");
        }
        // What fill returns comes back; the file can be read back while being written.
        let n = write_atomic_with(&f, 0o600, Durability::None, |h| {
            h.write_all(b"abc")?;
            std::io::Seek::rewind(h)?;
            let mut back = String::new();
            h.read_to_string(&mut back)?;
            Ok(back)
        })
        .unwrap();
        assert_eq!(n, "abc");
        assert_eq!(fs::read(&f).unwrap(), b"abc");
        // Whatever was at the name (a link, a FIFO) is replaced, never opened.
        let victim = d.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        fs::remove_file(&f).unwrap();
        link(&victim, &f).unwrap();
        write_atomic(&f, b"x", 0o600, Durability::None).unwrap();
        assert!(fs::symlink_metadata(&f).unwrap().is_file());
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
    }

    /// The mode is set with fchmod: a umask that strips every bit changes nothing. Run in
    /// a child (this test binary again) whose umask is 0777, as the umask is per process.
    #[test]
    fn write_atomic_sets_the_mode_whatever_the_umask() {
        const CHILD: &str = "NETCONF_TEXTFILE_UMASK_CHILD";
        if let Some(target) = std::env::var_os(CHILD) {
            write_atomic(Path::new(&target), b"m\n", 0o644, Durability::File).unwrap();
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let st = std::process::Command::new("sh")
            .args(["-c", "umask 0777 && exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "textfile::tests::write_atomic_sets_the_mode_whatever_the_umask",
                "--test-threads=1",
            ])
            .env(CHILD, &f)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(fs::read(&f).unwrap(), b"m\n");
        assert_eq!(mode_of(&f), 0o644);
    }

    /// A link planted under the temporary name is unlinked, never followed: its target
    /// keeps its content and mode, and the write succeeds. A dead writer's temporary and a
    /// FIFO there go the same way (a FIFO is never opened, so nothing waits for a reader).
    #[test]
    fn what_is_planted_under_the_temporary_name_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let tmp = temp_path(&f, 7).unwrap();
        assert_eq!(
            tmp.file_name().unwrap().to_str().unwrap(),
            format!(".f.tmp{}.7", std::process::id())
        );
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        link(&victim, &tmp).unwrap();
        write_through(&f, &tmp, 0o644, Durability::File, |h| h.write_all(b"1")).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        assert_eq!(mode_of(&victim), 0o600);
        assert_eq!(fs::read(&f).unwrap(), b"1");
        assert_eq!(names(d.path()), ["f"]);
        // A dangling link, to where a file would be created by following it.
        let would = outside.path().join("created");
        link(&would, &tmp).unwrap();
        write_through(&f, &tmp, 0o644, Durability::None, |h| h.write_all(b"2")).unwrap();
        assert!(fs::symlink_metadata(&would).is_err());
        assert_eq!(fs::read(&f).unwrap(), b"2");
        // A dead writer's temporary, half written and read-only.
        fs::write(&tmp, "half").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o400)).unwrap();
        write_through(&f, &tmp, 0o600, Durability::None, |h| h.write_all(b"3")).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"3");
        assert_eq!(mode_of(&f), 0o600);
        assert_eq!(names(d.path()), ["f"]);
        // A FIFO without a reader: opening it to write would wait for one forever.
        nix::unistd::mkfifo(&tmp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        write_through(&f, &tmp, 0o600, Durability::None, |h| h.write_all(b"4")).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"4");
        assert_eq!(names(d.path()), ["f"]);
    }

    /// The public entry point picks a fresh temporary each call; links planted under the
    /// next names it may use are not followed either.
    #[test]
    fn write_atomic_never_writes_outside_its_directory() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let victim = outside.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        for seq in 0..512 {
            link(&victim, temp_path(&f, seq).unwrap()).unwrap();
        }
        write_atomic(&f, b"ok", 0o600, Durability::None).unwrap();
        write_atomic(&f, b"ok", 0o600, Durability::None).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        assert_eq!(names(outside.path()), ["victim"]);
        assert_eq!(fs::read(&f).unwrap(), b"ok");
    }

    /// A failed write leaves the directory as it was: no temporary, the old file intact.
    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails, after the temporary was written.
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("inner"), "x").unwrap();
        assert!(write_atomic(&sub, b"new", 0o600, Durability::File).is_err());
        assert_eq!(names(d.path()), ["sub"]);
        assert_eq!(names(&sub), ["inner"]);
        // fill fails half way: the old file stays.
        let f = d.path().join("f");
        fs::write(&f, "old").unwrap();
        let e = write_atomic_with(&f, 0o600, Durability::None, |h| {
            h.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("fill failed"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "fill failed");
        assert_eq!(fs::read(&f).unwrap(), b"old");
        assert_eq!(names(d.path()), ["f", "sub"]);
        // Something that cannot be unlinked under the temporary name (a directory): a
        // clean error, nothing written through it.
        let tmp = temp_path(&f, 1).unwrap();
        fs::create_dir(&tmp).unwrap();
        assert!(write_through(&f, &tmp, 0o600, Durability::None, |h| h.write_all(b"n")).is_err());
        assert_eq!(fs::read(&f).unwrap(), b"old");
        assert!(fs::symlink_metadata(&tmp).unwrap().is_dir());
        fs::remove_dir(&tmp).unwrap();
        // A missing directory, and a path with no file name.
        let gone = d.path().join("gone").join("f");
        assert_eq!(
            write_atomic(&gone, b"n", 0o600, Durability::None)
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::NotFound
        );
        assert_eq!(
            write_atomic(Path::new("/"), b"n", 0o600, Durability::None)
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::InvalidInput
        );
        assert_eq!(names(d.path()), ["f", "sub"]);
    }

    /// A directory this user cannot write (as a non-root writer meets it): a clean error
    /// and nothing left. Root writes anyway, so this part runs only without root.
    #[test]
    fn an_unwritable_directory_is_a_clean_error() {
        if nix::unistd::geteuid().is_root() {
            eprintln!("SKIP an_unwritable_directory_is_a_clean_error: needs a non-root user");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o500)).unwrap();
        let e = write_atomic(&d.path().join("f"), b"n", 0o600, Durability::None).unwrap_err();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(names(d.path()).is_empty());
    }

    #[test]
    fn only_old_temporaries_of_this_file_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let named = |n: &str| d.path().join(n);
        let dead = named(".f.tmp999999.0");
        let fresh = named(".f.tmp999999.1");
        let other = named(".g.tmp999999.0");
        let planted = named(".f.tmp999999.2");
        for p in [&dead, &fresh, &other] {
            fs::write(p, "left").unwrap();
        }
        link(&victim, &planted).unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for p in [&dead, &other, &victim] {
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        remove_stale_temporaries(&f, std::time::Duration::from_secs(60));
        assert_eq!(
            names(d.path()),
            [".f.tmp999999.1", ".f.tmp999999.2", ".g.tmp999999.0"]
        );
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
    }
}
