//! The parts of the man pages that clap knows: each page's SYNOPSIS and the synopsis
//! line of every command, rendered in roff from the `clap::Command` of the tool and spliced
//! into `man/*.8` between marker comments. The prose around them stays hand-written.
//!
//! `cargo run -p gnt-network --example regen-man` rewrites the pages; the test
//! `synopses_are_generated_from_clap` (tests/manpages.rs) fails while a page is stale.

use clap::{Arg, ArgAction, Command};

/// Opens a generated block; the rest of the line names what is generated.
pub const BEGIN: &str = r#".\" BEGIN GENERATED "#;
/// Closes a generated block.
pub const END: &str = r#".\" END GENERATED"#;

/// `-` as roff prints a minus (what a user types), and no line starts a request.
fn esc(s: &str) -> String {
    s.replace('\\', r"\e").replace('-', r"\-")
}

fn value_name(a: &Arg) -> String {
    let id = a.get_id().as_str().to_uppercase();
    let name = a
        .get_value_names()
        .and_then(|v| v.first())
        .map_or_else(|| id.clone(), |n| n.to_string());
    // clap names the values of a list after its field (`networks`); a synopsis names one
    // value and marks the repetition (`[NETWORK ...]`).
    match name.strip_suffix('S') {
        Some(one) if name == id && repeats(a) && !one.is_empty() => one.to_owned(),
        _ => name,
    }
}

fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
}

fn repeats(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Append)
        || a.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// The option as typed: `\-m | \-\-mac\-prefix`, as alternating roff words.
fn spellings(a: &Arg) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(s) = a.get_short() {
        v.push(esc(&format!("-{s}")));
    }
    if let Some(l) = a.get_long() {
        v.push(esc(&format!("--{l}")));
    }
    v
}

/// One option of a synopsis: `.RB [ \-\-gateway` `.IR IP ]`, `.RB [ \-\-dry\-run ]`, or
/// without brackets when clap requires it.
fn option_lines(a: &Arg) -> Vec<String> {
    let names = spellings(a).join(" | ");
    let v = esc(&value_name(a));
    match (takes_value(a), a.is_required_set(), repeats(a)) {
        (false, _, _) => vec![format!(".RB [ {names} ]")],
        (true, false, false) => vec![format!(".RB [ {names}"), format!(".IR {v} ]")],
        (true, false, true) => vec![format!(".RB [ {names}"), format!(".IR {v} \" ...]\"")],
        (true, true, false) => vec![format!(".BR {names}"), format!(".I {v}")],
        (true, true, true) => vec![format!(".BR {names}"), format!(".IR {v} \" ...\"")],
    }
}

/// A positional argument: `.I NAME`, `.RI [ NAME ]`, `.RI [ NAME ...]`, `.IR NAME ...`.
fn positional_line(a: &Arg) -> String {
    let n = esc(&value_name(a));
    match (a.is_required_set(), repeats(a)) {
        (true, false) => format!(".I {n}"),
        (true, true) => format!(".IR {n} \" ...\""),
        (false, false) => format!(".RI [ {n} ]"),
        (false, true) => format!(".RI [ {n} \" ...]\""),
    }
}

fn shown(a: &Arg) -> bool {
    !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

/// The synopsis of `tool sub`: its own options (globals are in the page's SYNOPSIS) in the
/// order clap lists them, then its positional arguments.
pub fn command_synopsis(tool: &Command, sub: &Command) -> Vec<String> {
    // The pages write the tool's name with plain hyphens, as in their NAME line.
    let mut out = vec![format!(".B {} {}", tool.get_name(), esc(sub.get_name()))];
    let globals: Vec<&str> = tool
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().as_str())
        .collect();
    for a in sub.get_arguments().filter(|a| shown(a)) {
        if a.is_positional() || globals.contains(&a.get_id().as_str()) {
            continue;
        }
        out.extend(option_lines(a));
    }
    out.extend(
        sub.get_positionals()
            .filter(|a| shown(a))
            .map(positional_line),
    );
    out
}

/// The page's SYNOPSIS: the global options, then a command with its options and
/// arguments; and the help and version forms.
pub fn tool_synopsis(tool: &Command) -> Vec<String> {
    let name = tool.get_name();
    let mut out = vec![format!(".B {name}")];
    for a in tool
        .get_arguments()
        .filter(|a| shown(a) && !a.is_positional())
    {
        out.extend(option_lines(a));
    }
    out.extend([
        ".I command".to_owned(),
        ".RI [ options ]".to_owned(),
        ".RI [ arguments ]".to_owned(),
        ".PP".to_owned(),
        format!(".B {name}"),
        r#".BR \-\-help " | " \-\-version"#.to_owned(),
    ]);
    out
}

/// What a block's marker line names: `synopsis` (the page's) or `command SUB`.
fn block_lines(tool: &Command, what: &str) -> Option<Vec<String>> {
    if what == "synopsis" {
        return Some(tool_synopsis(tool));
    }
    let sub = what.strip_prefix("command ")?;
    let mut tool = tool.clone();
    tool.build();
    let sub = tool.find_subcommand(sub)?.clone();
    Some(command_synopsis(&tool, &sub))
}

/// Each gnt-* tool's page name and command.
pub fn tools() -> [(&'static str, Command); 5] {
    use clap::CommandFactory;
    [
        ("gnt-network", crate::network_cli::Cli::command()),
        ("gnt-group", crate::group_cli::Cli::command()),
        ("gnt-node", crate::node_cli::Cli::command()),
        ("gnt-instance", crate::instance_cli::Cli::command()),
        ("gnt-cluster", crate::cluster_cli::Cli::command()),
    ]
}

/// `page` with every generated block rendered anew from `tool`; an error names a marker
/// that names nothing or lacks its end.
pub fn splice(page: &str, tool: &Command) -> Result<String, String> {
    let mut out = String::with_capacity(page.len());
    let mut lines = page.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(what) = line.strip_prefix(BEGIN) else {
            continue;
        };
        let body = block_lines(tool, what.trim())
            .ok_or_else(|| format!("line {}: `{what}` names no part of the tool", i + 1))?;
        loop {
            match lines.next() {
                Some((_, l)) if l == END => break,
                Some(_) => {}
                None => return Err(format!("line {}: no `{END}`", i + 1)),
            }
        }
        for l in body {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Parser)]
    #[command(name = "t")]
    struct Cli {
        #[arg(long, global = true, value_name = "FILE")]
        config: Option<String>,
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        Add {
            #[arg(short = 'm', long, value_name = "XX:XX")]
            mac_prefix: Option<String>,
            #[arg(long = "net", value_name = "P")]
            net: Vec<String>,
            #[arg(long)]
            dry_run: bool,
            #[arg(long, hide = true)]
            submit: bool,
            #[arg(short = 'g', long, required = true)]
            group: String,
            name: String,
            more: Vec<String>,
        },
    }

    #[test]
    fn a_command_renders_options_then_arguments_without_globals_and_hidden() {
        let mut tool = Cli::command();
        tool.build();
        let add = tool.find_subcommand("add").unwrap();
        assert_eq!(
            command_synopsis(&tool, add),
            [
                ".B t add",
                r".RB [ \-m | \-\-mac\-prefix",
                ".IR XX:XX ]",
                r".RB [ \-\-net",
                r#".IR P " ...]""#,
                r".RB [ \-\-dry\-run ]",
                r".BR \-g | \-\-group",
                ".I GROUP",
                ".I NAME",
                r#".RI [ MORE " ...]""#,
            ]
        );
    }

    #[test]
    fn splice_replaces_only_the_marked_blocks() {
        let page = format!(".SH X\nprose\n{BEGIN}command add\nold\n{END}\n.PP\nmore prose\n");
        let got = splice(&page, &Cli::command()).unwrap();
        assert!(got.starts_with(&format!(".SH X\nprose\n{BEGIN}command add\n.B t add\n")));
        assert!(got.ends_with(&format!("{END}\n.PP\nmore prose\n")));
        assert_eq!(splice(&got, &Cli::command()).unwrap(), got);
        assert!(splice(&format!("{BEGIN}command nope\n{END}\n"), &Cli::command()).is_err());
        assert!(splice(&format!("{BEGIN}synopsis\n"), &Cli::command()).is_err());
    }
}
