//! Which branches a command looks at: `--branch GLOB` patterns, pure.

/// Shell-style glob on branch names: `*` matches anything (including `/`), `?` one character,
/// `[abc]`/`[a-z]`/`[!x]` a class. A pattern without glob characters matches exactly.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn inner(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| inner(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && inner(rest, &n[1..]),
            Some(('[', rest)) => {
                let Some(close) = rest.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
                    return n.first() == Some(&'[') && inner(rest, &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let (negate, class) = match rest[..close].split_first() {
                    Some(('!' | '^', cls)) => (true, cls),
                    _ => (false, &rest[..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && inner(&rest[close + 1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && inner(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    inner(&p, &n)
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
    }
}
