//! The handler's environment: a scrubbed copy of the runner's. A handler gets the variables any
//! program needs (`PATH`, `HOME`, locale…), the protocol's own `BATON_*`/`AYNIG_*` variables, and
//! only those others the policy (`env.pass`) or the runner's `--pass-env` name. A token in the
//! runner's environment therefore never reaches a handler — or the coding agent it starts — unless
//! someone chose to pass it; and a passed secret is masked in what the runner records.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Variables every handler gets (plus every `LC_*`, `BATON_*` and `AYNIG_*` name).
///
/// Git's identity and configuration locations pass too, so a handler's `git commit` is made by the
/// same person, from the same configuration, as the runner's commits; they name, not unlock.
pub const BASE_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TERM",
    "TMPDIR",
    "TZ",
    "XDG_CONFIG_HOME",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_EXEC_PATH",
];

/// Name prefixes that always pass: the locale family and the protocol's own variables.
const BASE_PREFIXES: &[&str] = &["LC_"];

/// Name prefixes of the protocol's own variables. The runner sets them for each run; a runner's
/// own (say `BATON_RUN_ID` of an enclosing run, or `BATON_TRUSTED_REF`) never reaches a handler.
const PROTOCOL_PREFIXES: &[&str] = &["BATON_", "AYNIG_"];

/// Under `BATON_`, the agent handler's configuration (`BATON_AGENT_CMD`, `BATON_AGENT_TIMEOUT`):
/// no runner sets these, so they are ordinary variables that pass when `env.pass`/`--pass-env`
/// name them.
const CONFIG_PREFIXES: &[&str] = &["BATON_AGENT_"];

/// Name fragments (case-insensitive) that make a passed variable's value a secret to mask.
const SECRET_MARKERS: &[&str] = &["TOKEN", "SECRET", "KEY", "PASSWORD"];

/// Shorter values are not masked: masking `1` or `on` would shred every log without hiding anything.
const MIN_SECRET_LEN: usize = 4;

/// A validated `env.pass` entry or `--pass-env` value: a variable name or a `*`/`?` glob of names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PassName(String);

impl PassName {
    pub fn parse(s: &str) -> Result<PassName, String> {
        validate_pass_name(s).map(|()| PassName(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PassName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PassName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an environment variable name or a glob such as \"AWS_*\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PassName, E> {
                PassName::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A name to pass: `[A-Za-z_][A-Za-z0-9_]*`, or a glob made of `[A-Za-z0-9_*?]` (non-empty).
pub fn validate_pass_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty environment variable name".into());
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*' | b'?')) {
        return Err(format!("{s:?} is not an environment variable name or glob (allowed: A-Z a-z 0-9 _ * ?)"));
    }
    let is_glob = s.contains(['*', '?']);
    if !is_glob && s.as_bytes()[0].is_ascii_digit() {
        return Err(format!("{s:?} is not an environment variable name (it starts with a digit)"));
    }
    Ok(())
}

/// Whether `name` always passes: a base variable or a locale variable.
pub fn is_base_var(name: &str) -> bool {
    BASE_VARS.contains(&name) || BASE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `name` is one of the protocol's variables, which only the runner sets for a run.
pub fn is_protocol_var(name: &str) -> bool {
    PROTOCOL_PREFIXES.iter().any(|p| name.starts_with(p)) && !CONFIG_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The runner's variables a `pass` name or glob selects (their values may be secrets to mask).
pub fn passed(runner_env: &[(String, String)], pass: &[String]) -> Vec<(String, String)> {
    runner_env
        .iter()
        .filter(|(name, _)| !is_protocol_var(name) && pass.iter().any(|p| name_glob(p, name)))
        .cloned()
        .collect()
}

/// The handler's environment drawn from the runner's: base variables and what a `pass` name or
/// glob selects, in the runner's order. Everything else — the runner's own `BATON_*`/`AYNIG_*`
/// included — is dropped; the runner adds the protocol's variables for the run.
pub fn handler_env(runner_env: &[(String, String)], pass: &[String]) -> Vec<(String, String)> {
    runner_env
        .iter()
        .filter(|(name, _)| !is_protocol_var(name) && (is_base_var(name) || pass.iter().any(|p| name_glob(p, name))))
        .cloned()
        .collect()
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` exactly one
/// (case-sensitive, like environment variables): git's wildmatch, as for branch globs.
pub fn name_glob(pattern: &str, name: &str) -> bool {
    crate::runner::select::glob_match(pattern, name)
}

/// The values to mask in what the runner records: values of passed variables whose name
/// contains TOKEN, SECRET, KEY or PASSWORD (any case), at least 4 characters long. Longest first,
/// without duplicates.
pub fn secrets(passed: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = passed
        .iter()
        .filter(|(name, value)| {
            let upper = name.to_ascii_uppercase();
            SECRET_MARKERS.iter().any(|m| upper.contains(m)) && value.chars().count() >= MIN_SECRET_LEN
        })
        .map(|(_, value)| value.clone())
        .collect();
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// `text` with every occurrence of every secret replaced by `***`. Occurrences that overlap or
/// touch (two secrets sharing characters, or one secret twice in a row) become a single `***`, so
/// no part of any secret survives — replacing one secret at a time, longest first, would leave the
/// tail of a shorter secret that overlaps a longer one.
pub fn mask(text: &str, secrets: &[String]) -> String {
    // Byte ranges covered by some occurrence. Matches of a UTF-8 needle in a UTF-8 haystack start
    // and end on character boundaries, so every range can be cut out of `text` as is.
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let mut from = 0;
        while let Some(i) = text[from..].find(s.as_str()) {
            let start = from + i;
            covered.push((start, start + s.len()));
            // Next search from the next character, so overlapping occurrences are found too.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if covered.is_empty() {
        return text.to_owned();
    }
    covered.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut iter = covered.into_iter().peekable();
    while let Some((start, mut end)) = iter.next() {
        while let Some(&(s, e)) = iter.peek() {
            if s > end {
                break;
            }
            end = end.max(e);
            iter.next();
        }
        out.push_str(&text[pos..start]);
        out.push_str("***");
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn names(e: &[(String, String)]) -> Vec<&str> {
        e.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn the_handler_env_keeps_base_and_passed_names_only() {
        let runner = env(&[
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("LC_ALL", "C"),
            ("LC_CTYPE", "C"),
            ("BATON_RUN_ID", "r1"),
            ("AYNIG_ROLE", "dev"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
            ("XAWS_X", "c"),
            ("OPENAI_API_KEY", "k"),
            ("TZ", "UTC"),
            ("PATHX", "no"),
            ("LCX", "no"),
        ]);
        assert_eq!(names(&handler_env(&runner, &[])), ["PATH", "HOME", "LC_ALL", "LC_CTYPE", "TZ"]);
        let passed = handler_env(&runner, &["GITHUB_TOKEN".into(), "AWS_*".into()]);
        assert_eq!(
            names(&passed),
            ["PATH", "HOME", "GITHUB_TOKEN", "LC_ALL", "LC_CTYPE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TZ"]
        );
        assert_eq!(passed[2].1, "ghp_x");
    }

    #[test]
    fn the_agent_handlers_settings_pass_when_named() {
        let runner = env(&[("BATON_AGENT_CMD", "claude -p"), ("BATON_AGENT_TIMEOUT", "5m"), ("BATON_RUN_ID", "r1")]);
        assert_eq!(names(&handler_env(&runner, &[])), Vec::<&str>::new());
        assert_eq!(names(&handler_env(&runner, &["BATON_AGENT_*".into()])), ["BATON_AGENT_CMD", "BATON_AGENT_TIMEOUT"]);
        assert_eq!(names(&handler_env(&runner, &["BATON_*".into()])), ["BATON_AGENT_CMD", "BATON_AGENT_TIMEOUT"]);
        assert!(
            is_protocol_var("BATON_RUN_ID") && is_protocol_var("BATON_AGENT") && !is_protocol_var("BATON_AGENT_CMD")
        );
    }

    #[test]
    fn pass_names_are_names_or_globs() {
        for ok in ["PATH", "_X", "a1", "AWS_*", "*", "?", "1*", "GH_?OKEN", "*_TOKEN"] {
            assert_eq!(validate_pass_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1ABC", "A-B", "A B", "A=B", "AWS_[AB]", "Ä", "a.b", "$X"] {
            assert!(validate_pass_name(bad).is_err(), "{bad}");
        }
        assert!(PassName::parse("9").unwrap_err().contains("starts with a digit"));
    }

    #[test]
    fn globs_match_like_fnmatch_without_classes() {
        let cases = [
            ("AWS_*", "AWS_REGION", true),
            ("AWS_*", "AWS_", true),
            ("AWS_*", "XAWS_REGION", false),
            ("*", "", true),
            ("", "", true),
            ("", "A", false),
            ("?", "", false),
            ("?", "A", true),
            ("A?C", "ABC", true),
            ("A?C", "AC", false),
            ("*_TOKEN", "GITHUB_TOKEN", true),
            ("*_TOKEN", "GITHUB_TOKEN_X", false),
            ("*A*B*C", "xxAyyBzzC", true),
            ("*A*B*C", "xxAyyBzzCx", false),
            ("A*A*A", "AAA", true),
            ("A*A*A", "AA", false),
            ("**X**", "ABXCD", true),
            ("path", "PATH", false),
            ("?Ä", "xÄ", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(name_glob(p, n), want, "{p:?} vs {n:?}");
        }
    }

    #[test]
    fn globs_stay_linear_on_adversarial_input() {
        let name = "A".repeat(20_000);
        let pattern = format!("{}B", "*A".repeat(50));
        let t = std::time::Instant::now();
        assert!(!name_glob(&pattern, &name));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn secrets_are_values_of_secret_looking_names() {
        let passed = env(&[
            ("GITHUB_TOKEN", "ghp_abcdef"),
            ("aws_secret_access_key", "s3cr3tvalue"),
            ("DB_PASSWORD", "hunter2"),
            ("API_KEY", "abc"),
            ("EMPTY_TOKEN", ""),
            ("PATH", "/usr/bin:/bin"),
            ("OTHER_TOKEN", "ghp_abcdef"),
            ("MONKEY", "bananas"),
        ]);
        assert_eq!(secrets(&passed), ["s3cr3tvalue", "ghp_abcdef", "bananas", "hunter2"]);
    }

    #[test]
    fn masking_hides_every_occurrence() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: &[(&str, &[&str], &str)] = &[
            ("token=abcd1234 again abcd1234", &["abcd1234"], "token=*** again ***"),
            ("nothing here", &["abcd1234"], "nothing here"),
            ("", &["abcd"], ""),
            ("xx abcdefgh yy", &["abcdef", "cdefgh"], "xx *** yy"),
            ("abcdefgh", &["cdefgh", "abcdef"], "***"),
            ("aaaaa", &["aaaa"], "***"),
            ("pre abcdabcd post", &["abcd"], "pre *** post"),
            ("x hunter2 y hunter22", &["hunter22", "hunter2"], "x *** y ***"),
            ("é-sécrét-é", &["sécrét"], "é-***-é"),
            ("keep", &[""], "keep"),
        ];
        for (text, secrets, want) in cases {
            assert_eq!(mask(text, &s(secrets)), *want, "{text:?} {secrets:?}");
        }
    }
}
