//! Composing state commit messages: `subject`, blank line, `body`, blank line, trailer block with
//! `dwp-state` last. Every composed message is parsed back with the git-identical parser and must
//! yield exactly the trailers that were asked for: a body that would swallow or hide them (a
//! scissors line, for instance) is refused instead of producing a commit git reads differently.

use std::fmt;
use std::str::FromStr;

use super::{trailers, Key, State};

/// Messages above this size are refused (a state commit is a hand-off note, not a payload).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// One `key: value` trailer to write. Keys are ASCII alphanumerics and `-`; values are one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerArg {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed trailer {0:?}: expected 'Key: value' with a key of ASCII letters, digits and '-'")]
    MalformedTrailer(String),
    #[error("trailer {key:?} has an empty value")]
    EmptyTrailerValue { key: String },
    #[error("trailer {key:?} value must be one line without control characters")]
    BadTrailerValue { key: String },
    #[error("message body is empty")]
    EmptyBody,
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES} allowed")]
    TooLarge(usize),
    #[error("message contains a NUL byte")]
    Nul,
    #[error("message is not valid UTF-8")]
    NotUtf8,
    #[error("subject must be one non-empty line without control characters")]
    BadSubject,
    #[error("the body hides the trailer block from git (e.g. a '# --- >8 ---' scissors line); rephrase it")]
    BodyHidesTrailers,
}

impl TrailerArg {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<TrailerArg, MessageError> {
        let (key, value) = (key.into(), value.into().trim().to_owned());
        let key_ok = !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        if !key_ok {
            return Err(MessageError::MalformedTrailer(format!("{key}: {value}")));
        }
        if value.is_empty() {
            return Err(MessageError::EmptyTrailerValue { key });
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(MessageError::BadTrailerValue { key });
        }
        Ok(TrailerArg { key, value })
    }

    /// A runner-written trailer: reserved key, value forced onto one line (no trailer injection).
    pub fn reserved(key: Key, value: impl AsRef<str>) -> TrailerArg {
        let one_line: String = value
            .as_ref()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let value = if one_line.is_empty() { "-".to_owned() } else { one_line };
        TrailerArg { key: key.as_str().to_owned(), value }
    }
}

impl FromStr for TrailerArg {
    type Err = MessageError;
    /// `Key: value` (git's form) or `Key=value` (as `git interpret-trailers --trailer` accepts).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = s.find([':', '=']).ok_or_else(|| MessageError::MalformedTrailer(s.to_owned()))?;
        let key = s[..sep].trim();
        TrailerArg::new(key, &s[sep + 1..]).map_err(|e| match e {
            MessageError::MalformedTrailer(_) => MessageError::MalformedTrailer(s.to_owned()),
            other => other,
        })
    }
}

impl fmt::Display for TrailerArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.value)
    }
}

/// Check raw body bytes supplied by a user: no NUL, UTF-8, not enormous.
pub fn validate_body(body: &[u8]) -> Result<&str, MessageError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge(body.len()));
    }
    if body.contains(&0) {
        return Err(MessageError::Nul);
    }
    std::str::from_utf8(body).map_err(|_| MessageError::NotUtf8)
}

/// Build `subject\n\nbody\n\ntrailers…\ndwp-state: STATE\n`.
pub fn compose(
    subject: &str,
    body: Option<&str>,
    trailers: &[TrailerArg],
    state: &State,
) -> Result<Vec<u8>, MessageError> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().any(|c| c.is_control()) {
        return Err(MessageError::BadSubject);
    }
    let mut msg = String::with_capacity(256);
    msg.push_str(subject);
    msg.push_str("\n\n");
    if let Some(body) = body {
        if body.contains('\0') {
            return Err(MessageError::Nul);
        }
        // Trailing whitespace only; leading blank lines would otherwise join the subject.
        let body = body.trim_end().trim_start_matches(['\n', '\r']);
        if body.trim().is_empty() {
            return Err(MessageError::EmptyBody);
        }
        msg.push_str(body);
        msg.push_str("\n\n");
    }
    let state_trailer = TrailerArg { key: Key::State.as_str().to_owned(), value: state.to_string() };
    for t in trailers.iter().chain(std::iter::once(&state_trailer)) {
        msg.push_str(&t.key);
        msg.push_str(": ");
        msg.push_str(&t.value);
        msg.push('\n');
    }
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge(msg.len()));
    }
    // The round trip: git must read back exactly what we wrote.
    let parsed = trailers::parse(msg.as_bytes());
    let wanted = trailers.iter().chain(std::iter::once(&state_trailer));
    let same = parsed.len() == trailers.len() + 1
        && parsed.iter().zip(wanted).all(|(p, w)| p.key == w.key.as_bytes() && p.value == w.value.as_bytes());
    if !same {
        return Err(MessageError::BodyHidesTrailers);
    }
    Ok(msg.into_bytes())
}

/// The body of a message: what follows the subject paragraph, up to the trailer block, trimmed.
/// This is what a handler receives as `BATON_BODY`.
pub fn body_of(message: &[u8]) -> String {
    let start = message.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(message.len());
    let msg = &message[start..];
    let subject_end = msg
        .windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| msg.windows(4).position(|w| w == b"\r\n\r\n"))
        .map_or(msg.len(), |p| p + 2);
    let body_end = trailers::block_start(msg).max(subject_end);
    String::from_utf8_lossy(&msg[subject_end..body_end]).trim().to_owned()
}

/// Largest body passed in an environment variable (`BATON_BODY`, `AYNIG_BODY`). Linux refuses a
/// single environment string over 128 KiB ("Argument list too long"); the whole body is always in
/// the file `BATON_BODY_FILE`.
pub const ENV_BODY_MAX: usize = 64 * 1024;

/// The body as an environment value: whole up to [`ENV_BODY_MAX`] bytes, else cut on a character
/// boundary with a marker saying where the rest is.
pub fn body_for_env(body: &str) -> String {
    if body.len() <= ENV_BODY_MAX {
        return body.to_owned();
    }
    const MARK: &str = "\n[git-baton: body cut here; the whole body is in $BATON_BODY_FILE]";
    let mut end = ENV_BODY_MAX - MARK.len();
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_for_the_environment() {
        assert_eq!(body_for_env("short"), "short");
        let long = "é".repeat(100_000);
        let cut = body_for_env(&long);
        assert!(cut.len() <= ENV_BODY_MAX);
        assert!(cut.ends_with("$BATON_BODY_FILE]"));
        assert!(cut.starts_with("éé"));
    }

    fn st(s: &str) -> State {
        State::parse(s).unwrap()
    }

    #[test]
    fn composes_with_state_last() {
        let t = [TrailerArg::new("Reviewed-by", "me").unwrap()];
        let m = compose("subj", Some("do it\n\n"), &t, &st("review")).unwrap();
        assert_eq!(m, b"subj\n\ndo it\n\nReviewed-by: me\ndwp-state: review\n");
    }

    #[test]
    fn body_is_between_subject_and_trailers() {
        assert_eq!(body_of(b"subj\n\nline 1\n\nline 2\n\nK: v\ndwp-state: x\n"), "line 1\n\nline 2");
        assert_eq!(body_of(b"subj\n\ndwp-state: x\n"), "");
        assert_eq!(body_of(b"\nsubj only"), "");
        assert_eq!(body_of(b"subj\n\njust a body\n"), "just a body");
    }

    #[test]
    fn no_body() {
        assert_eq!(compose("s", None, &[], &st("a")).unwrap(), b"s\n\ndwp-state: a\n");
    }

    #[test]
    fn trailer_args() {
        assert_eq!("K: v".parse::<TrailerArg>().unwrap(), TrailerArg { key: "K".into(), value: "v".into() });
        assert_eq!("K=v".parse::<TrailerArg>().unwrap().value, "v");
        assert!(matches!("no separator".parse::<TrailerArg>(), Err(MessageError::MalformedTrailer(_))));
        assert!(matches!("a b: c".parse::<TrailerArg>(), Err(MessageError::MalformedTrailer(_))));
        assert!(matches!("K:".parse::<TrailerArg>(), Err(MessageError::EmptyTrailerValue { .. })));
        assert!(matches!("K: a\nb".parse::<TrailerArg>(), Err(MessageError::BadTrailerValue { .. })));
    }

    #[test]
    fn reserved_values_are_one_line() {
        assert_eq!(TrailerArg::reserved(Key::Error, "a\nb:\n c").value, "a b: c");
    }

    #[test]
    fn scissors_in_body_is_refused() {
        let body = "x\n# ------------------------ >8 ------------------------\ny";
        assert_eq!(compose("s", Some(body), &[], &st("a")), Err(MessageError::BodyHidesTrailers));
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(compose("s", Some("  \n"), &[], &st("a")), Err(MessageError::EmptyBody));
        assert_eq!(validate_body(b"a\0b"), Err(MessageError::Nul));
        assert_eq!(validate_body(b"\xff"), Err(MessageError::NotUtf8));
        assert!(matches!(validate_body(&vec![b'a'; MAX_MESSAGE_BYTES + 1]), Err(MessageError::TooLarge(_))));
        assert_eq!(compose("a\nb", None, &[], &st("a")), Err(MessageError::BadSubject));
    }
}
