//! What every gnt-* binary shares: where config.data is, how a mutation runs (checks, pre
//! hooks, one locked transaction, feedback, post hooks), and how errors leave the process.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use netconf::GntError;
use netconf::config::{Config, FileStore, Store, transaction};
use netconf::hooks::{HookEnv, HookRunner, Phase};
use netconf::ops::Feedback;

use crate::timefmt::ctime;

/// Options every command accepts.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// The cluster configuration file.
    #[arg(long, global = true, env = "NETCONF_CONFIG", default_value = netconf::config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Print debugging output.
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,
}

impl Global {
    pub fn store(&self) -> FileStore {
        FileStore::new(&self.config)
    }
}

/// Options of Ganeti's job-submitting commands. Commands run synchronously here, so
/// `--submit`, `--print-jobid` and `--priority` are accepted for compatibility and ignored.
#[derive(Args, Clone, Debug, Default)]
pub struct JobOpts {
    /// Run only the checks; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for compatibility (commands always run synchronously).
    #[arg(long, hide = true)]
    pub submit: bool,
    /// Accepted for compatibility.
    #[arg(long, hide = true)]
    pub print_jobid: bool,
    /// Accepted for compatibility (low, normal, high).
    #[arg(long, hide = true, value_name = "PRIO")]
    pub priority: Option<String>,
}

/// Writes job feedback as Ganeti's CLI does: `<ctime>  - WARNING: text` on stdout.
pub fn print_feedback(fb: &Feedback) {
    let t = ctime(netconf::config::now());
    let mut out = std::io::stdout().lock();
    for (sev, msg) in &fb.messages {
        let _ = writeln!(out, "{t}  - {}: {msg}", sev.as_str());
    }
}

/// Runs a mutation. `hook_path` names the hook directory (e.g. `network-add`); `op` must be
/// repeatable on a copy: it runs once on a snapshot when pre hooks exist (so they see what
/// will be done, and a doomed command fails before any hook) and once in the transaction.
pub fn mutate<T>(
    store: &FileStore,
    jobs: &JobOpts,
    hook_path: &str,
    op: impl Fn(&mut Config, &mut Feedback) -> Result<(T, Vec<HookEnv>), GntError>,
) -> Result<T, GntError> {
    let probe_runner = HookRunner::from_env("", "");
    let has_pre = !probe_runner.scripts(hook_path, Phase::Pre).is_empty();
    if jobs.dry_run || has_pre {
        let mut snapshot = store.read()?;
        let mut fb = Feedback::default();
        let result = op(&mut snapshot, &mut fb);
        if jobs.dry_run {
            print_feedback(&fb);
            return result.map(|(t, _)| t);
        }
        let (_, envs) = result.inspect_err(|_| print_feedback(&fb))?;
        let runner = HookRunner::from_env(&snapshot.cluster.name, &snapshot.cluster.master_node);
        for env in &envs {
            let failures = runner.run(env, Phase::Pre);
            if !failures.is_empty() {
                return Err(GntError::HooksAbort(failures));
            }
        }
    }
    let mut fb = Feedback::default();
    let mut names = (String::new(), String::new());
    let result = transaction(store, |cfg| {
        names = (cfg.cluster.name.clone(), cfg.cluster.master_node.clone());
        op(cfg, &mut fb)
    });
    print_feedback(&fb);
    let (value, envs) = result?;
    let runner = HookRunner::from_env(&names.0, &names.1);
    let mut post = Feedback::default();
    for env in &envs {
        for (node, script, out) in runner.run(env, Phase::Post) {
            post.warn(format!(
                "Hook {script} failed on node {node} (post phase): {out}"
            ));
        }
    }
    print_feedback(&post);
    Ok(value)
}

/// The end of every `main`: errors in Ganeti's format on stderr with its exit codes; a
/// closed stdout (`| head`) is not an error.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(g) = err.downcast_ref::<GntError>() {
                eprintln!("{g}");
                return ExitCode::from(g.exit_code());
            }
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::BrokenPipe
                {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("Failure: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Ganeti's exit code for queries naming unknown fields.
pub const EXIT_UNKNOWN_FIELD: u8 = 14;

/// Prints Ganeti's unknown-field warning and returns its exit code.
pub fn unknown_fields(names: &[String]) -> ExitCode {
    eprintln!("Warning: Queried for unknown fields {}", names.join(", "));
    ExitCode::from(EXIT_UNKNOWN_FIELD)
}

/// Writes to stdout, mapping a closed pipe to success in `finish`.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// Splits Ganeti's comma lists (`a,b`; `\,` escapes a comma).
pub fn split_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || !out.is_empty() {
        out.push(cur);
    }
    out
}

/// Tags from positional arguments and/or `--from FILE` (`-` = stdin), one per line.
pub fn tags_with_file(mut tags: Vec<String>, from: Option<&str>) -> anyhow::Result<Vec<String>> {
    if let Some(f) = from {
        let text = if f == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("Cannot read {f}: {e}"))?
        };
        tags.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists() {
        assert_eq!(split_list("a,b"), ["a", "b"]);
        assert_eq!(split_list(r"a\,b,c"), ["a,b", "c"]);
        assert!(split_list("").is_empty());
    }
}
