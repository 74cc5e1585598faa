//! The repository stands on its own. Every `protocol §N` citation (in code, tests, docs and
//! scripts) names a section `docs/protocol.md` has, every `architecture §N` one a numbered section
//! of `docs/architecture.md`, every relative Markdown link in the documents reaches its file and
//! heading, every repository path the documents name in backticks exists, every section named
//! as `docs/x.md "Heading"` exists, and no file points at documents outside the repository or at issue-tracker numbers:
//! a reader who clones the project can follow every reference.
//!
//! Only text is read (a few MB), so this runs in well under a second.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What is scanned, relative to the repository root.
const SCANNED: &[&str] = &[
    "src",
    "tests",
    "docs",
    "benches",
    "loadtest",
    "fuzz",
    "examples",
    "dist",
    ".ci",
    "README.md",
];

/// Directories that hold build output, downloaded packages or generated inputs.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    "corpus",
    "artifacts",
    "__pycache__",
];

/// Documents a citation word points at.
const CITED_DOCS: &[(&str, &str)] = &[
    ("protocol", "docs/protocol.md"),
    ("architecture", "docs/architecture.md"),
];

/// Texts no file may contain: paths outside the repository and the old citation forms. Built
/// with `concat!` so that this file does not contain them itself.
const FORBIDDEN: &[&str] = &[
    concat!("../", "shared"),
    concat!("shared/", "docs"),
    concat!("/work/", "shared"),
    concat!("spec ", "§"),
    concat!("Spec ", "§"),
    concat!("design", ".md"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under the scanned paths, with its contents.
fn files() -> Vec<(PathBuf, String)> {
    fn walk(path: &Path, out: &mut Vec<(PathBuf, String)>) {
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if SKIPPED_DIRS.contains(&name) {
                return;
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .expect("read a scanned directory")
                .map(|e| e.expect("a directory entry").path())
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, out);
            }
        } else if let Ok(text) = std::fs::read_to_string(path) {
            out.push((path.to_path_buf(), text));
        }
    }
    let mut out = Vec::new();
    for scanned in SCANNED {
        let path = root().join(scanned);
        assert!(
            path.exists(),
            "{scanned} is listed as scanned but does not exist"
        );
        walk(&path, &mut out);
    }
    out
}

/// A section id at the start of `text`: `4.2`, `11`, or `Appendix A`.
fn section_id(text: &str) -> Option<String> {
    if let Some(rest) = text.strip_prefix("Appendix ") {
        let letter = rest.chars().next().filter(char::is_ascii_uppercase)?;
        return Some(format!("Appendix {letter}"));
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let id = text[..end].trim_end_matches('.');
    (!id.is_empty() && id.starts_with(|c: char| c.is_ascii_digit())).then(|| id.to_owned())
}

/// The lines of a Markdown document outside fenced code blocks, numbered from 1.
fn prose_lines(doc: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut in_code = false;
    doc.lines().enumerate().filter_map(move |(n, line)| {
        if line.starts_with("```") {
            in_code = !in_code;
            return None;
        }
        (!in_code).then_some((n + 1, line))
    })
}

/// The text of a Markdown heading line: `4.2 Framing` for `### 4.2 Framing`.
fn heading(line: &str) -> Option<&str> {
    let text = line.trim_start_matches('#');
    (text.len() < line.len() && text.starts_with(' ')).then(|| text.trim())
}

/// The run-in label of a paragraph: `File descriptors` for `**File descriptors.** Each …`.
fn label(line: &str) -> Option<&str> {
    let (label, _) = line.strip_prefix("**")?.split_once("**")?;
    Some(label.trim_end_matches('.'))
}

/// The numbered headings of a Markdown document (`## 4. …`, `### 4.2 …`, `## Appendix A …`)
/// and, per section, the numbers of its top-level numbered list items (`§11 item 7`).
fn sections(doc: &str) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<u32>>) {
    let mut ids = BTreeSet::new();
    let mut items: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut current = None;
    for (_, line) in prose_lines(doc) {
        if let Some(heading) = heading(line) {
            current = section_id(heading);
            ids.extend(current.clone());
        } else if let (Some(section), Some((number, _))) = (&current, line.split_once(". ")) {
            if let Ok(n) = number.parse() {
                items.entry(section.clone()).or_default().insert(n);
            }
        }
    }
    (ids, items)
}

/// One cited section: `("protocol", "4.2", None)`, or with a list item: `("protocol", "11",
/// Some(7))`.
type Citation = (&'static str, String, Option<u32>);

/// The citations in `text`: `protocol §4.2`, `protocol.md §4.2`, `protocol §3.2–§3.4`,
/// `protocol §5.1, §8.3 and §11 item 7`, `protocol Appendix A`, also with the `§` on the next
/// comment line.
fn citations(text: &str) -> Vec<Citation> {
    let mut out = Vec::new();
    for (word, _) in CITED_DOCS {
        for (at, _) in text.match_indices(word) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut rest = &text[at + word.len()..];
            rest = rest.strip_prefix(".md").unwrap_or(rest);
            let after_word = rest.trim_start_matches([' ', '\n', '/', '!', '#', '*']);
            if after_word.len() == rest.len() && !rest.is_empty() {
                continue;
            }
            rest = after_word;
            if let Some(id) = section_id(rest).filter(|id| id.starts_with("Appendix")) {
                out.push((*word, id, None));
                continue;
            }
            while let Some(after) = rest.strip_prefix('§') {
                let Some(id) = section_id(after) else { break };
                rest = &after[id.len()..];
                let item = rest
                    .strip_prefix(" item ")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok());
                out.push((*word, id, item));
                rest = rest.trim_start_matches(['.', ' ', ',', '–', '-', '/', '\n', '!']);
                rest = rest.strip_prefix("and ").unwrap_or(rest);
                rest = rest.trim_start_matches(['/', '!', '#', ' ']);
            }
        }
    }
    out
}

/// Whether `text` mentions an issue-tracker number: the word "issue" or "issues", in any case,
/// followed by a number, with a space, `-` or `#` between (the unit test shows the forms).
fn issue_reference(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    for (at, _) in lower.match_indices("issue") {
        if lower[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let rest = lower[at + "issue".len()..]
            .strip_prefix('s')
            .unwrap_or(&lower[at + 5..]);
        let rest = rest.strip_prefix([' ', '-']).unwrap_or(rest);
        let rest = rest.strip_prefix('#').unwrap_or(rest);
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = (at + 12).min(text.len());
            return Some(text.get(at..end).unwrap_or(&text[at..]));
        }
    }
    None
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_cited_section_exists() {
    let docs: BTreeMap<&str, _> = CITED_DOCS
        .iter()
        .map(|(word, doc)| {
            let text = std::fs::read_to_string(root().join(doc)).expect("a cited document");
            (*word, sections(&text))
        })
        .collect();
    let mut missing = Vec::new();
    let mut count = 0;
    for (path, text) in files() {
        for (word, id, item) in citations(&text) {
            count += 1;
            let (ids, items) = &docs[word];
            let item_missing =
                item.is_some_and(|n| !items.get(&id).is_some_and(|set| set.contains(&n)));
            if !ids.contains(&id) || item_missing {
                let item = item.map(|n| format!(" item {n}")).unwrap_or_default();
                missing.push(format!("{}: {word} §{id}{item}", relative(&path)));
            }
        }
    }
    assert!(
        count > 300,
        "only {count} citations found: the scanner is broken"
    );
    assert!(
        missing.is_empty(),
        "cited sections that do not exist:\n{}",
        missing.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, spaces as `-`, and only letters, digits, `_` and
/// `-` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a Markdown document's headings; a repeated heading gets `-1`, `-2`, ….
fn anchors(doc: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for heading in prose_lines(doc).filter_map(|(_, line)| heading(line)) {
        let base = anchor(heading);
        let count = seen.entry(base.clone()).or_default();
        out.insert(match *count {
            0 => base,
            n => format!("{base}-{n}"),
        });
        *count += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown line.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .filter(|target| !target.contains(' '))
        .collect()
}

#[test]
fn every_markdown_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (path, text) in files() {
        if path.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let linked = match file {
                    "" => path.clone(),
                    file => path.parent().expect("a file's directory").join(file),
                };
                let at = format!("{}:{n}: {target}", relative(&path));
                let Ok(doc) = std::fs::read_to_string(&linked) else {
                    if !linked.exists() {
                        broken.push(format!("{at}: no such file"));
                    }
                    continue;
                };
                if !fragment.is_empty() && !anchors(&doc).contains(fragment) {
                    broken.push(format!("{at}: no such heading"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: the scanner is broken"
    );
    assert!(
        broken.is_empty(),
        "links that lead nowhere:\n{}",
        broken.join("\n")
    );
}

/// Top-level folders whose paths the documents name as `` `src/daemon/listener/stream.rs` ``.
const PATH_ROOTS: &[&str] = &[
    "src/",
    "tests/",
    "benches/",
    "loadtest/",
    "fuzz/",
    "dist/",
    "examples/",
];

/// The repository paths written in backticks in a line: `` `src/io/tcp_pump.rs` ``, also with
/// a `:line` or `::item` suffix, which is dropped.
fn repository_paths(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| PATH_ROOTS.iter().any(|root| code.starts_with(root)))
        .filter(|code| !code.contains([' ', '*', '{', '<']))
        .map(|code| code.split(':').next().unwrap_or(code))
        .collect()
}

#[test]
fn every_repository_path_in_the_docs_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, text) in files() {
        if path.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            for named in repository_paths(line) {
                checked += 1;
                if !root().join(named).exists() {
                    missing.push(format!("{}:{}: {named}", relative(&path), n + 1));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} paths found: the scanner is broken"
    );
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// The text of `text` with line breaks and the comment markers that start lines removed, so that
/// a quotation wrapped over two comment lines reads as one.
fn flattened(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.trim_start();
            ["//!", "///", "//", "#"]
                .iter()
                .find_map(|marker| line.strip_prefix(marker))
                .unwrap_or(line)
                .trim()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sections named as `docs/relay.md "Idle cut"` or `operations.md, "Upgrade"`: (document
/// file name, quoted heading or bold paragraph label).
fn named_sections(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".md") {
        let name_start = text[..at]
            .rfind(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let rest = text[at + 3..].strip_prefix(',').unwrap_or(&text[at + 3..]);
        let Some(quoted) = rest.strip_prefix(" \"") else {
            continue;
        };
        let Some(end) = quoted.find('"') else {
            continue;
        };
        let heading = quoted[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push((format!("{}.md", &text[name_start..at]), heading));
    }
    out
}

#[test]
fn every_named_docs_section_exists() {
    let docs = root().join("docs");
    let headings: BTreeMap<String, Vec<String>> = std::fs::read_dir(&docs)
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a document");
            // Headings, and run-in labels (`**File descriptors.** Each stream …`).
            let names = prose_lines(&text)
                .filter_map(|(_, line)| heading(line).or_else(|| label(line)))
                .map(|name| name.replace('`', ""))
                .collect();
            let name = path.file_name().expect("a file name").to_string_lossy();
            (name.into_owned(), names)
        })
        .collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, text) in files() {
        for (doc, heading) in named_sections(&flattened(&text)) {
            let Some(names) = headings.get(&doc) else {
                continue;
            };
            checked += 1;
            let wanted = heading.replace('`', "");
            if !names.iter().any(|name| name.starts_with(&wanted)) {
                missing.push(format!("{}: {doc} \"{heading}\"", relative(&path)));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} named sections found: the scanner is broken"
    );
    assert!(
        missing.is_empty(),
        "sections that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn anchors_follow_github() {
    let doc = "## Relayed HTTP (protocol §6, §7.2)\n### `[limits]`\n## Faults\n## Faults\n";
    assert_eq!(
        anchors(doc).into_iter().collect::<Vec<_>>(),
        ["faults", "faults-1", "limits", "relayed-http-protocol-6-72"]
    );
    assert_eq!(
        link_targets("see [a](x.md#y) and [b](#z), not [c] (d)"),
        ["x.md#y", "#z"]
    );
    assert_eq!(
        named_sections(&flattened(
            "//! (docs/reliability.md \"Faults\"), operations.md, \"Memory copies\n//! on AMD\""
        )),
        [
            ("reliability.md".to_owned(), "Faults".to_owned()),
            (
                "operations.md".to_owned(),
                "Memory copies on AMD".to_owned()
            )
        ]
    );
    assert_eq!(
        repository_paths("`src/io/tcp_pump.rs:51`, `src/daemon/` and `[limits]`, `src/*.rs`"),
        ["src/io/tcp_pump.rs", "src/daemon/"]
    );
}

#[test]
fn no_file_points_outside_the_repository_or_at_issue_numbers() {
    let mut found = Vec::new();
    for (path, text) in files() {
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", relative(&path), n + 1);
            for forbidden in FORBIDDEN {
                if line.contains(forbidden) {
                    found.push(format!("{at}: {forbidden:?}"));
                }
            }
            if let Some(reference) = issue_reference(line) {
                found.push(format!("{at}: {reference:?}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references a clone of the repository cannot follow:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_reads_every_citation_form() {
    let ids = |text: &str| -> Vec<String> {
        citations(text)
            .into_iter()
            .map(|(word, id, item)| match item {
                Some(n) => format!("{word} {id} item {n}"),
                None => format!("{word} {id}"),
            })
            .collect()
    };
    assert_eq!(ids("(protocol §4.2)."), ["protocol 4.2"]);
    assert_eq!(ids("see protocol.md §3.6."), ["protocol 3.6"]);
    assert_eq!(ids("protocol §3.2–§3.4"), ["protocol 3.2", "protocol 3.4"]);
    assert_eq!(
        ids("protocol §5.1, §8.3 and §11 item 7"),
        ["protocol 5.1", "protocol 8.3", "protocol 11 item 7"]
    );
    assert_eq!(
        ids("`renewToken`, protocol\n//! §4.6) at"),
        ["protocol 4.6"]
    );
    assert_eq!(ids("(protocol Appendix A)"), ["protocol Appendix A"]);
    // Written in two pieces so that the scan of this file does not see a citation.
    assert_eq!(
        ids(concat!("architecture", " §3 \"Lifecycle\"")),
        ["architecture 3"]
    );
    assert_eq!(ids("protocol §7.1 streams / §7.2 HTTP"), ["protocol 7.1"]);
    assert!(ids("the protocol core; RFC 6455 §5.2; protocols §1").is_empty());
}

#[test]
fn the_scanner_finds_issue_numbers_and_only_those() {
    // Built at run time so that the scan of this file does not see them.
    for (before, after) in [
        ("(", " 8 item 1)"),
        ("#", "-6-targets"),
        ("", "s 6 and 8"),
        ("", " #6"),
    ] {
        let text = format!("{before}issue{after}");
        assert!(issue_reference(&text).is_some(), "{text}");
        let capitalised = format!("{before}Issue{after}");
        assert!(issue_reference(&capitalised).is_some(), "{capitalised}");
    }
    for text in [
        "renewed after issue (not at once)",
        "MIN_RENEW_AFTER_ISSUE",
        "reissue 3",
    ] {
        assert_eq!(issue_reference(text), None, "{text}");
    }
}

#[test]
fn headings_give_sections_and_list_items() {
    let doc = "# Title\n## 4. Control\n### 4.2 Framing\n## 11. Open\n1. a\n2. b\n\
               ```\n## 9 code\n```\n## Appendix A — relay\n";
    let (ids, items) = sections(doc);
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["11", "4", "4.2", "Appendix A"]
    );
    assert_eq!(items["11"].iter().copied().collect::<Vec<_>>(), [1, 2]);
}
