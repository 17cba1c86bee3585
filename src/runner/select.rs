//! Which branches a command looks at: `--branch GLOB` patterns, pure.

/// A `--branch` glob against a branch name, by git's own rules (gix's port of git's
/// `wildmatch`), exactly as `git branch --list GLOB` matches: `*` matches anything, `/` included,
/// `?` one character, `[abc]`/`[a-z]`/`[!x]`/`[^x]`/`[[:alpha:]]` a class, `\` quotes the next
/// character; an unterminated `[` matches nothing. A pattern without glob characters matches
/// exactly. Linear in practice on pathological patterns (ten stars against a 40-character name).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    gix::glob::wildmatch(pattern.into(), name.into(), gix::glob::wildmatch::Mode::empty())
}

/// Does a branch pass the `--branch` filters (none given: everything passes)?
pub fn branch_selected(globs: &[String], branch: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| glob_match(g, branch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("task/*", "task/a/b"));
        assert!(glob_match("t?sk", "task"));
        assert!(glob_match("task-[0-9]", "task-7"));
        assert!(!glob_match("task-[!0-9]", "task-7"));
        assert!(glob_match("main", "main"));
        assert!(!glob_match("main", "main2"));
        assert!(!glob_match("a*", "ba"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("[", "["), "an unterminated class matches nothing, as in git");
        assert!(glob_match("x[]]", "x]"));
        assert!(glob_match("*/[a-c]?", "task/bz"));
    }

    /// The exponential case of a recursive matcher: ten stars against a 40-character name that
    /// does not match. Must answer at once (this test would take tens of seconds otherwise).
    #[test]
    fn many_stars_are_linear() {
        let name = "a".repeat(40);
        assert!(!glob_match("*a*a*a*a*a*a*a*a*a*a*b", &name));
        assert!(glob_match("*a*a*a*a*a*a*a*a*a*a*", &name));
    }
}
