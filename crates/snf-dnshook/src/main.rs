#![forbid(unsafe_code)] // all unsafe lives in netconf-sys
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use snf_dnshook::cli::Cli;
use snf_dnshook::client::Client;
use snf_dnshook::config::{self, DnsHookSettings};
use snf_dnshook::hookenv::{Action, HookEnv, Phase, dns_nics};
use snf_dnshook::sync::{Job, Options, sync};

fn main() -> ExitCode {
    // `NETCONF_COMPLETE=bash snf-dnshook` prints the shell's completion script; with it set, the
    // shell asks here for the words of a TAB (see the page's SHELL COMPLETION).
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var("NETCONF_COMPLETE")
        .completer("snf-dnshook")
        .complete();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("snf-dnshook: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn note(cli: &Cli, msg: &str) {
    if cli.verbose {
        eprintln!("snf-dnshook: {msg}");
    }
}

/// The node's FQDN as Ganeti names nodes (what `hostname -f` prints).
fn this_node() -> Result<String> {
    if let Ok(out) = std::process::Command::new("hostname").arg("-f").output()
        && out.status.success()
    {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !name.is_empty() {
            return Ok(name);
        }
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot tell this node's name; set `node` or SNF_DNSHOOK_NODE")?;
    Ok(name.trim().to_string())
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn run(cli: &Cli) -> Result<ExitCode> {
    // Ganeti variables are ASCII; anything else is not ours to read.
    let vars = std::env::vars_os().filter_map(|(k, v): (OsString, OsString)| {
        Some((k.into_string().ok()?, v.into_string().ok()?))
    });
    let env = HookEnv::from_vars(vars)?;
    if env.phase == Phase::Pre {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(action) = env.action()? else {
        note(cli, &format!("opcode '{}': nothing to do", env.op_code));
        return Ok(ExitCode::SUCCESS);
    };
    // Installed but not configured yet: the package links the hook into Ganeti's hook
    // directories, and a missing default file must not fail every instance operation.
    // A file named explicitly (--config, SNF_DNSHOOK_CONFIG) must exist.
    if cli.config.as_os_str() == config::DEFAULT_PATH && !cli.config.exists() {
        eprintln!(
            "snf-dnshook: {} does not exist: DNS updates are not configured, nothing to do",
            config::DEFAULT_PATH
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = DnsHookSettings::load(&cli.config)?;
    for w in &cfg.warnings {
        eprintln!("snf-dnshook: warning: {w}");
    }
    let node = match cli.node.clone().or_else(|| cfg.node.clone()) {
        Some(n) => n,
        None => this_node()?,
    };
    let primary = env
        .primary
        .as_deref()
        .context("GANETI_INSTANCE_PRIMARY is not set")?;
    if !same_host(primary, &node) {
        note(
            cli,
            &format!("this node ({node}) is not the primary ({primary}): nothing to do"),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let view = env.instance_env()?;
    let instance = view.name.as_str();
    let nics = dns_nics(&view.nics)?;
    // A modify may have taken the last DNS NIC away, so it always looks; the other
    // opcodes act only for instances with a DNS NIC.
    if action != Action::Modify && !nics.iter().any(|n| cfg.is_dns_nic(&n.tags)) {
        note(
            cli,
            &format!(
                "{instance}: no NIC on a network tagged {}: nothing to do",
                cfg.dns_tags.join(" or ")
            ),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client {
        servers: cfg.servers()?,
        key: cfg.key.clone(),
        timeout: cfg.timeout,
        attempts: cfg.attempts,
        backoff: cfg.backoff,
    };
    let opts = Options {
        dry_run: cli.dry_run,
        verbose: cli.verbose,
    };
    let job = Job {
        instance,
        action: &action,
        nics: &nics,
    };
    sync(
        &cfg,
        &client,
        &job,
        &opts,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}
