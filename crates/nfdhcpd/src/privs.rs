//! `general.user`: once the privileged start is over (queues bound, packet socket open,
//! rules installed), the daemon runs as that user with nothing but CAP_NET_ADMIN (verdicts,
//! removing its rules at exit) and CAP_NET_RAW, as the original did with libcap-ng.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};

/// The capabilities kept after the switch. Ambient too, so that the iptables run at exit
/// still has CAP_NET_ADMIN.
const KEEP: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// `nobody`, or a number (the original accepted both).
pub fn resolve(spec: &str) -> anyhow::Result<Target> {
    let user = match spec.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(spec),
    }
    .with_context(|| format!("looking up user '{spec}'"))?;
    match user {
        Some(u) => Ok(Target {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        // A bare number without a passwd entry is still a valid identity.
        None => match spec.parse::<u32>() {
            Ok(n) => Ok(Target {
                name: spec.to_owned(),
                uid: Uid::from_raw(n),
                gid: Group::from_gid(Gid::from_raw(n))
                    .ok()
                    .flatten()
                    .map_or(Gid::from_raw(n), |g| g.gid),
            }),
            Err(_) => bail!("general.user: no such user '{spec}'"),
        },
    }
}

/// The directories the daemon still writes after the switch (pidfile, status file, log
/// file): they
/// must be its own, so they are handed to the user. A shared directory such as `/run` or
/// `/tmp` is refused rather than taken over.
pub fn own_dirs(t: &Target, files: &[&Path]) -> anyhow::Result<()> {
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter(|f| !f.as_os_str().is_empty())
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let meta = std::fs::metadata(&d).with_context(|| format!("{}", d.display()))?;
        if meta.permissions().mode() & 0o1000 != 0 || is_system_dir(&d) {
            bail!(
                "general.user is set, so {} must be a directory of nfdhcpd's own \
                 (e.g. /run/nfdhcpd), not a shared one",
                d.display()
            );
        }
        nix::unistd::chown(&d, Some(t.uid), Some(t.gid))
            .with_context(|| format!("giving {} to user {}", d.display(), t.name))?;
    }
    Ok(())
}

/// With `general.user` the directories of the daemon's own files go to that user; the
/// binding directory and its parents must never: the user could then write bindings and
/// make the daemon answer anything.
pub fn refuse_binding_dirs(datapath: &Path, files: &[&Path]) -> anyhow::Result<()> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let data = canon(datapath);
    for f in files.iter().filter(|f| !f.as_os_str().is_empty()) {
        let Some(d) = f.parent() else { continue };
        if data.starts_with(canon(d)) {
            bail!(
                "general.user is set, so {} must not be in the binding directory {} or a \
                 parent of it (it would be given to that user)",
                f.display(),
                datapath.display()
            );
        }
    }
    Ok(())
}

fn is_system_dir(d: &Path) -> bool {
    let d = d.canonicalize().unwrap_or_else(|_| d.to_path_buf());
    [
        "/", "/run", "/var/run", "/var", "/var/lib", "/var/log", "/etc", "/tmp", "/var/tmp",
    ]
    .iter()
    .any(|s| d == Path::new(s))
}

/// Switches to `t` for good. Must run while the process has one thread: capability sets
/// are per thread, and threads created later inherit the result.
pub fn switch(t: &Target) -> anyhow::Result<()> {
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task")
        && tasks.count() > 1
    {
        bail!("internal error: switching users with threads running (they would keep root)");
    }
    let keep: CapsHashSet = KEEP.into_iter().collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, gone after setuid.
    for c in caps::all().difference(&keep) {
        caps::drop(None, CapSet::Bounding, *c)
            .with_context(|| format!("dropping {c} from the bounding set"))?;
    }
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    nix::unistd::setgroups(&[t.gid]).context("setgroups")?;
    nix::unistd::setresgid(t.gid, t.gid, t.gid).context("setresgid")?;
    nix::unistd::setresuid(t.uid, t.uid, t.uid).context("setresuid")?;
    for set in [CapSet::Permitted, CapSet::Effective, CapSet::Inheritable] {
        caps::set(None, set, &keep).with_context(|| format!("setting the {set:?} set"))?;
    }
    for c in KEEP {
        caps::raise(None, CapSet::Ambient, c).with_context(|| format!("raising ambient {c}"))?;
    }
    let eff = caps::read(None, CapSet::Effective).context("reading capabilities")?;
    if eff != keep || Uid::current() != t.uid {
        bail!("the switch to user {} did not take effect", t.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers() {
        let root = resolve("root").unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(resolve("0").unwrap().name, "root");
        // A number without a passwd entry is taken as is.
        let n = resolve("4000123").unwrap();
        assert_eq!((n.uid.as_raw(), n.gid.as_raw()), (4000123, 4000123));
        let e = resolve("no-such-user-here").unwrap_err().to_string();
        assert!(e.contains("no such user 'no-such-user-here'"), "{e}");
    }

    #[test]
    fn shared_directories_are_refused() {
        let t = resolve("root").unwrap();
        for f in ["/run/nfdhcpd.pid", "/tmp/status", "/var/lib/x"] {
            let e = own_dirs(&t, &[Path::new(f)]).unwrap_err().to_string();
            assert!(e.contains("of nfdhcpd's own"), "{f}: {e}");
        }
    }

    #[test]
    fn binding_directory_and_parents_are_never_given_away() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("lib/bindings");
        std::fs::create_dir_all(&data).unwrap();
        for f in [data.join("status"), d.path().join("lib/nfdhcpd.pid")] {
            let e = refuse_binding_dirs(&data, &[&f]).unwrap_err().to_string();
            assert!(e.contains("must not be in the binding directory"), "{e}");
        }
        let run = d.path().join("run/status");
        refuse_binding_dirs(&data, &[&run]).unwrap();
    }
}
