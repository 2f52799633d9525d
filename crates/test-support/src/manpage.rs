//! The parts of the man pages that clap knows: each page's SYNOPSIS and the synopsis
//! line of every command, rendered in roff from the `clap::Command` of the tool and spliced
//! into `man/*.8` between marker comments, and the defaults the pages state, checked against
//! clap's. The prose around them stays hand-written.
//!
//! Each tool's `cargo run -p <crate> --example regen-man-<crate>` rewrites its pages
//! ([`regen`]); its man page test fails while a page is stale ([`stale`]) or states another
//! default than clap's ([`wrong_defaults`]). Only tests and examples use this: the tools do
//! not link it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
/// arguments (a tool without commands: its options and arguments); and the help and
/// version forms.
pub fn tool_synopsis(tool: &Command) -> Vec<String> {
    let name = tool.get_name();
    let mut out = vec![format!(".B {name}")];
    for a in tool
        .get_arguments()
        .filter(|a| shown(a) && !a.is_positional())
    {
        out.extend(option_lines(a));
    }
    if tool.has_subcommands() {
        out.extend([
            ".I command".to_owned(),
            ".RI [ options ]".to_owned(),
            ".RI [ arguments ]".to_owned(),
        ]);
    } else {
        out.extend(
            tool.get_positionals()
                .filter(|a| shown(a))
                .map(positional_line),
        );
    }
    out.extend([".PP".to_owned(), format!(".B {name}")]);
    out.push(if tool.get_version().is_some() {
        r#".BR \-\-help " | " \-\-version"#.to_owned()
    } else {
        r".B \-\-help".to_owned()
    });
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

/// `man/NAME.8` of the workspace.
pub fn page_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../man")
        .join(format!("{name}.8"))
}

/// Rewrites the generated blocks of each tool's page (`man/NAME.8`); what the
/// `regen-man-<crate>` examples run. Prints each page it changes and each page it cannot.
pub fn regen(tools: &[(&str, Command)]) -> ExitCode {
    let mut failed = false;
    for (name, tool) in tools {
        let path = page_path(name);
        let result = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|page| {
                let new = splice(&page, tool)?;
                if new != page {
                    std::fs::write(&path, new).map_err(|e| e.to_string())?;
                    println!("rewrote {}", path.display());
                }
                Ok(())
            });
        if let Err(e) = result {
            eprintln!("{}: {e}", path.display());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What is stale in each tool's page: a page without a generated SYNOPSIS, a command
/// without a generated synopsis (unless `hand_written` names it as `(page, command)`), a
/// block that differs from what clap renders now, a marker that names nothing.
pub fn stale(tools: &[(&str, Command)], hand_written: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, tool) in tools {
        let page = match std::fs::read_to_string(page_path(name)) {
            Ok(p) => p,
            Err(e) => {
                out.push(format!("{name}.8: {e}"));
                continue;
            }
        };
        let blocks: Vec<&str> = page.lines().filter_map(|l| l.strip_prefix(BEGIN)).collect();
        if !blocks.contains(&"synopsis") {
            out.push(format!("{name}.8: no generated SYNOPSIS"));
        }
        for sub in tool
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(Command::get_name)
        {
            let block = format!("command {sub}");
            if !blocks.contains(&block.as_str()) && !hand_written.contains(&(*name, sub)) {
                out.push(format!("{name}.8: no generated synopsis of {sub}"));
            }
        }
        match splice(&page, tool) {
            Ok(new) if new == page => {}
            Ok(_) => out.push(format!("{name}.8: generated blocks differ from clap")),
            Err(e) => out.push(format!("{name}.8: {e}")),
        }
    }
    out
}

/// The page's text with font changes and roff escapes removed, so that `\-\-dry\-run`
/// reads `--dry-run`.
pub fn plain(roff: &str) -> String {
    let mut s = roff.to_owned();
    for esc in [r"\fB", r"\fI", r"\fR", r"\fP", r"\c", r"\&", r"\:", r"\%"] {
        s = s.replace(esc, "");
    }
    s.replace(r"\-", "-")
        .replace(r"\e", "\\")
        .replace(r"\(aq", "'")
        .replace(r"\(dq", "\"")
}

/// `word` occurs in `text` not as part of a longer word or option (`-d` is not found in
/// `--dry-run`, nor `text` in `context`).
fn mentions(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/');
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The lines of a section (`.SH TITLE`) or, with `sub`, of the `.SS sub` subsection of
/// COMMANDS; `None` when the page has none.
fn scope<'a>(lines: &[&'a str], title: &str, sub: Option<&str>) -> Option<Vec<&'a str>> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let start = lines
        .iter()
        .position(|l| l.strip_prefix(".SH ").is_some_and(|t| unquote(t) == title))?;
    let section = &lines[start + 1..];
    let section = &section[..section
        .iter()
        .position(|l| l.starts_with(".SH "))
        .unwrap_or(section.len())];
    let Some(sub) = sub else {
        return Some(section.to_vec());
    };
    let at = section
        .iter()
        .position(|l| l.strip_prefix(".SS ").is_some_and(|t| unquote(t) == sub))?;
    let rest = &section[at + 1..];
    let end = rest
        .iter()
        .position(|l| l.starts_with(".SS "))
        .unwrap_or(rest.len());
    Some(rest[..end].to_vec())
}

/// The `.TP` entries of `lines` whose tag names `opt`: tag and body, up to the next
/// paragraph or heading.
fn entries(lines: &[&str], opt: &[String]) -> Vec<String> {
    let ends = |l: &str| {
        matches!(l, ".TP" | ".PP" | ".LP" | ".P") || l.starts_with(".SS ") || l.starts_with(".SH ")
    };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(tag) = lines.get(i + 1).filter(|_| *l == ".TP") else {
            continue;
        };
        if !opt.iter().any(|o| mentions(tag, o)) {
            continue;
        }
        let body = lines[i + 2..].iter().take_while(|l| !ends(l));
        out.push(
            std::iter::once(*tag)
                .chain(body.copied())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out
}

/// Defaults the page states otherwise than clap. For every option with a clap default
/// (`default_value`): the `.TP` entries naming it (in OPTIONS for the tool's own options,
/// in the command's `.SS` of COMMANDS for a command's, or that whole subsection when no entry
/// names it) must state it, and every one that speaks of a default must name clap's value.
pub fn wrong_defaults(name: &str, page: &str, tool: &Command) -> Vec<String> {
    let text = plain(page);
    let lines: Vec<&str> = text.lines().collect();
    let mut tool = tool.clone();
    tool.build();
    let mut out = Vec::new();
    let mut check = |sub: Option<&str>, a: &Arg| {
        let values: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        // A flag's implicit `false` is no default a page states.
        if values.is_empty() || !takes_value(a) || !shown(a) || a.is_positional() {
            return;
        }
        let value = values.join(",");
        let spell: Vec<String> = a
            .get_short()
            .map(|s| format!("-{s}"))
            .into_iter()
            .chain(a.get_long().map(|l| format!("--{l}")))
            .collect();
        let what = format!(
            "{name}.8 {}{}: default {value}",
            sub.map_or(String::new(), |s| format!("{s} ")),
            spell.join("/")
        );
        let Some(scope) = scope(
            &lines,
            if sub.is_some() { "COMMANDS" } else { "OPTIONS" },
            sub,
        ) else {
            out.push(format!("{what}: no section to state it in"));
            return;
        };
        let mut texts = entries(&scope, &spell);
        if texts.is_empty() {
            texts.push(scope.join(" "));
        }
        let says_default = |t: &str| t.to_lowercase().contains("default");
        if texts
            .iter()
            .any(|t| says_default(t) && !mentions(t, &value))
        {
            out.push(format!("{what}: the page states another"));
        } else if !texts.iter().any(|t| mentions(t, &value)) {
            out.push(format!("{what}: not stated"));
        }
    };
    for a in tool.get_arguments() {
        check(None, a);
    }
    for sub in tool.get_subcommands().filter(|s| !s.is_hide_set()) {
        for a in sub.get_arguments().filter(|a| !a.is_global_set()) {
            check(Some(sub.get_name()), a);
        }
    }
    out
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

    /// A tool without commands: nfdhcpd, snf-dnshook.
    #[derive(Parser)]
    #[command(name = "d", version)]
    struct Daemon {
        #[arg(short, long, value_name = "FILE", default_value = "/etc/d.toml")]
        config: String,
        #[arg(short, long)]
        foreground: bool,
    }

    #[test]
    fn a_tool_without_commands_lists_its_options() {
        assert_eq!(
            tool_synopsis(&Daemon::command()),
            [
                ".B d",
                r".RB [ \-c | \-\-config",
                ".IR FILE ]",
                r".RB [ \-f | \-\-foreground ]",
                ".PP",
                ".B d",
                r#".BR \-\-help " | " \-\-version"#,
            ]
        );
    }

    #[test]
    fn a_stated_default_must_be_clap_s() {
        let page = |default: &str| {
            format!(
                ".SH OPTIONS\n.TP\n.BI \\-c \" FILE\"\nThe file (default\n.IR {default} ).\n.TP\n.B \\-f\nStay.\n.SH FILES\n"
            )
        };
        let tool = Daemon::command();
        assert!(wrong_defaults("d", &page(r"/etc/d.toml"), &tool).is_empty());
        assert_eq!(
            wrong_defaults("d", &page(r"/etc/e.toml"), &tool),
            ["d.8 -c/--config: default /etc/d.toml: the page states another"]
        );
        // Not a longer path that begins with it.
        assert!(!wrong_defaults("d", &page(r"/etc/d.toml/x"), &tool).is_empty());
        let unstated = ".SH OPTIONS\n.TP\n.BI \\-\\-config \" FILE\"\nThe file.\n";
        assert_eq!(
            wrong_defaults("d", unstated, &tool),
            ["d.8 -c/--config: default /etc/d.toml: not stated"]
        );
        // A command's option is looked for in its subsection of COMMANDS.
        let cmd = Cli::command().subcommand(
            Command::new("show").arg(
                Arg::new("format")
                    .long("output-format")
                    .default_value("text"),
            ),
        );
        let page = ".SH COMMANDS\n.SS show\n.TP\n.B \\-\\-output\\-format\n.B json\n(the default) or yaml.\n.SH FILES\n";
        assert_eq!(
            wrong_defaults("t", page, &cmd),
            ["t.8 show --output-format: default text: the page states another"]
        );
        assert!(
            wrong_defaults(
                "t",
                &page.replace("json\n(the default) or yaml", "text\n(the default) or json"),
                &cmd
            )
            .is_empty()
        );
    }
}
