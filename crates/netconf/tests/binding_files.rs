//! The binding writer and reader on a real file system: modes whatever the umask, no link
//! followed on either side, no special or oversized file read, and one event per write for
//! nfdhcpd's inotify. One test in its own binary: the umask is process-wide.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use inotify::{EventMask, Inotify, WatchMask};
use netconf::binding::{Binding, MAX_FILE_BYTES, read_text};
use netconf::ifname::IfName;

fn sample() -> Binding {
    let mut b = Binding::new("aa:00:00:00:00:02".parse().unwrap(), "vm2");
    b.ip = Some("198.51.100.2".parse().unwrap());
    b
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn binding_files_are_written_and_read_safely() {
    let dir = tempfile::tempdir().unwrap();
    let tap: IfName = "tap2".parse().unwrap();
    let b = sample();

    // 0644 whatever the umask (it came out 0666 under umask 000, 0600 under 077).
    for umask in [0o000, 0o077] {
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
        let p = b.write_atomic(dir.path(), &tap).unwrap();
        nix::sys::stat::umask(old);
        assert_eq!(mode(&p), 0o644, "umask {umask:o}");
    }

    // A link planted under the temporary name (the one of old versions, and those
    // `textfile::write_atomic` uses now) is never followed: the victim is untouched.
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let tmp = dir.path().join(format!(".tap2.tmp{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    for seq in 0..256 {
        let tmp = netconf::textfile::temp_path(&dir.path().join("tap2"), seq).unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    }
    let p = b.write_atomic(dir.path(), &tap).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    assert_eq!(Binding::load(&p).unwrap(), b);

    // One write is one event on the binding's name: the temporary is closed before the
    // rename, so no IN_CLOSE_WRITE for "tap2" follows its IN_MOVED_TO.
    let mut ino = Inotify::init().unwrap();
    ino.watches()
        .add(dir.path(), WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
        .unwrap();
    b.write_atomic(dir.path(), &tap).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    // Both events (the close of the temporary, the move) are queued once write_atomic
    // returns; a non-blocking read gets them all.
    for ev in ino.read_events(&mut buf).unwrap() {
        let name = ev.name.map(|n| n.to_string_lossy().into_owned());
        if name.as_deref() == Some("tap2") {
            seen.push(ev.mask);
        }
    }
    assert_eq!(seen, [EventMask::MOVED_TO], "events on tap2");

    // The reader: no link, no FIFO (it would block), nothing over the limit.
    let link = dir.path().join("tap3");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let e = read_text(&link).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(Binding::load(&link).is_err());
    let fifo = dir.path().join("tap4");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let e = read_text(&fifo).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let big = dir.path().join("tap5");
    let mut text = b.render();
    text.push_str(&"#".repeat(MAX_FILE_BYTES as usize));
    fs::write(&big, text).unwrap();
    let e = read_text(&big).unwrap_err().to_string();
    assert!(e.contains("larger than 64 KiB"), "{e}");
    assert_eq!(
        read_text(&dir.path().join("absent")).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}
