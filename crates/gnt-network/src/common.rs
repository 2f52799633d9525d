//! What every gnt-* binary shares: where config.data is, how a mutation runs (checks, pre
//! hooks, one locked transaction, feedback, post hooks), and how errors leave the process.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use netconf_cluster::GntError;
use netconf_cluster::config::{ClusterConfig, Store, transaction};
use netconf_cluster::hooks::{HookEnv, HookRunner, Phase};
use netconf_cluster::ops::Feedback;

pub use crate::global::Global;
use crate::table::{self, Field, ListOpts, Value};
use netconf::timefmt::ctime;

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
    let t = ctime(netconf_cluster::config::now());
    let mut out = std::io::stdout().lock();
    for (sev, msg) in &fb.messages {
        let _ = writeln!(out, "{t}  - {}: {msg}", sev.as_str());
    }
}

/// Runs a mutation. `hook_path` names the hook directory (e.g. `network-add`); `op` checks
/// and changes a configuration and returns its hooks' environments.
///
/// Without pre hooks, `op` runs once inside the locked transaction. With pre hooks, it runs
/// on a snapshot first (so a doomed command fails before any hook), the hooks see that
/// result, and exactly that result is committed if config.data did not change meanwhile;
/// otherwise the whole round is repeated on the new state. Re-running `op` under the lock
/// instead would hand hooks values (random MACs and NIC UUIDs, pool addresses taken by a
/// concurrent command) that differ from the committed ones; running the hooks under the
/// lock would deadlock hooks that query the configuration.
pub fn mutate<T>(
    store: &dyn Store,
    jobs: &JobOpts,
    hook_path: &str,
    op: impl Fn(&mut ClusterConfig, &mut Feedback) -> Result<(T, Vec<HookEnv>), GntError>,
) -> Result<T, GntError> {
    let probe_runner = HookRunner::from_env("", "");
    let has_pre = !probe_runner.scripts(hook_path, Phase::Pre).is_empty();
    if jobs.dry_run {
        let mut snapshot = store.read()?;
        let mut fb = Feedback::default();
        let result = op(&mut snapshot, &mut fb);
        print_feedback(&fb);
        let (value, _) = result?;
        // The commit's own check too: a dry run passes only what the real run would commit.
        store.check_invariants(&snapshot)?;
        return Ok(value);
    }
    let (value, envs, names) = if has_pre {
        with_pre_hooks(store, &op)?
    } else {
        let mut fb = Feedback::default();
        let mut names = (String::new(), String::new());
        let result = transaction(store, |cfg| {
            // A store may run this more than once (etcd retries after a collision): only
            // the feedback of the run that committed is shown.
            fb = Feedback::default();
            names = (cfg.cluster.name.clone(), cfg.cluster.master_node.clone());
            op(cfg, &mut fb)
        });
        print_feedback(&fb);
        let (value, envs) = result?;
        (value, envs, names)
    };
    let runner = HookRunner::from_env(&names.0, &names.1);
    let mut post = Feedback::default();
    for env in &envs {
        for (node, script, out) in runner.run(env, Phase::Post) {
            // Ganeti's HooksMaster wording for a failed post hook.
            let out = if out.is_empty() { "(no output)" } else { &out };
            post.warn(format!("On {node} script {script} failed, output: {out}"));
        }
    }
    print_feedback(&post);
    Ok(value)
}

type Committed<T> = (T, Vec<HookEnv>, (String, String));

/// Snapshot, `op`, pre hooks, then commit that very result unless config.data changed.
fn with_pre_hooks<T>(
    store: &dyn Store,
    op: &impl Fn(&mut ClusterConfig, &mut Feedback) -> Result<(T, Vec<HookEnv>), GntError>,
) -> Result<Committed<T>, GntError> {
    loop {
        let (mut next, version) = store.read_versioned()?;
        let mut fb = Feedback::default();
        let (value, envs) = op(&mut next, &mut fb).inspect_err(|_| print_feedback(&fb))?;
        let names = (next.cluster.name.clone(), next.cluster.master_node.clone());
        let runner = HookRunner::from_env(&names.0, &names.1);
        for env in &envs {
            let failures = runner.run(env, Phase::Pre);
            if !failures.is_empty() {
                print_feedback(&fb);
                return Err(GntError::HooksAbort(failures));
            }
        }
        // An absent file reads as a fresh cluster with new UUIDs each time: its version is
        // "still absent".
        if !store.commit_if_unchanged(next, version)? {
            continue;
        }
        print_feedback(&fb);
        return Ok((value, envs, names));
    }
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

/// What `list` and `info` print: Ganeti's text, or JSON (see JSON OUTPUT in the pages).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// `--output-format` of `list` and `info`. Not `-o json`: `-o` is Ganeti's field list.
#[derive(Args, Clone, Debug, Default)]
pub struct FormatArg {
    /// Print text (Ganeti's layout) or json.
    #[arg(
        long = "output-format",
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub output_format: OutputFormat,
}

impl FormatArg {
    pub fn json(&self) -> bool {
        self.output_format == OutputFormat::Json
    }
}

/// Options of every `list` command.
#[derive(Args, Clone, Debug, Default)]
pub struct ListArgs {
    /// Do not print the header row.
    #[arg(long)]
    pub no_headers: bool,
    /// Separate fields with SEP instead of aligning columns.
    #[arg(long, value_name = "SEP")]
    pub separator: Option<String>,
    /// Print unavailable values as (unavail) instead of -.
    #[arg(short, long)]
    pub verbose: bool,
    /// Fields to show (`+f1,f2` appends to the defaults).
    #[arg(short = 'o', long = "output", value_name = "FIELDS")]
    pub output: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// Options of every `list-fields` command.
#[derive(Args, Clone, Debug, Default)]
pub struct ListFieldsArgs {
    /// Do not print the header row.
    #[arg(long)]
    pub no_headers: bool,
    /// Separate fields with SEP instead of aligning columns.
    #[arg(long, value_name = "SEP")]
    pub separator: Option<String>,
    /// Fields to describe (default: all).
    pub fields: Vec<String>,
}

/// Ganeti's `list`: fields are checked first (unknown ones exit 14), then the objects
/// are resolved and each row is `value(key, field)`.
pub fn list(
    all: &[Field],
    defaults: &[&str],
    opts: &ListArgs,
    keys: impl FnOnce() -> Result<Vec<String>, GntError>,
    value: impl Fn(&str, &str) -> Value,
) -> anyhow::Result<ExitCode> {
    let fields = match table::select_fields(all, defaults, opts.output.as_deref()) {
        Ok(f) => f,
        Err(unknown) => return Ok(unknown_fields(&unknown)),
    };
    let rows: Vec<Vec<Value>> = keys()?
        .iter()
        .map(|k| fields.iter().map(|f| value(k, f.name)).collect())
        .collect();
    if opts.format.json() {
        out(&table::render_json(&fields, &rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    let o = ListOpts {
        headers: !opts.no_headers,
        separator: opts.separator.clone(),
        verbose: opts.verbose,
    };
    out(&table::render(&fields, &rows, &o))?;
    Ok(ExitCode::SUCCESS)
}

/// Ganeti's `list-fields`.
pub fn list_fields(all: &[Field], a: &ListFieldsArgs) -> anyhow::Result<ExitCode> {
    let o = ListOpts {
        headers: !a.no_headers,
        separator: a.separator.clone(),
        verbose: false,
    };
    match table::render_fields(all, &a.fields, &o) {
        Ok(t) => out(&t)?,
        Err(unknown) => return Ok(unknown_fields(&unknown)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Ganeti's `info`: a text block per object, or with `--output-format json` one array of
/// their JSON objects.
pub fn print_info(
    format: &FormatArg,
    keys: &[String],
    json: impl Fn(&str) -> serde_json::Value,
    text: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    if format.json() {
        let all: Vec<serde_json::Value> = keys.iter().map(|k| json(k)).collect();
        return out(&table::json_text(&all));
    }
    out(&keys.iter().map(|k| text(k)).collect::<String>())
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

/// `add-tags` and `remove-tags`.
#[derive(Args, Clone, Debug)]
pub struct TagArgs {
    /// Read more tags from FILE, one per line (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub from: Option<String>,
    #[command(flatten)]
    pub jobs: JobOpts,
    /// The object whose tags change.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::complete::own))]
    pub name: String,
    pub tags: Vec<String>,
}

/// Runs a tag change (`op` is the domain's add or remove) as one mutation.
pub fn change_tags(
    store: &dyn Store,
    hook_path: &str,
    a: &TagArgs,
    op: fn(&mut ClusterConfig, &str, &[String]) -> Result<(), GntError>,
) -> anyhow::Result<()> {
    let tags = tags_with_file(a.tags.clone(), a.from.as_deref())?;
    mutate(store, &a.jobs, hook_path, |cfg, _| {
        Ok((op(cfg, &a.name, &tags)?, vec![]))
    })?;
    Ok(())
}

/// `list-tags`: one tag a line, sorted.
pub fn print_tags(tags: &std::collections::BTreeSet<String>) -> anyhow::Result<()> {
    let text: String = tags.iter().map(|t| format!("{t}\n")).collect();
    out(&text)
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
