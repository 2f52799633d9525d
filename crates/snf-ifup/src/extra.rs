//! The site hook that snf-network runs once a NIC is up (`IFUP_EXTRA_SCRIPT`, by default
//! `/etc/ganeti/ifup-extra`): run with snf-ifup's own arguments and environment (Ganeti's
//! variables), when it exists and is executable. snf-network exec'd it and so passed its
//! exit status on; here a failing hook fails the `up`, which is then rolled back.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::apply::Ctx;
use crate::log;

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let path = &ctx.cfg.ifup_extra;
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    let executable =
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Ok(());
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if ctx.dry_run {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!("# {} {}", path.display(), shown.join(" "));
        return Ok(());
    }
    log::info(&format!("running {}", path.display()));
    let status = Command::new(path)
        .args(&args)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", path.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", path.display());
    }
    Ok(())
}
