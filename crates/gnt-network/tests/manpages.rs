//! The man pages in `man/` against the binaries: every subcommand and every option that
//! `--help` shows is documented in the right place, every `list` field with its title, and
//! the pages render without a single groff or man warning.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use gnt_network::table::Field;
use netconf_test_support::manpage::{page_path, plain};

/// The five binaries, their pages and their `list` fields (none: no `list` command).
const TOOLS: [(&str, &str, &[Field]); 5] = [
    (
        "gnt-network",
        env!("CARGO_BIN_EXE_gnt-network"),
        &gnt_network::network_cli::FIELDS,
    ),
    (
        "gnt-group",
        env!("CARGO_BIN_EXE_gnt-group"),
        &gnt_network::group_cli::FIELDS,
    ),
    (
        "gnt-node",
        env!("CARGO_BIN_EXE_gnt-node"),
        &gnt_network::node_cli::FIELDS,
    ),
    (
        "gnt-instance",
        env!("CARGO_BIN_EXE_gnt-instance"),
        &gnt_network::instance_cli::FIELDS,
    ),
    ("gnt-cluster", env!("CARGO_BIN_EXE_gnt-cluster"), &[]),
];

fn help(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .arg("--help")
        // The help text must not depend on the caller's environment or terminal.
        .env_remove("NETCONF_CONFIG")
        .env("COLUMNS", "100")
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "{bin} {args:?} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The lines of one `Name:` block of clap's help (up to the next blank line).
fn block<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// Subcommand names of `<bin> --help` (clap's own `help` excluded). Names sit at exactly
/// two spaces; wrapped descriptions are indented further.
fn subcommands(help: &str) -> Vec<String> {
    block(help, "Commands:")
        .into_iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect()
}

/// Options of one help text as (short, long): `  -d, --debug`, `      --config <FILE>`.
/// Description lines (also wrapped ones) are indented further and never match.
fn options(help: &str) -> Vec<(Option<String>, Option<String>)> {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect()
    };
    let mut out = Vec::new();
    for line in help.lines() {
        let (short, rest) = if let Some(r) = line.strip_prefix("  -")
            && !r.starts_with('-')
        {
            let s = format!("-{}", word(r));
            (Some(s), r.split_once(", ").map(|(_, l)| l.trim_start()))
        } else if line.starts_with("      --") {
            (None, Some(&line[6..]))
        } else {
            continue;
        };
        let long = rest
            .and_then(|r| r.strip_prefix("--"))
            .map(|r| format!("--{}", word(r)));
        out.push((short, long));
    }
    out
}

/// A parsed page: `.SH` sections, and the `.SS` subsections of COMMANDS.
struct Page {
    name: String,
    text: String,
    sections: Vec<(String, String)>,
    commands: Vec<(String, String)>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_owned()
}

impl Page {
    fn load(name: &str) -> Page {
        let path = page_path(name);
        let roff =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = plain(&roff);
        let mut sections: Vec<(String, String)> = Vec::new();
        let mut commands: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix(".SH ") {
                sections.push((unquote(h), String::new()));
                continue;
            }
            let Some((title, body)) = sections.last_mut() else {
                continue;
            };
            body.push_str(line);
            body.push('\n');
            if title == "COMMANDS" {
                if let Some(h) = line.strip_prefix(".SS ") {
                    commands.push((unquote(h), String::new()));
                } else if let Some((_, b)) = commands.last_mut() {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
        Page {
            name: name.to_owned(),
            text,
            sections,
            commands,
        }
    }

    fn section(&self, title: &str) -> &str {
        self.sections
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, b)| b.as_str())
            .unwrap_or_else(|| panic!("{}.8 has no section {title}", self.name))
    }

    fn command(&self, sub: &str) -> Option<&str> {
        self.commands
            .iter()
            .find(|(t, _)| t == sub)
            .map(|(_, b)| b.as_str())
    }
}

/// `opt` occurs in `text` as a whole option, not inside a longer one (`-d` is not found
/// in `--dry-run`, nor `--net` in `--network`).
fn mentions(text: &str, opt: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(opt).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + opt.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[test]
fn help_parsers_read_clap_layouts() {
    let h = "Commands:\n  add   Add\n  modify  Change: --net add:P, --net\n          IDX:remove\n  help  Help\n\nOptions:\n      --config <FILE>  The file\n                       more --not-an-option\n  -d, --debug          Debug\n  -m, --mac-prefix <P> Prefix\n";
    assert_eq!(subcommands(h), ["add", "modify"]);
    assert_eq!(
        options(h),
        [
            (None, Some("--config".to_owned())),
            (Some("-d".to_owned()), Some("--debug".to_owned())),
            (Some("-m".to_owned()), Some("--mac-prefix".to_owned())),
        ]
    );
    assert!(mentions("see --net and -d.", "--net"));
    assert!(!mentions("--network6 and --dry-run", "--network"));
    assert!(!mentions("--dry-run", "-d"));
    assert_eq!(plain(r"\fB\-\-dry\-run\fR"), "--dry-run");
    assert_eq!(plain(r"node\(aqs"), "node's");
}

#[test]
fn every_subcommand_and_option_of_help_is_documented() {
    let mut missing = Vec::new();
    for (name, bin, _) in TOOLS {
        let page = Page::load(name);
        let top = help(bin, &[]);
        let global = options(&top);
        let global_text = page.section("OPTIONS");
        for (short, long) in &global {
            for opt in [short, long].into_iter().flatten() {
                if !mentions(global_text, opt) {
                    missing.push(format!("{name}.8 OPTIONS: {opt}"));
                }
            }
        }
        let subs = subcommands(&top);
        assert!(!subs.is_empty(), "{name} --help lists no commands");
        for (doc, _) in &page.commands {
            if !subs.contains(doc) {
                missing.push(format!("{name}.8 documents `{doc}`, which {name} lacks"));
            }
        }
        for sub in &subs {
            let Some(text) = page.command(sub) else {
                missing.push(format!("{name}.8 COMMANDS: no .SS {sub}"));
                continue;
            };
            for (short, long) in options(&help(bin, &[sub])) {
                for opt in [short, long].into_iter().flatten() {
                    let is_global = global
                        .iter()
                        .any(|(s, l)| s.as_ref() == Some(&opt) || l.as_ref() == Some(&opt));
                    if !(mentions(text, &opt) || is_global && mentions(global_text, &opt)) {
                        missing.push(format!("{name}.8 {sub}: {opt}"));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}

/// `gnt-instance list`'s per-NIC fields are documented once, as `nic.X/N` with the title
/// `NicX/N`.
#[test]
fn every_indexed_nic_field_is_documented() {
    let page = Page::load("gnt-instance");
    let list = page.command("list").expect("a list command");
    let mut missing = Vec::new();
    for f in gnt_network::instance_cli::NIC_INDEXED
        .iter()
        .filter(|f| f.name.ends_with("/0"))
    {
        let (name, title) = (
            f.name.trim_end_matches("/0"),
            f.title.trim_end_matches("/0"),
        );
        let entry = format!(".BI {name}/ N\n.IR {title}/N\n");
        if !list.contains(&entry) {
            missing.push(entry);
        }
    }
    assert_eq!(
        gnt_network::instance_cli::NIC_INDEXED.len(),
        gnt_network::instance_cli::NIC_FIELDS_PER_INDEX * netconf_cluster::ops::instance::MAX_NICS
    );
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}

#[test]
fn every_list_field_is_documented_with_its_title() {
    let mut missing = Vec::new();
    for (name, _, fields) in TOOLS.into_iter().filter(|t| !t.2.is_empty()) {
        let page = Page::load(name);
        let list = page.command("list").expect("a list command");
        for f in fields {
            // `.TP` / `.B name` / `.I Title` / description.
            let entry = format!(".B {}\n.I {}\n", f.name, f.title);
            let Some(at) = list.find(&entry) else {
                missing.push(format!("{name}.8 list: {} ({})", f.name, f.title));
                continue;
            };
            let desc: String = list[at + entry.len()..]
                .lines()
                .take_while(|l| !l.starts_with(".TP"))
                .collect::<Vec<_>>()
                .join(" ");
            let desc = desc.split_whitespace().collect::<Vec<_>>().join(" ");
            if !desc.contains(f.doc) {
                missing.push(format!(
                    "{name}.8 list: {} lacks its description `{}`",
                    f.name, f.doc
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Fields beyond Ganeti's stay out of the full `list-fields`, not out of the page.
#[test]
fn beyond_ganeti_list_fields_are_documented_with_their_title() {
    let page = Page::load("gnt-network");
    let list = page.command("list").expect("a list command");
    for f in gnt_network::network_cli::EXTRA_FIELDS {
        let entry = format!(".B {}\n.I {}\n\\(em {}", f.name, f.title, f.doc);
        assert!(list.contains(&entry), "gnt-network.8 list: {entry}");
    }
}

#[test]
fn pages_have_the_debian_sections_and_name_their_files() {
    let required = [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "HOOKS",
        "COMPATIBILITY WITH GANETI",
        "SEE ALSO",
    ];
    for (name, _, _) in TOOLS {
        let page = Page::load(name);
        let raw = std::fs::read_to_string(page_path(name)).unwrap();
        let th = raw
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_else(|| panic!("{name}.8: no .TH"));
        assert!(
            th.starts_with(&format!(".TH {} 8 ", name.to_uppercase())),
            "{name}.8: {th}"
        );
        let titles: Vec<&str> = page.sections.iter().map(|(t, _)| t.as_str()).collect();
        for s in required {
            assert!(titles.contains(&s), "{name}.8 lacks section {s}");
        }
        // whatis(1) and lintian read the NAME line as `name \- description`.
        let name_line = page.section("NAME").trim();
        assert!(
            name_line.starts_with(&format!("{name} - ")),
            "{name}.8 NAME: {name_line}"
        );
        for var in ["NETCONF_CONFIG", "NETCONF_HOOKS_DIR"] {
            assert!(page.section("ENVIRONMENT").contains(var), "{name}.8: {var}");
        }
        for f in [
            "/var/lib/gnt-network/config.data\n",
            "/var/lib/gnt-network/config.data.lock",
            "/var/lib/gnt-network/config.data.cache",
            "/etc/ganeti/hooks",
        ] {
            assert!(page.section("FILES").contains(f), "{name}.8 FILES: {f}");
        }
        // 14 is the exit status of `list` with an unknown field.
        let codes: &[&str] = if TOOLS.iter().any(|t| t.0 == name && t.2.is_empty()) {
            &["0", "1", "2"]
        } else {
            &["0", "1", "2", "14"]
        };
        for code in codes {
            assert!(
                page.section("EXIT STATUS")
                    .contains(&format!(".B {code}\n")),
                "{name}.8 EXIT STATUS: {code}"
            );
        }
        for other in TOOLS.iter().map(|t| t.0).filter(|o| *o != name) {
            assert!(
                page.section("SEE ALSO").contains(&format!("{other} (8)")),
                "{name}.8 SEE ALSO: {other}"
            );
        }
        // Source hygiene: roff treats these as requests or paragraph breaks.
        for (i, l) in raw.lines().enumerate() {
            assert!(!l.is_empty(), "{name}.8:{}: empty line", i + 1);
            assert!(
                !l.ends_with([' ', '\t']),
                "{name}.8:{}: trailing space",
                i + 1
            );
            assert!(!l.starts_with('\''), "{name}.8:{}: starts with '", i + 1);
        }
        assert!(!page.text.contains("TODO"), "{name}.8 has a TODO");
    }
}

/// Runs `cmd`; `None` when the program is not installed.
fn run_quiet(cmd: &mut Command) -> Option<std::process::Output> {
    match cmd.output() {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

#[test]
fn pages_render_without_warnings() {
    let mut rendered = 0;
    for (name, _, _) in TOOLS {
        let path = page_path(name);
        // groff with every warning enabled.
        if let Some(o) = run_quiet(
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&path),
        ) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && err.trim().is_empty(),
                "groff on {name}.8:\n{err}"
            );
            rendered += 1;
        }
        // lintian's own check (its manpage-has-errors-from-man tag).
        if let Some(o) = run_quiet(
            Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
                .arg(&path)
                .env("LC_ALL", "C.UTF-8")
                .env("MANROFFSEQ", "")
                .env("MANWIDTH", "80"),
        ) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && err.trim().is_empty(),
                "man --warnings on {name}.8:\n{err}"
            );
            rendered += 1;
        }
        // lintian's manpage-has-bad-whatis-entry: whatis must parse the NAME section.
        if let Some(o) = run_quiet(Command::new("lexgrog").arg(&path)) {
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && out.contains(&format!(": \"{name} - ")),
                "lexgrog on {name}.8: {out}"
            );
            rendered += 1;
        }
    }
    if rendered == 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP pages_render_without_warnings: neither groff, man nor lexgrog is installed (Debian: groff-base, man-db)"
        );
    }
}

/// A scratch configuration directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("manpages-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("hooks")).unwrap();
        Scratch(d)
    }

    /// Runs a tool on this configuration (no hooks) and returns its standard output.
    fn run(&self, bin: &str, args: &[&str]) -> String {
        let out = Command::new(bin)
            .args(args)
            .env("NETCONF_CONFIG", self.0.join("config.data"))
            .env("NETCONF_HOOKS_DIR", self.0.join("hooks"))
            .output()
            .expect("run the binary");
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first `.nf` … `.fi` example of a COMMANDS subsection, as printed text.
fn example(page: &str, sub: &str) -> String {
    let text = Page::load(page)
        .command(sub)
        .unwrap_or_else(|| panic!("{page}.8: no {sub}"))
        .to_owned();
    let body = text
        .split_once(".nf\n")
        .and_then(|(_, b)| b.split_once(".fi\n"))
        .map(|(b, _)| b)
        .unwrap_or_else(|| panic!("{page}.8 {sub}: no example"));
    body.lines().map(|l| format!("{l}\n")).collect()
}

/// Blanks what differs between runs: UUIDs, serial numbers and times.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.trim_end();
            let key = l.split_once(": ").map(|(k, _)| k.trim());
            match key {
                Some("UUID" | "Serial number" | "Creation time" | "Modification time") => {
                    format!("{}: X", l.split_once(": ").unwrap().0)
                }
                Some("group") => l.split(" (UUID").next().unwrap().to_owned(),
                _ => l.to_owned(),
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn info_examples_are_real_output() {
    let [(_, net, _), _, (_, node, _), (_, inst, _), _] = TOOLS;
    let s = Scratch::new("info");
    s.run(node, &["add", "--primary-ip", "203.0.113.5", "node1"]);
    s.run(
        net,
        &[
            "add",
            "--network",
            "192.0.2.0/28",
            "--gateway",
            "192.0.2.1",
            "--network6",
            "2001:db8:1::/64",
            "--add-reserved-ips",
            "192.0.2.10",
            "net1",
        ],
    );
    s.run(net, &["connect", "-N", "mode=bridged,link=br0", "net1"]);
    s.run(
        inst,
        &[
            "add",
            "-n",
            "node1",
            "--net",
            "0:ip=pool,network=net1,mac=aa:00:00:0b:b6:83",
            "inst1",
        ],
    );
    assert_eq!(
        normalize(&s.run(net, &["info", "net1"])),
        normalize(&example("gnt-network", "info"))
    );
    assert_eq!(
        normalize(&s.run(inst, &["info", "inst1"])),
        normalize(&example("gnt-instance", "info"))
    );
}

/// The pages' SYNOPSIS and every command's synopsis are rendered from clap (see
/// `netconf_test_support::manpage`): a page whose generated blocks differ from what the
/// current command line gives is stale. `gnt-network connect` keeps a hand-written synopsis:
/// it shows the old `NETWORK MODE LINK` form that clap reads as one list of words.
#[test]
fn synopses_are_generated_from_clap() {
    let stale = netconf_test_support::manpage::stale(
        &gnt_network::manpage::tools(),
        &[("gnt-network", "connect")],
    );
    assert!(
        stale.is_empty(),
        "stale generated synopses: run `cargo run -p gnt-network --example regen-man-gnt-network`:\n{}",
        stale.join("\n")
    );
}

/// Where a page states the default of an option that has one in clap (`--config`,
/// `--output-format`), it is clap's.
#[test]
fn stated_defaults_are_clap_defaults() {
    let mut wrong = Vec::new();
    for (name, tool) in gnt_network::manpage::tools() {
        let page = std::fs::read_to_string(page_path(name)).unwrap();
        wrong.extend(netconf_test_support::manpage::wrong_defaults(
            name, &page, &tool,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every example of the workspace has a name of its own (the man pages' `regen-man-<crate>`
/// among them): examples of all crates share one output directory, where two of one name
/// overwrite each other's binary (cargo's "output filename collision").
#[test]
fn example_names_are_unique_in_the_workspace() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen: Vec<(String, String)> = Vec::new();
    for c in std::fs::read_dir(&crates).unwrap().flatten() {
        let Ok(examples) = std::fs::read_dir(c.path().join("examples")) else {
            continue;
        };
        let owner = c.file_name().to_string_lossy().into_owned();
        for e in examples.flatten() {
            let p = e.path();
            // An example is `name.rs` or a directory `name/` with a main.rs.
            let name = match p.extension() {
                Some(x) if x == "rs" => p.file_stem(),
                None if p.join("main.rs").is_file() => p.file_name(),
                _ => continue,
            };
            let name = name.unwrap().to_string_lossy().into_owned();
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
                panic!("example {name} exists in {other} and in {owner}");
            }
            seen.push((name, owner.clone()));
        }
    }
    assert!(
        seen.iter().any(|(n, _)| n == "regen-man-gnt-network"),
        "{seen:?}"
    );
}
