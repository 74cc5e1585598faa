//! `hycod completions SHELL` and `hycod manpages DIR` against the clap definition: every
//! subcommand and each of its long options reaches the scripts and the rendered pages. Bash
//! completion is exercised by running the script's completion function in bash; the manual pages
//! are rendered with `man -l` (required under `CI=true`).

use std::collections::BTreeMap;
use std::process::{Command, Output};

use clap::CommandFactory;
use hycod::cli::Cli;

fn hycod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args(args)
        .output()
        .expect("hycod runs")
}

/// Every visible subcommand with its long options (without --help/--version).
fn subcommands() -> BTreeMap<String, Vec<String>> {
    Cli::command()
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| {
            let longs = sub
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .filter_map(|arg| arg.get_long())
                .map(|long| format!("--{long}"))
                .collect();
            (sub.get_name().to_owned(), longs)
        })
        .collect()
}

fn completion_script(shell: &str) -> String {
    let output = hycod(&["completions", shell]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 script")
}

/// What bash offers after `hycod WORDS… CURRENT<TAB>`, by running the generated `_hycod`.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("hycod.bash");
    std::fs::write(&script, completion_script("bash")).expect("script written");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let current = words.last().expect("a word");
    let previous = words.get(words.len().wrapping_sub(2)).unwrap_or(&"hycod");
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _hycod hycod '{current}' '{previous}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_every_subcommand_and_its_options() {
    let offered = bash_completes(&["hycod", ""]);
    for (name, longs) in subcommands() {
        assert!(offered.contains(&name), "{name} not offered: {offered:?}");
        let options = bash_completes(&["hycod", &name, "--"]);
        for long in longs {
            assert!(
                options.contains(&long),
                "{long} not offered after `hycod {name}`: {options:?}"
            );
        }
    }
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand_and_its_options() {
    let zsh = completion_script("zsh");
    let fish = completion_script("fish");
    assert!(zsh.starts_with("#compdef hycod"), "{zsh}");
    for (name, longs) in subcommands() {
        assert!(zsh.contains(&format!("\n'{name}:")), "zsh lacks {name}");
        assert!(
            fish.contains(&format!("__fish_hycod_needs_command\" -f -a \"{name}\"")),
            "fish lacks {name}"
        );
        for long in longs {
            let repeatable = format!("'*{long}");
            assert!(
                zsh.contains(&format!("'{long}")) || zsh.contains(&repeatable),
                "zsh lacks {name} {long}"
            );
            let option = format!("__fish_hycod_using_subcommand {name}\" -l {}", &long[2..]);
            assert!(fish.contains(&option), "fish lacks {name} {long}");
        }
    }
}

#[test]
fn completions_rejects_an_unknown_shell() {
    let output = hycod(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'tcsh'") && stderr.contains("bash"),
        "{stderr}"
    );
}

/// `man -l PAGE` as plain text, wide enough that no option name is hyphenated.
fn render(page: &std::path::Path) -> Option<String> {
    let output = match Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "250")
        .env("MAN_KEEP_FORMATTING", "")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .output()
    {
        Ok(output) => output,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping the rendering: man is not available ({error})");
            return None;
        }
        Err(error) => panic!("man is required under CI=true: {error}"),
    };
    assert!(
        output.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn manpages_writes_one_rendering_page_per_subcommand_with_its_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let output = hycod(&["manpages", out.to_str().expect("UTF-8 path")]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut expected = vec!["hycod.1".to_owned()];
    expected.extend(subcommands().keys().map(|name| format!("hycod-{name}.1")));
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("directory created")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    written.sort();
    assert_eq!(written, expected);

    let top = std::fs::read_to_string(out.join("hycod.1")).expect("hycod.1");
    assert!(top.contains(".TH hycod 1"), "{top}");
    for (name, longs) in subcommands() {
        let page = out.join(format!("hycod-{name}.1"));
        let roff = std::fs::read_to_string(&page).expect("page");
        assert!(roff.contains(&format!(".TH hycod-{name} 1")), "{roff}");
        assert!(
            top.contains(&format!("hycod\\-{name}(1)")),
            "hycod.1 lists {name}"
        );
        let Some(text) = render(&page) else { continue };
        assert!(text.contains(&format!("hycod-{name} - ")), "{text}");
        for long in longs {
            assert!(
                text.contains(&long),
                "man hycod-{name} lacks {long}:\n{text}"
            );
        }
    }
}
