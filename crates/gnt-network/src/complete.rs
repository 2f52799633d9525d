//! Shell completion. The shell asks the tool itself at every TAB (clap_complete's dynamic
//! engine, switched on by `NETCONF_COMPLETE`): options and subcommands come from the clap
//! definitions of the binary that answers, so a completion can never be staler than the
//! tool, and the names of networks, groups, nodes and instances come from the store the
//! command line names (`--config`, `--store`, their environment), read through a view
//! that writes nothing and waits for no lock, nor for etcd longer than `STORE_BUDGET`.
//! Any failure there (no store, a broken one, a silent etcd) means no candidates: a TAB
//! never prints an error.
//!
//! `NETCONF_COMPLETE=bash gnt-network` prints the script that registers the completion
//! (also zsh and fish); the packages ship those scripts, made at build time.

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::CompleteEnv;
use netconf_cluster::config::{ClusterConfig, Location, Store, open_for_completion};

use crate::global::Global;
use crate::sort::nice_sorted;

/// The variable that turns a run into a completion request (`bash`, `zsh` or `fish`).
pub const VAR: &str = "NETCONF_COMPLETE";

/// How long a TAB may wait for etcd, connecting included: a dead or silent member must not
/// freeze the shell; past it the TAB offers nothing.
const STORE_BUDGET: Duration = Duration::from_millis(300);

/// What a name on the command line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Network,
    Group,
    Node,
    Instance,
}

/// The tool answering this request: its command (for the words typed so far) and what
/// its own objects are (the names `add-tags` and `list-tags` take).
struct Tool {
    command: fn() -> Command,
    own: Option<Kind>,
}

static TOOL: OnceLock<Tool> = OnceLock::new();

/// The first thing every `main` does: answers a completion request, or prints the
/// registration script, and exits; an ordinary run returns at once.
pub fn handle<C: CommandFactory>(own: Option<Kind>) {
    if std::env::var_os(VAR).is_none() {
        return;
    }
    let _ = TOOL.set(Tool {
        command: C::command,
        own,
    });
    let name = C::command().get_name().to_owned();
    // The scripts call the tool by name (found in PATH), not the path it was built at.
    CompleteEnv::with_factory(C::command)
        .var(VAR)
        .completer(name)
        .complete();
}

pub fn networks() -> Vec<CompletionCandidate> {
    candidates(Some(Kind::Network))
}

pub fn groups() -> Vec<CompletionCandidate> {
    candidates(Some(Kind::Group))
}

pub fn nodes() -> Vec<CompletionCandidate> {
    candidates(Some(Kind::Node))
}

pub fn instances() -> Vec<CompletionCandidate> {
    candidates(Some(Kind::Instance))
}

/// Names of the answering tool's own objects (shared argument sets such as tags').
pub fn own() -> Vec<CompletionCandidate> {
    candidates(TOOL.get().and_then(|t| t.own))
}

/// `gnt-network connect NETWORK [GROUP…]`: one list of words, a network first.
pub fn network_then_groups() -> Vec<CompletionCandidate> {
    let typed = TOOL.get().and_then(typed_matches);
    let before = typed
        .as_ref()
        .and_then(|m| m.subcommand_matches("connect"))
        .and_then(|m| m.get_many::<String>("args"))
        .map_or(0, Iterator::count);
    candidates(Some(if before == 0 {
        Kind::Network
    } else {
        Kind::Group
    }))
}

fn candidates(kind: Option<Kind>) -> Vec<CompletionCandidate> {
    let Some((kind, tool)) = kind.zip(TOOL.get()) else {
        return Vec::new();
    };
    let Some(global) = typed_matches(tool).and_then(|m| Global::from_arg_matches(&m).ok()) else {
        return Vec::new();
    };
    let typed = typed_prefix();
    // With --store (or NETCONF_STORE) the names come from etcd, within STORE_BUDGET; a
    // read there never writes.
    let at = match &global.store {
        Some(url) => Location::Etcd(url.clone()),
        None => Location::File(global.config.clone()),
    };
    let read = open_for_completion(&at, STORE_BUDGET).read_versioned();
    match read {
        Ok((cfg, _)) => names(&cfg, kind, &typed)
            .into_iter()
            .map(CompletionCandidate::new)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// What was typed of the value being completed. The engine keeps only the candidates that
/// start with it; dropping the others before sorting keeps a TAB after a few letters fast
/// among 10,000 instances. An option word without `=` (`-nnode1`) filters nothing here.
fn typed_prefix() -> String {
    let args: Vec<OsString> = std::env::args_os().collect();
    let before = before_cursor(&args, std::env::var("_CLAP_COMPLETE_INDEX").ok());
    let Some(dashes) = args.iter().position(|a| a == "--") else {
        return String::new();
    };
    let word = args
        .get(dashes + 1 + before.len())
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_default();
    match word.strip_prefix('-') {
        Some(opt) => opt
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default(),
        None => word,
    }
}

/// The names of one kind in `cfg` that start with `prefix`, in Ganeti's natural order.
pub fn names(cfg: &ClusterConfig, kind: Kind, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = match kind {
        Kind::Network => cfg.networks.values().map(|n| n.name.to_string()).collect(),
        Kind::Group => cfg
            .nodegroups
            .values()
            .map(|g| g.name.to_string())
            .collect(),
        Kind::Node => cfg.nodes.values().map(|n| n.name.to_string()).collect(),
        Kind::Instance => cfg.instances.names(),
    };
    v.retain(|n| n.starts_with(prefix));
    nice_sorted(v)
}

/// The words typed before the one being completed (the engine hands them over after
/// `--`), parsed as far as they go: the global options (`--config`, and what the
/// environment gives) and the values given so far.
fn typed_matches(tool: &Tool) -> Option<ArgMatches> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let words = before_cursor(&args, std::env::var("_CLAP_COMPLETE_INDEX").ok());
    if words.is_empty() {
        return None;
    }
    (tool.command)()
        .ignore_errors(true)
        .try_get_matches_from(words)
        .ok()
}

/// The words after the engine's `--` up to (not including) the one under the cursor: at
/// `index` when the shell tells it (bash, zsh), else the last one (fish).
fn before_cursor(args: &[OsString], index: Option<String>) -> Vec<OsString> {
    let Some(dashes) = args.iter().position(|a| a == "--") else {
        return Vec::new();
    };
    let words = &args[dashes + 1..];
    let at = index
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(words.len().saturating_sub(1))
        .min(words.len().saturating_sub(1));
    words[..at].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_word_under_the_cursor_and_those_after_it_are_not_parsed() {
        let args = os(&[
            "gnt-network",
            "--",
            "gnt-network",
            "info",
            "--config=/x",
            "more",
        ]);
        assert_eq!(
            before_cursor(&args, None),
            os(&["gnt-network", "info", "--config=/x"])
        );
        assert_eq!(
            before_cursor(&args, Some("2".into())),
            os(&["gnt-network", "info"])
        );
        // An index past the end (a shell's off-by-one) still leaves the cursor word out.
        assert_eq!(
            before_cursor(&args, Some("9".into())),
            os(&["gnt-network", "info", "--config=/x"])
        );
        assert!(before_cursor(&os(&["gnt-network"]), None).is_empty());
    }
}
