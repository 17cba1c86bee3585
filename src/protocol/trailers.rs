//! Trailer parsing, byte for byte the way git reads the trailers of a commit.
//!
//! The oracle is `git log --format=%(trailers:only,unfold)`, which runs git's `trailer.c` on the
//! commit message from its subject on (`pretty.c` skips leading blank lines), with `no_divider`
//! set (a `---` line does not end the message) and the default separator `:`. This file follows
//! that code path step by step so that the differential tests in `tests/trailers_vs_git.rs` hold:
//!
//! 1. The message ends at the first NUL (git works on C strings).
//! 2. Leading blank lines are skipped; the first paragraph is the title and never holds trailers.
//! 3. A trailing run of comment lines, blank lines and an old-style `Conflicts:` block, and
//!    everything from a `# ------------------------ >8 ------------------------` scissors line on,
//!    are ignored.
//! 4. The trailer block is the last paragraph when it is all trailers (continuation lines
//!    allowed), or when it has a git-generated line (`Signed-off-by: `,
//!    `(cherry picked from commit `) and at least 25 % trailer lines.
//! 5. Inside the block, lines starting with whitespace continue the previous trailer; comment lines
//!    are dropped; `unfold` joins continuations with single spaces; keys and values are trimmed.
//!
//! Deliberate scope: git also honours `trailer.separators`, `trailer.<name>.key` (which can make a
//! configured key "recognized" for the 25 % rule) and `core.commentChar`. git-baton uses git's
//! defaults (`:`, no configured trailers, `#`), so that every runner reads a commit the same way
//! whatever its local configuration.

/// One `key: value` pair of a trailer block, as raw bytes (values unfolded and trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Trailer {
    /// The key, with invalid UTF-8 replaced.
    pub fn key_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }
    /// The value, with invalid UTF-8 replaced.
    pub fn value_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

const COMMENT: u8 = b'#';
const SEPARATORS: &[u8] = b":";
const GIT_GENERATED_PREFIXES: [&[u8]; 2] = [b"Signed-off-by: ", b"(cherry picked from commit "];
const CUT_LINE: &[u8] = b"# ------------------------ >8 ------------------------\n";

/// git's `isspace` (sane_ctype): only space, `\t`, `\n` and `\r`; not `\v` or `\f`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Start of the line after the one starting at `pos` (or the end of the buffer).
fn next_line(buf: &[u8], pos: usize) -> usize {
    match buf[pos.min(buf.len())..].iter().position(|&c| c == b'\n') {
        Some(i) => pos + i + 1,
        None => buf.len(),
    }
}

/// Start of the last line of `buf[..len]`; a final newline belongs to the last line.
fn last_line(buf: &[u8], len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    if len == 1 {
        return Some(0);
    }
    Some(buf[..len - 1].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1))
}

fn is_blank_line(buf: &[u8], pos: usize) -> bool {
    buf[pos..].iter().find(|&&c| !(c != b'\n' && is_space(c))).is_none_or(|&c| c == b'\n')
}

/// Position of the separator in the line starting at `line`, if it is a well-formed `token:`
/// prefix (ASCII alphanumerics and `-`, then optional spaces/tabs before the separator).
/// `Some(0)` means the line starts with the separator, which callers treat as "not a trailer".
fn find_separator(line: &[u8]) -> Option<usize> {
    let mut whitespace_found = false;
    for (i, &c) in line.iter().enumerate() {
        if SEPARATORS.contains(&c) {
            return Some(i);
        }
        if !whitespace_found && (c.is_ascii_alphanumeric() || c == b'-') {
            continue;
        }
        if i != 0 && (c == b' ' || c == b'\t') {
            whitespace_found = true;
            continue;
        }
        break;
    }
    None
}

fn is_trailer_line(line: &[u8]) -> bool {
    find_separator(line).is_some_and(|p| p >= 1)
}

/// `wt_status_locate_end`: where a scissors line cuts the message.
fn locate_end(buf: &[u8]) -> usize {
    if buf.starts_with(CUT_LINE) {
        return 0;
    }
    // The first line that is the scissors line: only line starts can match, so the search jumps
    // from newline to newline instead of comparing at every byte.
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&c| c == b'\n') {
        let start = from + i + 1;
        if buf[start..].starts_with(CUT_LINE) {
            return start;
        }
        from = start;
    }
    buf.len()
}

/// `ignored_log_message_bytes`: the trailing comments, blank lines and old `Conflicts:` block.
fn end_of_log_message(buf: &[u8]) -> usize {
    let cutoff = locate_end(buf);
    let mut boc = 0;
    let mut bol = 0;
    let mut in_old_conflicts_block = false;
    while bol < cutoff {
        let next = next_line(buf, bol);
        if buf[bol] == COMMENT || buf[bol] == b'\n' {
            if boc == 0 {
                boc = bol;
            }
        } else if buf[bol..].starts_with(b"Conflicts:\n") {
            in_old_conflicts_block = true;
            if boc == 0 {
                boc = bol;
            }
        } else if in_old_conflicts_block && buf[bol] == b'\t' {
            // a pathname in the conflicts block
        } else if boc != 0 {
            boc = 0;
            in_old_conflicts_block = false;
        }
        bol = next;
    }
    if boc != 0 {
        boc
    } else {
        cutoff
    }
}

/// `find_trailer_block_start`: the offset where the trailer block starts, `len` if there is none.
fn trailer_block_start(buf: &[u8], len: usize) -> usize {
    // The first paragraph is the title and cannot hold trailers.
    let mut s = 0;
    while s < len {
        if buf[s] == COMMENT {
            s = next_line(buf, s);
            continue;
        }
        if is_blank_line(buf, s) {
            break;
        }
        s = next_line(buf, s);
    }
    let end_of_title = s;

    let mut only_spaces = true;
    let mut recognized_prefix = false;
    let (mut trailer_lines, mut non_trailer_lines, mut possible_continuation_lines) = (0, 0, 0);
    let mut cursor = last_line(buf, len);
    while let Some(l) = cursor.filter(|&l| l >= end_of_title) {
        cursor = last_line(buf, l);
        let line = &buf[l..];
        if line.first() == Some(&COMMENT) {
            non_trailer_lines += possible_continuation_lines;
            possible_continuation_lines = 0;
            continue;
        }
        if is_blank_line(buf, l) {
            if only_spaces {
                continue;
            }
            non_trailer_lines += possible_continuation_lines;
            if (recognized_prefix && trailer_lines * 3 >= non_trailer_lines)
                || (trailer_lines > 0 && non_trailer_lines == 0)
            {
                return next_line(buf, l);
            }
            return len;
        }
        only_spaces = false;
        if GIT_GENERATED_PREFIXES.iter().any(|p| line.starts_with(p)) {
            trailer_lines += 1;
            possible_continuation_lines = 0;
            recognized_prefix = true;
            continue;
        }
        if is_trailer_line(line) {
            trailer_lines += 1;
            possible_continuation_lines = 0;
        } else if is_space(line[0]) {
            possible_continuation_lines += 1;
        } else {
            non_trailer_lines += 1 + possible_continuation_lines;
            possible_continuation_lines = 0;
        }
    }
    len
}

/// Skip the blank lines before the subject, as `pretty.c` does before it looks for trailers.
fn skip_leading_blank_lines(msg: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < msg.len() {
        let next = next_line(msg, pos);
        if !msg[pos..next].iter().all(|&c| is_space(c)) {
            break;
        }
        pos = next;
    }
    &msg[pos..]
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Collapse each newline and the whitespace after it to one space, then trim.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let c = value[i];
        i += 1;
        if c == b'\n' {
            while i < value.len() && is_space(value[i]) {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(c);
        }
    }
    trim(&out).to_vec()
}

/// The trailers of a commit message (the bytes after the commit header), exactly as
/// `git log --format=%(trailers:only,unfold)` lists them.
pub fn parse(message: &[u8]) -> Vec<Trailer> {
    let message = match message.iter().position(|&c| c == 0) {
        Some(nul) => &message[..nul],
        None => message,
    };
    let buf = skip_leading_blank_lines(message);
    let end = end_of_log_message(buf);
    let start = trailer_block_start(buf, end);
    if start >= end {
        return Vec::new();
    }

    // Split the block into logical lines, folding continuation lines into the trailer before.
    let mut logical: Vec<(usize, usize, bool)> = Vec::new(); // (start, end, is_trailer)
    let mut pos = start;
    while pos < end {
        let next = next_line(buf, pos).min(end);
        let continues = logical.last().is_some_and(|&(_, _, t)| t) && is_space(buf[pos]);
        if continues {
            if let Some(last) = logical.last_mut() {
                last.1 = next;
            }
        } else {
            logical.push((pos, next, is_trailer_line(&buf[pos..next])));
        }
        pos = next;
    }

    logical
        .into_iter()
        .filter(|&(s, _, is_trailer)| is_trailer && buf[s] != COMMENT)
        .filter_map(|(s, e, _)| {
            let line = &buf[s..e];
            let sep = find_separator(line)?;
            Some(Trailer { key: trim(&line[..sep]).to_vec(), value: unfold(trim(&line[sep + 1..])) })
        })
        .collect()
}

/// Offset in `message` where the trailer block starts (`message.len()` when there is none).
pub fn block_start(message: &[u8]) -> usize {
    let visible = message.iter().position(|&c| c == 0).unwrap_or(message.len());
    let buf = skip_leading_blank_lines(&message[..visible]);
    let skipped = visible - buf.len();
    let end = end_of_log_message(buf);
    let start = trailer_block_start(buf, end);
    if start >= end {
        message.len()
    } else {
        skipped + start
    }
}

/// git's text form of `%(trailers:only,unfold)` for one commit: `key: value\n` per trailer.
pub fn format_git(trailers: &[Trailer]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in trailers {
        out.extend_from_slice(&t.key);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&t.value);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(msg: &str) -> Vec<(String, String)> {
        parse(msg.as_bytes()).iter().map(|t| (t.key_lossy().into_owned(), t.value_lossy().into_owned())).collect()
    }

    fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn simple_block() {
        assert_eq!(pairs("title\n\nbody\n\ndwp-state: review\nA: b\n"), kv(&[("dwp-state", "review"), ("A", "b")]));
    }

    #[test]
    fn title_paragraph_never_counts() {
        assert!(pairs("dwp-state: x\n").is_empty());
        assert!(pairs("dwp-state: x\nA: b\n").is_empty());
    }

    #[test]
    fn leading_blank_lines_are_skipped() {
        assert_eq!(pairs("\n \ntitle\n\nA: b\n"), kv(&[("A", "b")]));
    }

    #[test]
    fn only_the_last_paragraph() {
        assert_eq!(pairs("t\n\nA: 1\n\nB: 2\n"), kv(&[("B", "2")]));
    }

    #[test]
    fn a_non_trailer_line_spoils_the_block_without_git_prefix() {
        assert!(pairs("t\n\nA: 1\nnot a trailer\n").is_empty());
    }

    #[test]
    fn twenty_five_percent_rule_with_signed_off_by() {
        // 1 generated trailer out of 4 lines: 1*3 >= 3 holds.
        assert_eq!(pairs("t\n\nx\ny\nz\nSigned-off-by: A <a@b>\n"), kv(&[("Signed-off-by", "A <a@b>")]));
        // 1 of 5: 3 >= 4 fails.
        assert!(pairs("t\n\nw\nx\ny\nz\nSigned-off-by: A <a@b>\n").is_empty());
    }

    #[test]
    fn continuation_lines_unfold() {
        assert_eq!(pairs("t\n\nKey: a\n  b\n\tc\n"), kv(&[("Key", "a b c")]));
    }

    #[test]
    fn whitespace_before_separator_and_crlf() {
        assert_eq!(pairs("t\r\n\r\nKey\t : v \r\n"), kv(&[("Key", "v")]));
    }

    #[test]
    fn comments_and_scissors_are_ignored() {
        assert_eq!(pairs("t\n\nA: b\n# comment\n"), kv(&[("A", "b")]));
        assert_eq!(
            pairs("t\n\nA: b\n# ------------------------ >8 ------------------------\nC: d\n"),
            kv(&[("A", "b")])
        );
    }

    #[test]
    fn only_colon_separates_and_keys_are_ascii() {
        assert!(pairs("t\n\nKey= v\n").is_empty());
        assert!(pairs("t\n\nKéy: v\n").is_empty());
        assert!(pairs("t\n\nKey Word: v\n").is_empty());
    }

    #[test]
    fn nul_ends_the_message() {
        assert!(pairs("t\n\nA: b\0\n\nC: d\n").len() == 1);
    }

    #[test]
    fn invalid_utf8_values_survive_as_bytes() {
        let t = parse(b"t\n\nA: \xff\xfe\n");
        assert_eq!(t[0].value, b"\xff\xfe");
    }

    #[test]
    fn format_is_gits_text() {
        assert_eq!(format_git(&parse(b"t\n\nA:b\nC :  d\n")), b"A: b\nC: d\n");
    }
}
