//! The ways snf-ifup is called: Ganeti's KVM environment (kvm-vif-bridge, kvm-ifup-custom,
//! kvm-ifdown-custom, Ganeti 3.2's network/<mode>/{up,down}) and Xen's vif-custom.

use std::ffi::OsString;

use anyhow::{Context, bail};
use netconf::{IfName, NicEnv};

use crate::config::IfupSettings;
use crate::exec;

/// The most a Ganeti NIC file may hold: a dozen `KEY=value` lines, well under 1 KiB.
pub const MAX_NIC_FILE_BYTES: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
}

/// Rewrites the command line of an install name (a link to the binary) into the explicit
/// subcommand form, so `clap` sees one grammar.
pub fn rewrite_args(args: Vec<OsString>) -> Vec<OsString> {
    let Some(argv0) = args.first() else {
        return args;
    };
    let base = std::path::Path::new(argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix: &[&str] = match base.as_str() {
        "kvm-vif-bridge" | "kvm-ifup-custom" => &["ganeti", "up"],
        "kvm-ifdown-custom" => &["ganeti", "down"],
        "vif-custom" => &["xen"],
        // Ganeti 3.2 runs /etc/ganeti/network/<mode>/<action>.
        "up" => &["ganeti", "up"],
        "down" => &["ganeti", "down"],
        _ => return args,
    };
    let mut out = vec![OsString::from("snf-ifup")];
    out.extend(prefix.iter().map(OsString::from));
    out.extend(args.into_iter().skip(1));
    out
}

/// Ganeti's environment as UTF-8 pairs (non-UTF-8 variables are not Ganeti's).
pub fn env_pairs() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn ganeti_action(explicit: Option<&str>) -> anyhow::Result<Action> {
    match explicit
        .map(str::to_owned)
        .or_else(|| env("ACTION"))
        .as_deref()
    {
        None | Some("up") => Ok(Action::Up),
        Some("down") => Ok(Action::Down),
        Some(other) => bail!("ACTION must be up or down, not '{other}'"),
    }
}

/// The TAP from the argument or `INTERFACE`, which must agree.
pub fn ganeti_tap(arg: Option<&str>) -> anyhow::Result<IfName> {
    let envv = env("INTERFACE");
    let name = match (arg, envv.as_deref()) {
        (Some(a), Some(e)) if a != e => {
            bail!("interface argument '{a}' differs from INTERFACE '{e}'")
        }
        (Some(a), _) => a.to_owned(),
        (None, Some(e)) => e.to_owned(),
        (None, None) => bail!("No network interface specified (INTERFACE is missing)"),
    };
    name.parse().map_err(|e| anyhow::anyhow!("INTERFACE: {e}"))
}

/// Whether to announce the NIC's addresses: not before a migration (Ganeti 3.2
/// `MIGRATION_PHASE=pre`), when the VM still runs on the source node.
pub fn ganeti_announce(action: Action) -> anyhow::Result<bool> {
    match env("MIGRATION_PHASE").as_deref() {
        None | Some("post") => Ok(true),
        Some("pre") => Ok(action != Action::Up),
        Some(other) => bail!("MIGRATION_PHASE must be pre or post, not '{other}'"),
    }
}

/// The NIC from Ganeti's environment, for TAP `tap`.
pub fn ganeti_nic(tap: &IfName) -> anyhow::Result<NicEnv> {
    let mut vars = env_pairs();
    if !vars.iter().any(|(k, v)| k == "INTERFACE" && !v.is_empty()) {
        vars.push(("INTERFACE".into(), tap.to_string()));
    }
    NicEnv::from_env(vars).context("invalid Ganeti NIC environment")
}

/// Xen's vif script arguments.
pub fn xen_action(arg: &str) -> anyhow::Result<Action> {
    match arg {
        "online" | "add" => Ok(Action::Up),
        "offline" | "remove" => Ok(Action::Down),
        other => bail!("unknown Xen action '{other}' (expected online, offline, add or remove)"),
    }
}

/// `vif<domid>.<devid>` from Xen's `vif` variable.
pub fn xen_vif() -> anyhow::Result<(IfName, u32, u32)> {
    let vif = env("vif").context("vif is missing (Xen passes the interface name in $vif)")?;
    let parsed = vif
        .strip_prefix("vif")
        .and_then(|r| r.split_once('.'))
        .and_then(|(d, n)| Some((d.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    let Some((domid, devid)) = parsed else {
        bail!("vif '{vif}' is not of the form vif<domid>.<devid>");
    };
    let tap = vif.parse().map_err(|e| anyhow::anyhow!("vif: {e}"))?;
    Ok((tap, domid, devid))
}

/// The NIC of a Xen vif: the instance (`INSTANCE`, else the configured domname command),
/// Ganeti's NIC file, and the bridge Xen was told (`$XENBUS_PATH/bridge`) for bridged NICs.
pub fn xen_nic(cfg: &IfupSettings, tap: &IfName, domid: u32, devid: u32) -> anyhow::Result<NicEnv> {
    let instance = match env("INSTANCE") {
        Some(i) => i,
        None => {
            let Some((cmd, args)) = cfg.xen_domname.split_first() else {
                bail!("xen_domname is empty in the configuration");
            };
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            let id = domid.to_string();
            a.push(&id);
            exec::output(cmd, &a)
                .context("cannot find the domain name")?
                .trim()
                .to_owned()
        }
    };
    // The name becomes a path below ganeti_nic_dir and the binding's HOSTNAME.
    let instance = netconf::InstanceName::check(instance).context("INSTANCE")?;
    let path = cfg
        .ganeti_nic_dir
        .join(instance.as_str())
        .join(devid.to_string());
    // Read on every vif call, so it must never block one (a FIFO is refused at once, as
    // is anything over the limit). A symbolic link is refused, not followed: Ganeti
    // writes the file itself (a regular file, renamed into place), so a link there is
    // someone else's, and would let them choose the NIC that is configured.
    let text = netconf::textfile::read(&path, MAX_NIC_FILE_BYTES)
        .with_context(|| format!("cannot read Ganeti NIC file {}", path.display()))?;
    let mut nic = NicEnv::from_xen_nic_file(&text, instance)
        .with_context(|| format!("invalid Ganeti NIC file {}", path.display()))?;
    nic.interface = Some(tap.clone());
    if nic.mode == netconf::NicMode::Bridged
        && let Some(xp) = env("XENBUS_PATH")
        && exec::in_path("xenstore-read")
        && let Ok(b) = exec::output("xenstore-read", &[&format!("{xp}/bridge")])
        && !b.trim().is_empty()
    {
        nic.link = Some(b.trim().to_owned());
    }
    Ok(nic)
}

/// Tells Xen's hotplug machinery that the vif is ready (what vif scripts' `success` does).
pub fn xen_success() -> anyhow::Result<()> {
    if let Some(xp) = env("XENBUS_PATH")
        && exec::in_path("xenstore-write")
    {
        exec::run(
            "xenstore-write",
            &[&format!("{xp}/hotplug-status"), "connected"],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn install_names() {
        assert_eq!(
            rewrite_args(v(&["/etc/ganeti/kvm-vif-bridge", "tap0"])),
            v(&["snf-ifup", "ganeti", "up", "tap0"])
        );
        assert_eq!(
            rewrite_args(v(&["/etc/ganeti/kvm-ifdown-custom", "tap0", "1"])),
            v(&["snf-ifup", "ganeti", "down", "tap0", "1"])
        );
        assert_eq!(
            rewrite_args(v(&["/etc/xen/scripts/vif-custom", "online"])),
            v(&["snf-ifup", "xen", "online"])
        );
        assert_eq!(
            rewrite_args(v(&["/etc/ganeti/network/routed/down"])),
            v(&["snf-ifup", "ganeti", "down"])
        );
        assert_eq!(
            rewrite_args(v(&["snf-ifup", "status"])),
            v(&["snf-ifup", "status"])
        );
        assert_eq!(xen_action("remove").unwrap(), Action::Down);
        assert!(xen_action("bogus").is_err());
    }
}
