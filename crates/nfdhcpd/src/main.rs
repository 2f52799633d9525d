#![forbid(unsafe_code)] // all unsafe lives in netconf-sys
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use nfdhcpd::cli::{Cli, OutputFormat};
use nfdhcpd::config::DaemonSettings;
use nfdhcpd::{daemon, log};

fn main() -> ExitCode {
    // `NETCONF_COMPLETE=bash nfdhcpd` prints the shell's completion script; with it set, the
    // shell asks here for the words of a TAB (see the page's SHELL COMPLETION).
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var("NETCONF_COMPLETE")
        .completer("nfdhcpd")
        .complete();
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nfdhcpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    log::set_level(if cli.debug { log::DEBUG } else { log::INFO });
    if let Some(old) = &cli.convert_config {
        // An old settings file: read as the new one is (a link followed, a FIFO refused).
        let text = netconf::textfile::read_following(old, nfdhcpd::config::MAX_SETTINGS_BYTES)
            .with_context(|| format!("reading {}", old.display()))?;
        let toml =
            nfdhcpd::convert::convert(&text).with_context(|| format!("in {}", old.display()))?;
        print!("{toml}");
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = DaemonSettings::load(&cli.config)?;
    if cli.check_config {
        let q = cfg.queues();
        if let Some(u) = &cfg.general.user {
            nfdhcpd::privs::resolve(u)?;
        }
        println!(
            "{}: OK (queues {})",
            cli.config.display(),
            q.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if cli.status {
        return status(&cfg, cli.output_format);
    }
    daemon::run(
        &cfg,
        &daemon::Options {
            foreground: cli.foreground,
            install_rules: !cli.no_rules,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn status(cfg: &DaemonSettings, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let path = &cfg.general.status_file;
    let text = match nfdhcpd::stats::read_status(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("nfdhcpd: not running ({} absent)", path.display());
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let pid: Option<i32> = text
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .and_then(|p| p.trim().parse().ok());
    let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    if format == OutputFormat::Json {
        let mut j = nfdhcpd::stats::status_json(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(o) = j.as_object_mut() {
            o.insert("running".into(), alive.into());
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{text}");
    }
    if !alive {
        eprintln!("nfdhcpd: stale status file, daemon not running");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
