//! The policy file, `.dwp/policy.toml`: per-state limits a runner applies to handlers, read from
//! the same tree as the handlers (the task's commit, or the trusted ref's — see
//! [`crate::runner::source`]). This module is pure: it parses text and answers "what applies to
//! state S?"; reading the file from git is [`load`].
//!
//! ```toml
//! [defaults]
//! timeout = "1h"              # "30s", "5m", "2h", "7d"; at most 30d
//! lease = "5m"                # at most 7d
//! log.max_bytes = "10MiB"     # or an integer
//! env.pass = ["AWS_*"]        # extra variables handlers get (names or `*`/`?` globs)
//!
//! [states.build]
//! timeout = "2h"
//! ```
//!
//! Each table (`[defaults]`, `[states.<state>]`) has the shape of [`Settings`]; each sub-table is
//! its own struct with `deny_unknown_fields`, so a typo is an error and a new key is one field.
//! Every error names the file, the 1-based line and the dotted key.

pub mod agent;
pub mod duration;
pub mod env;
pub mod failure;
pub mod humans;
pub mod load;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use duration::{ByteSize, Seconds};
pub use env::PassName;
pub use failure::{BreakerField, Factor, FailurePolicy};
pub use humans::{GateDefault, HumansPolicy, Money, Tier};
pub use load::{load, parse_file, parse_file_as, POLICY_PATH};

/// Built-in handler timeout, in seconds.
pub const BUILT_IN_TIMEOUT: u64 = 3600;
/// Built-in lease length, in seconds.
pub const BUILT_IN_LEASE: u64 = 300;
/// Built-in cap on a handler's recorded log, in bytes.
pub const BUILT_IN_LOG_MAX_BYTES: u64 = 10 << 20;
/// Built-in bound on any lease another runner wrote, in seconds (24 h).
pub const BUILT_IN_MAX_LEASE: u64 = 86_400;
/// Built-in allowance for a lease's committer time to lie in the future (clock skew), in seconds.
pub const BUILT_IN_CLOCK_SKEW: u64 = 300;
/// Longest `timeout` a policy may set.
pub const MAX_TIMEOUT: u64 = 30 * 86_400;
/// Longest `lease` a policy may set.
pub const MAX_LEASE: u64 = 7 * 86_400;

/// One table of the policy: `[defaults]` or `[states.<name>]`. Values keep their place in the
/// file (`Spanned`), so a decision can say which line made it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct Settings {
    /// How long a handler may run.
    pub timeout: Option<Spanned<Seconds>>,
    /// How long a claim lasts without a heartbeat.
    pub lease: Option<Spanned<Seconds>>,
    /// Bound on any lease, whatever its `dwp-lease-seconds` says.
    pub max_lease: Option<Spanned<Seconds>>,
    /// How far in the future a lease's committer time may be before it is not believed.
    pub clock_skew: Option<Spanned<Seconds>>,
    #[serde(default)]
    pub env: EnvSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub retry: failure::RetrySettings,
    #[serde(default)]
    pub classify: failure::ClassifySettings,
    #[serde(default, rename = "loop")]
    pub r#loop: failure::LoopSettings,
    #[serde(default)]
    pub dlq: failure::DlqSettings,
    pub breaker: Option<BreakerField>,
    pub tier: Option<Spanned<Tier>>,
    #[serde(default)]
    pub gate: humans::GateSettings,
    pub notify: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub budget: humans::BudgetSettings,
    #[serde(default)]
    pub concurrency: humans::ConcurrencySettings,
    #[serde(default)]
    pub worktree: humans::WorktreeSettings,
    pub accept: Option<Spanned<humans::AcceptField>>,
    #[serde(default)]
    pub agent: agent::AgentSettings,
}

/// `env.*`: the handler environment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct EnvSettings {
    /// Names or globs of runner variables passed to handlers, on top of the base set.
    pub pass: Option<Spanned<Vec<PassName>>>,
}

/// `log.*`: what the runner records of a handler's output.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct LogSettings {
    /// Cap on the recorded output.
    pub max_bytes: Option<Spanned<ByteSize>>,
}

/// The whole file. Only these two top-level tables exist.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    states: BTreeMap<StateName, Settings>,
}

/// A `[states.<name>]` key, validated like a `dwp-state` value.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct StateName(String);

impl<'de> Deserialize<'de> for StateName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::protocol::State::parse(&s)
            .map(|_| StateName(s))
            .map_err(|e| serde::de::Error::custom(format!("not a valid state: {e}")))
    }
}

/// A parsed, validated policy. [`Policy::default`] is the empty policy (no file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    defaults: Settings,
    states: BTreeMap<String, Settings>,
    /// Byte offset of each line's start, to turn spans into line numbers.
    line_starts: Vec<usize>,
}

/// Why a policy file was refused: `FILE:LINE: KEY: MESSAGE` on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub file: String,
    /// 1-based; None only when the parser could not say where.
    pub line: Option<usize>,
    /// Dotted key, e.g. `states.build.timeout` or `defaults.env.pass[1]`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Where an effective value came from. Displayed (and serialised) as `built-in`, `command line`,
/// `.dwp/policy.toml:4 [defaults]` or `.dwp/policy.toml:9 [states.build]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    CommandLine,
    Defaults { line: usize },
    State { state: String, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::CommandLine => f.write_str("command line"),
            Origin::Defaults { line } => write!(f, "{POLICY_PATH}:{line} [defaults]"),
            Origin::State { state, line } => write!(f, "{POLICY_PATH}:{line} [states.{}]", key_segment(state)),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved<T> {
    pub value: T,
    pub from: Origin,
}

impl<T> Resolved<T> {
    pub fn built_in(value: T) -> Resolved<T> {
        Resolved { value, from: Origin::BuiltIn }
    }
    pub fn command_line(value: T) -> Resolved<T> {
        Resolved { value, from: Origin::CommandLine }
    }
}

/// The runner's own values, which a policy file overrides: built-ins, or what its command line
/// set. `env_pass` holds the `--pass-env` names (each already checked by
/// [`env::validate_pass_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// Seconds.
    pub timeout: Resolved<u64>,
    /// Seconds.
    pub lease: Resolved<u64>,
    /// Bytes.
    pub log_max_bytes: Resolved<u64>,
    pub env_pass: Vec<String>,
    /// Seconds.
    pub max_lease: Resolved<u64>,
    /// Seconds.
    pub clock_skew: Resolved<u64>,
}

impl Default for Base {
    /// The built-ins: 1h timeout, 5m lease, 10 MiB of log, nothing extra passed.
    fn default() -> Base {
        Base {
            timeout: Resolved::built_in(BUILT_IN_TIMEOUT),
            lease: Resolved::built_in(BUILT_IN_LEASE),
            log_max_bytes: Resolved::built_in(BUILT_IN_LOG_MAX_BYTES),
            env_pass: Vec::new(),
            max_lease: Resolved::built_in(BUILT_IN_MAX_LEASE),
            clock_skew: Resolved::built_in(BUILT_IN_CLOCK_SKEW),
        }
    }
}

/// What applies to one state. Serialises as
/// `{"timeout":{"value":3600,"from":"built-in"},"lease":{…},"log_max_bytes":{…},
/// "env_pass":[{"value":"AWS_*","from":".dwp/policy.toml:5 [defaults]"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effective {
    /// Seconds.
    pub timeout: Resolved<u64>,
    /// Seconds.
    pub lease: Resolved<u64>,
    /// Bytes.
    pub log_max_bytes: Resolved<u64>,
    /// The union of the command line's, `[defaults]`'s and the state's names, in that order,
    /// each once (with its first origin).
    pub env_pass: Vec<Resolved<String>>,
    /// Seconds: no lease counts for longer than this from now.
    pub max_lease: Resolved<u64>,
    /// Seconds: a lease's committer time further in the future than this is not believed.
    pub clock_skew: Resolved<u64>,
    /// Classification, retries, loop caps, dead letters and the circuit breaker.
    pub failure: FailurePolicy,
    /// Tier, gate, notifiers, budgets, concurrency, kept caches, acceptance checks.
    pub humans: HumansPolicy,
    /// `agent.next`: the state the agent handler's COMPLETED answer names (None: `done`).
    pub agent_next: Resolved<Option<String>>,
}

impl Effective {
    /// The names and globs to hand to [`env::handler_env`].
    pub fn pass_names(&self) -> Vec<String> {
        self.env_pass.iter().map(|p| p.value.clone()).collect()
    }
}

impl Policy {
    /// Parse and validate the text of a policy file; `file` is the name errors carry.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let error = |span: Option<Range<usize>>, key: Option<String>, message: String| PolicyError {
            file: file.to_owned(),
            line: span.map(|s| line_at(&line_starts, s.start)),
            key,
            message: message.replace('\n', " "),
        };
        let root = DeTable::parse(text).map_err(|e| error(e.span(), None, format!("invalid TOML: {}", e.message())))?;
        let parsed = File::deserialize(toml::de::Deserializer::from(root.clone())).map_err(|e| {
            let key = e.span().and_then(|s| key_path(root.get_ref(), &s));
            error(e.span(), key, friendly(e.message()))
        })?;
        let mut tables: Vec<(String, &Settings)> = vec![("defaults".into(), &parsed.defaults)];
        tables.extend(parsed.states.iter().map(|(k, v)| (format!("states.{}", key_segment(&k.0)), v)));
        for (table, settings) in tables {
            check_limits(settings)
                .and_then(|()| failure::check(settings))
                .and_then(|()| humans::check(settings))
                .map_err(|(span, key, msg)| error(Some(span), Some(format!("{table}.{key}")), msg))?;
        }
        Ok(Policy {
            defaults: parsed.defaults,
            states: parsed.states.into_iter().map(|(k, v)| (k.0, v)).collect(),
            line_starts,
        })
    }

    pub fn defaults(&self) -> &Settings {
        &self.defaults
    }

    /// The `[states.<name>]` table, if the file has one.
    pub fn state(&self, name: &str) -> Option<&Settings> {
        self.states.get(name)
    }

    /// Names of the states with a table, sorted.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.states.keys().map(String::as_str)
    }

    /// The 1-based line of a span of this policy's text.
    pub fn line_of(&self, span: Range<usize>) -> usize {
        line_at(&self.line_starts, span.start)
    }

    /// What applies to `state` under `policy`, or under no policy file at all (the runner's own
    /// values).
    pub fn effective_or_base(policy: Option<&Policy>, state: &str, base: &Base) -> Effective {
        match policy {
            Some(p) => p.effective(state, base),
            None => Policy::default().effective(state, base),
        }
    }

    /// What applies to `state`: per key, its `[states.<state>]` value, else `[defaults]`, else the
    /// runner's (`base`). `env.pass` is the union of all three.
    pub fn effective(&self, state: &str, base: &Base) -> Effective {
        let table = self.states.get(state);
        let pick = |get: Lookup, base: &Resolved<u64>| {
            if let Some((value, span)) = table.and_then(get) {
                Resolved { value, from: Origin::State { state: state.to_owned(), line: self.line_of(span) } }
            } else if let Some((value, span)) = get(&self.defaults) {
                Resolved { value, from: Origin::Defaults { line: self.line_of(span) } }
            } else {
                base.clone()
            }
        };
        let mut env_pass: Vec<Resolved<String>> = Vec::new();
        let mut add = |name: &str, from: Origin| {
            if !env_pass.iter().any(|p| p.value == name) {
                env_pass.push(Resolved { value: name.to_owned(), from });
            }
        };
        for name in &base.env_pass {
            add(name, Origin::CommandLine);
        }
        if let Some(pass) = &self.defaults.env.pass {
            let line = self.line_of(pass.span());
            pass.get_ref().iter().for_each(|n| add(n.as_str(), Origin::Defaults { line }));
        }
        if let Some(pass) = table.and_then(|t| t.env.pass.as_ref()) {
            let line = self.line_of(pass.span());
            pass.get_ref().iter().for_each(|n| add(n.as_str(), Origin::State { state: state.to_owned(), line }));
        }
        Effective {
            timeout: pick(|s| s.timeout.as_ref().map(|v| (v.get_ref().0, v.span())), &base.timeout),
            lease: pick(|s| s.lease.as_ref().map(|v| (v.get_ref().0, v.span())), &base.lease),
            log_max_bytes: pick(|s| s.log.max_bytes.as_ref().map(|v| (v.get_ref().0, v.span())), &base.log_max_bytes),
            env_pass,
            max_lease: pick(|s| s.max_lease.as_ref().map(|v| (v.get_ref().0, v.span())), &base.max_lease),
            clock_skew: pick(|s| s.clock_skew.as_ref().map(|v| (v.get_ref().0, v.span())), &base.clock_skew),
            failure: self.failure(state),
            humans: self.humans(state),
            agent_next: self.resolve(
                state,
                |s| s.agent.next.as_ref().map(|n| (Some(n.get_ref().0.clone()), n.span())),
                Resolved::built_in(None),
            ),
        }
    }

    /// The people-and-money policy of `state`.
    pub fn humans(&self, state: &str) -> HumansPolicy {
        fn v<T: Clone>(x: &Option<Spanned<T>>) -> Option<(T, Range<usize>)> {
            x.as_ref().map(|x| (x.get_ref().clone(), x.span()))
        }
        fn some<T: Clone>(x: &Option<Spanned<T>>) -> Option<(Option<T>, Range<usize>)> {
            x.as_ref().map(|x| (Some(x.get_ref().clone()), x.span()))
        }
        fn name(x: &Option<Spanned<failure::BreakerName>>) -> Option<(Option<String>, Range<usize>)> {
            x.as_ref().map(|x| (Some(x.get_ref().0.clone()), x.span()))
        }
        fn secs(x: &Option<Spanned<Seconds>>) -> Option<(Option<u64>, Range<usize>)> {
            x.as_ref().map(|x| (Some(x.get_ref().0), x.span()))
        }
        let b = HumansPolicy::built_in();
        HumansPolicy {
            tier: self.resolve(state, |s| v(&s.tier), b.tier),
            gate_approvers: self.resolve(state, |s| v(&s.gate.approvers), b.gate_approvers),
            gate_require_signed: self.resolve(state, |s| v(&s.gate.require_signed), b.gate_require_signed),
            gate_on_reject: self.resolve(
                state,
                |s| name(&s.gate.on_reject).map(|(n, sp)| (n.unwrap_or_default(), sp)),
                b.gate_on_reject,
            ),
            gate_on_changes: self.resolve(state, |s| name(&s.gate.on_changes), b.gate_on_changes),
            gate_timeout: self.resolve(state, |s| secs(&s.gate.timeout), b.gate_timeout),
            gate_default: self.resolve(state, |s| v(&s.gate.default), b.gate_default),
            notify: self.resolve(state, |s| v(&s.notify), b.notify),
            budget_runs: self.resolve(state, |s| some(&s.budget.runs), b.budget_runs),
            budget_seconds: self.resolve(state, |s| secs(&s.budget.seconds), b.budget_seconds),
            budget_cost: self.resolve(state, |s| some(&s.budget.cost), b.budget_cost),
            concurrency_group: self.resolve(state, |s| name(&s.concurrency.group), b.concurrency_group),
            concurrency_max: self.resolve(state, |s| some(&s.concurrency.max), b.concurrency_max),
            worktree_keep: self.resolve(state, |s| v(&s.worktree.keep), b.worktree_keep),
            accept: self.resolve(
                state,
                |s| s.accept.as_ref().map(|a| (a.get_ref().checks.clone(), a.span())),
                b.accept,
            ),
            accept_timeout: self.resolve(
                state,
                |s| s.accept.as_ref().and_then(|a| a.get_ref().timeout.map(|t| (t.0, a.span()))),
                b.accept_timeout,
            ),
        }
    }

    /// Per key: `[states.<state>]`, else `[defaults]`, else `built_in`.
    fn resolve<T: Clone>(
        &self,
        state: &str,
        get: impl Fn(&Settings) -> Option<(T, Range<usize>)>,
        built_in: Resolved<T>,
    ) -> Resolved<T> {
        if let Some((value, span)) = self.states.get(state).and_then(&get) {
            Resolved { value, from: Origin::State { state: state.to_owned(), line: self.line_of(span) } }
        } else if let Some((value, span)) = get(&self.defaults) {
            Resolved { value, from: Origin::Defaults { line: self.line_of(span) } }
        } else {
            built_in
        }
    }

    /// The failure policy of `state`.
    pub fn failure(&self, state: &str) -> FailurePolicy {
        fn v<T: Clone>(x: &Option<Spanned<T>>) -> Option<(T, Range<usize>)> {
            x.as_ref().map(|x| (x.get_ref().clone(), x.span()))
        }
        fn secs(x: &Option<Spanned<Seconds>>) -> Option<(u64, Range<usize>)> {
            x.as_ref().map(|x| (x.get_ref().0, x.span()))
        }
        fn breaker(s: &Settings) -> Option<&failure::BreakerSettings> {
            s.breaker.as_ref().map(|b| &b.0)
        }
        let b = FailurePolicy::built_in(state);
        FailurePolicy {
            retry_transient: self.resolve(state, |s| v(&s.retry.transient), b.retry_transient),
            retry_timeout: self.resolve(state, |s| v(&s.retry.timeout), b.retry_timeout),
            retry_logic: self.resolve(state, |s| v(&s.retry.logic), b.retry_logic),
            retry_auth: self.resolve(state, |s| v(&s.retry.auth), b.retry_auth),
            retry_state: self.resolve(state, |s| v(&s.retry.state), b.retry_state),
            retry_backoff: self.resolve(state, |s| secs(&s.retry.backoff), b.retry_backoff),
            retry_factor: self.resolve(state, |s| v(&s.retry.factor), b.retry_factor),
            retry_max_delay: self.resolve(state, |s| secs(&s.retry.max_delay), b.retry_max_delay),
            transient_exit_codes: self.resolve(state, |s| v(&s.classify.transient_exit_codes), b.transient_exit_codes),
            auth_exit_codes: self.resolve(state, |s| v(&s.classify.auth_exit_codes), b.auth_exit_codes),
            loop_soft: self.resolve(state, |s| v(&s.r#loop.soft), b.loop_soft),
            loop_hard: self.resolve(state, |s| v(&s.r#loop.hard), b.loop_hard),
            dlq_retry_after: self.resolve(
                state,
                |s| secs(&s.dlq.retry_after).map(|(x, sp)| (Some(x), sp)),
                b.dlq_retry_after,
            ),
            dlq_archive_after: self.resolve(state, |s| secs(&s.dlq.archive_after), b.dlq_archive_after),
            dlq_sweep: self.resolve(state, |s| secs(&s.dlq.sweep), b.dlq_sweep),
            breaker: self.resolve(state, |s| breaker(s).and_then(|b| v(&b.name)).map(|(n, sp)| (n.0, sp)), b.breaker),
            breaker_threshold: self.resolve(state, |s| breaker(s).and_then(|b| v(&b.threshold)), b.breaker_threshold),
            breaker_window: self.resolve(state, |s| breaker(s).and_then(|b| secs(&b.window)), b.breaker_window),
            breaker_identical: self.resolve(state, |s| breaker(s).and_then(|b| v(&b.identical)), b.breaker_identical),
            breaker_cooldown: self.resolve(state, |s| breaker(s).and_then(|b| secs(&b.cooldown)), b.breaker_cooldown),
            breaker_max_cooldown: self.resolve(
                state,
                |s| breaker(s).and_then(|b| secs(&b.max_cooldown)),
                b.breaker_max_cooldown,
            ),
        }
    }
}

/// Reads one numeric key of a table: its value and where it is written.
type Lookup = fn(&Settings) -> Option<(u64, Range<usize>)>;

/// Limits that depend on the key, not just the syntax: (span, key within the table, message).
fn check_limits(s: &Settings) -> Result<(), (Range<usize>, &'static str, String)> {
    let bounded = [
        ("timeout", &s.timeout, MAX_TIMEOUT),
        ("lease", &s.lease, MAX_LEASE),
        ("max_lease", &s.max_lease, MAX_LEASE),
        ("clock_skew", &s.clock_skew, 86_400),
    ];
    for (key, value, max) in bounded {
        if let Some(v) = value.as_ref().filter(|v| v.get_ref().0 > max) {
            let msg = format!("{} is more than the maximum of {}", v.get_ref(), duration::format_duration(max));
            return Err((v.span(), key, msg));
        }
    }
    Ok(())
}

fn line_at(line_starts: &[usize], offset: usize) -> usize {
    line_starts.partition_point(|&s| s <= offset).max(1)
}

/// serde's wording, in the file's terms: `unknown field `x`, expected one of `a`, `b`` →
/// `unknown key (known: a, b)`.
fn friendly(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    // rest: "x`, expected one of `a`, `b`" — the names are every other backtick-delimited piece.
    let known: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
    if known.is_empty() {
        "unknown key (this table takes no keys)".to_owned()
    } else {
        format!("unknown key (known: {})", known.join(", "))
    }
}

/// A key as written in a dotted path: bare if TOML allows it, quoted otherwise.
fn key_segment(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// The dotted path of the key or value an error's span points at, e.g. `states.build.timeout`.
fn key_path(root: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let mut path = Vec::new();
    if !locate_in_table(root, span, &mut path) {
        return None;
    }
    let mut out = String::new();
    for seg in path {
        if !out.is_empty() && !seg.starts_with('[') {
            out.push('.');
        }
        out.push_str(&seg);
    }
    Some(out)
}

fn locate_in_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<String>) -> bool {
    for (k, v) in table.iter() {
        path.push(key_segment(k.get_ref()));
        if k.span() == *span || locate_in_value(v, span, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// Innermost first: a child that holds the span beats its parent (a table's own span is its
/// header, or the whole inline table).
fn locate_in_value(v: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut Vec<String>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) if locate_in_table(t, span, path) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if locate_in_value(item, span, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    let own = v.span();
    own == *span || own.contains(&span.start)
}

#[cfg(test)]
mod tests;
