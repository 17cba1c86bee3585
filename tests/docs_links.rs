//! Every relative link in README.md, docs/*.md and examples/**/README.md resolves: the file (or
//! folder) exists, and a `#fragment` names a heading of the target page (GitHub's anchors). The
//! reference moved from the README into docs/ pages; this keeps the pages and their links honest
//! when a page or a heading is renamed.
//!
//! The scanner is small on purpose: it reads `[text](target)` outside fenced code blocks and
//! inline code, which is the only link form these pages use (no reference-style links, no HTML).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut stack = vec![root.join("examples")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "README.md") {
                pages.push(p);
            }
        }
    }
    pages
}

/// Lines outside fenced code blocks, with inline code spans blanked out, each with its number.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut fence: Option<String> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        if marker.len() >= 3 {
            match &fence {
                None => fence = Some(marker),
                Some(open) if marker.starts_with(open.as_str()) && trimmed.trim_end() == marker => fence = None,
                Some(_) => {}
            }
            continue;
        }
        if fence.is_none() {
            out.push((i + 1, blank_code_spans(line)));
        }
    }
    out
}

/// `a `b` c` → `a     c`: links inside code spans are examples, not links.
fn blank_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else {
            out.push(if in_code { ' ' } else { c });
        }
    }
    out
}

/// The targets of `[text](target)` links on a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                let target = after[..end].split_whitespace().next().unwrap_or("").to_owned();
                targets.push(target);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces
/// to `-`; repeated headings get `-1`, `-2`, ….
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let heading: String = line[hashes..].trim().to_owned();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.push(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// The anchors of a page's headings. Backticks are dropped from heading lines first: an anchor
/// keeps the words of a code span, and `prose_lines` would blank them.
fn heading_anchors(text: &str) -> Vec<String> {
    let unticked: String = text
        .lines()
        .map(|l| if l.starts_with('#') { l.replace('`', "") } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\n");
    anchors(&unticked)
}

fn page_anchors(path: &Path) -> Vec<String> {
    heading_anchors(&std::fs::read_to_string(path).unwrap())
}

fn broken_links() -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let rel = page.strip_prefix(root()).unwrap().display().to_string();
        for (line_no, line) in prose_lines(&text) {
            for target in link_targets(&line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, fragment) = match target.split_once('#') {
                    Some((f, frag)) => (f, Some(frag)),
                    None => (target.as_str(), None),
                };
                let resolved = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
                if !resolved.exists() {
                    broken.push(format!("{rel}:{line_no}: {target}: no such file"));
                    continue;
                }
                if let Some(fragment) = fragment {
                    if resolved.extension().is_some_and(|e| e == "md")
                        && !page_anchors(&resolved).iter().any(|a| a == fragment)
                    {
                        broken.push(format!("{rel}:{line_no}: {target}: no such heading"));
                    }
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let broken = broken_links();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The checker itself: a table of what it must find and what it must not.
#[test]
fn the_link_scanner_reads_links_outside_code_and_githubs_anchors() {
    assert_eq!(link_targets("see [a](x.md) and [b](y.md#z)."), ["x.md", "y.md#z"]);
    assert_eq!(link_targets("no link ] ( here"), Vec::<String>::new());
    let lines = prose_lines("a [x](in.md)\n```sh\n[y](fenced.md)\n```\nb `[z](code.md)` [w](out.md)\n");
    let found: Vec<String> = lines.iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert_eq!(found, ["in.md", "out.md"]);
    let text = "# Title\n## Fix loops: `loop.soft`, `loop.hard`\n## A worked example\n## A worked example\n```\n# not a heading\n```\n";
    assert_eq!(
        heading_anchors(text),
        ["title", "fix-loops-loopsoft-loophard", "a-worked-example", "a-worked-example-1"]
    );
}

/// docs/commands.md's index lists every command `git baton --help` lists, so a new command is
/// documented somewhere a reader can find it.
#[test]
fn every_command_is_in_the_command_index() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_git-baton")).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 20, "read the command list from --help:\n{help}");
    let commands_md = std::fs::read_to_string(root().join("docs/commands.md")).unwrap();
    let index = &commands_md[commands_md.find("## Every command").expect("docs/commands.md has its index")..];
    let index = &index[..index[3..].find("\n## ").map_or(index.len(), |i| i + 3)];
    let words: std::collections::HashSet<&str> =
        index.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter(|w| !w.is_empty()).collect();
    let missing: Vec<&str> = commands.into_iter().filter(|c| !words.contains(c)).collect();
    assert!(missing.is_empty(), "commands missing from the index in docs/commands.md (add a row each): {missing:?}");
}
