#!/usr/bin/env python3
"""Reporting half of scripts/action-step.sh (the git-baton GitHub Actions step).

Reads the JSON lines of `git baton run --json` and turns them into what GitHub shows: workflow
commands (`::error`, `::warning`, log groups), the Markdown of the step summary, and the step's
outputs. Standard library only, so it runs on any runner image with python3.

    action_report.py moved    TICK_FILE                 # how many claims/take-overs the tick made
    action_report.py annotate TICK TICK_FILE ALL_FILE   # workflow commands; append to ALL_FILE
    action_report.py summary  ALL_FILE BOARD_FILE REMOTE TICKS CAPPED   # Markdown on stdout
    action_report.py counts   ALL_FILE                  # key=value lines for $GITHUB_OUTPUT
"""

import html
import json
import os
import secrets
import sys

ACTIONS = ("claimed", "succeeded", "parked", "failed", "took-over", "lost-race", "notice", "error")
# A tick that did one of these may have made another branch (or the same one) actionable.
MOVED = ("claimed", "took-over", "joined")
LOG_TAIL_LINES = 60


def read_events(path):
    """One dict per JSON line; a line that is not a JSON object becomes an `error` event."""
    events = []
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return events
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            if not isinstance(ev, dict):
                ev = {"branch": "", "action": "error", "error": "unreadable output: " + line[:200]}
            events.append(ev)
    return events


def text(value):
    return "" if value is None else str(value)


# --- workflow commands ---------------------------------------------------------------------

def esc_data(s):
    return text(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def esc_prop(s):
    return esc_data(s).replace(":", "%3A").replace(",", "%2C")


def command(name, message, **props):
    p = ",".join(f"{k}={esc_prop(v)}" for k, v in props.items() if v)
    return f"::{name}{' ' + p if p else ''}::{esc_data(message)}"


def annotation(ev):
    """The `::error`/`::warning` line for an event, or None."""
    branch = text(ev.get("branch")) or "(runner)"
    state = text(ev.get("state")) or "?"
    action = ev.get("action")
    error = text(ev.get("error"))
    if action == "failed":
        parts = [f"{branch}: the handler for '{state}' failed"]
        if error:
            parts.append(f": {error}")
        elif ev.get("exit_code") is not None:
            parts.append(f": exit code {ev['exit_code']}")
        parts.append(f"; the branch moved to '{text(ev.get('next_state')) or 'failed'}'")
        if ev.get("log"):
            parts.append(f"; log: {ev['log']}")
        return command("error", "".join(parts), title=f"git-baton: {branch} failed in {state}")
    if action == "error":
        return command("error", f"{branch}: {error or 'runner error'}", title=f"git-baton: {branch}")
    if action == "notice":
        return command("warning", f"{branch}: {error}", title=f"git-baton: {branch}")
    if action == "took-over":
        msg = f"{branch}: took over an expired lease" + (f" ({error})" if error else "")
        return command("warning", msg, title=f"git-baton: {branch} lease expired")
    return None


def print_log_tail(ev):
    """The end of a failed handler's log in a collapsed group. Handler output is not trusted:
    workflow commands in it are switched off with a one-time stop token."""
    path = ev.get("log")
    if not path or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()[-LOG_TAIL_LINES:]
    token = secrets.token_hex(16)
    title = f"git-baton: last {len(lines)} lines of {text(ev.get('branch'))} ({text(ev.get('state'))}, run {text(ev.get('run_id'))})"
    print(f"::group::{esc_data(title)}")
    print(f"::stop-commands::{token}")
    for line in lines:
        print(line)
    print(f"::{token}::")
    print("::endgroup::")


def cmd_moved(tick_file):
    print(sum(1 for ev in read_events(tick_file) if ev.get("action") in MOVED))


def cmd_annotate(tick, tick_file, all_file):
    events = read_events(tick_file)
    with open(all_file, "a", encoding="utf-8") as out:
        for ev in events:
            out.write(json.dumps(dict(ev, tick=int(tick)), separators=(",", ":")) + "\n")
    for ev in events:
        line = annotation(ev)
        if line:
            print(line)
        if ev.get("action") == "failed":
            print_log_tail(ev)
    sys.stdout.flush()


# --- step summary ------------------------------------------------------------------------------

def cell(value):
    """Plain text in a table cell: HTML-escaped, no pipes, no line breaks."""
    s = html.escape(text(value), quote=False).replace("|", "&#124;")
    return " ".join(s.split())


def code(value):
    s = text(value)
    return f"<code>{cell(s)}</code>" if s else ""


def duration(ms):
    if ms is None:
        return ""
    ms = int(ms)
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def counts(events):
    c = {a: 0 for a in ACTIONS}
    for ev in events:
        a = ev.get("action")
        if a in c:
            c[a] += 1
    return c


def read_board(path):
    """`git baton status --json`: JSON Lines, one object per branch (none: an empty board)."""
    try:
        with open(path, encoding="utf-8") as f:
            board = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    return board if all(isinstance(b, dict) for b in board) else None


def mermaid_label(value):
    """Text inside a quoted Mermaid label: no quotes, brackets, pipes, markup or line breaks
    (Mermaid's own `#name;` entities stand in for them)."""
    s = " ".join(text(value).split())
    for ch, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;"), ("`", "#96;")):
        s = s.replace(ch, entity)
    return s


def mermaid(events):
    """The transitions the job made as a Mermaid flowchart (GitHub renders it in the summary):
    one node per state, one edge per (state, next state) with how often it happened. Empty when
    no handler finished."""
    counts = {}
    for ev in events:
        if ev.get("action") not in ("succeeded", "failed"):
            continue
        a = text(ev.get("state"))
        b = text(ev.get("next_state")) or ("failed" if ev.get("action") == "failed" else "")
        if a and b:
            counts[(a, b)] = counts.get((a, b), 0) + 1
    if not counts:
        return []
    states = sorted({s for edge in counts for s in edge})
    ids = {name: f"s{i}" for i, name in enumerate(states)}
    out = ["```mermaid", "flowchart LR"]
    for name in states:
        out.append(f'    {ids[name]}["{mermaid_label(name)}"]')
    for (a, b), n in sorted(counts.items()):
        out.append(f"    {ids[a]} -->|{n}| {ids[b]}")
    out.append("```")
    return out


def cmd_summary(all_file, board_file, remote, ticks, capped):
    events = read_events(all_file)
    c = counts(events)
    out = []
    ticks = int(ticks)
    out.append(f"### git-baton: {ticks} tick{'s' if ticks != 1 else ''} on <code>{cell(remote)}</code>")
    out.append("")
    out.append(
        f"{c['claimed']} claimed · {c['succeeded']} succeeded · {c['parked']} parked · "
        f"**{c['failed']} failed** · {c['took-over']} took over · {c['lost-race']} lost race · "
        f"{c['notice']} notices · **{c['error']} errors**"
    )
    out.append("")
    if capped == "true":
        out.append(
            f"> [!WARNING]\n> Stopped after the cap of {ticks} ticks while branches were still moving; "
            "the next push or scheduled run continues."
        )
        out.append("")
    rows = [ev for ev in events if ev.get("action") != "claimed"]
    if rows:
        out.append("| Tick | Branch | Action | State | Next state | Exit | Duration | Commit | Error |")
        out.append("|---:|---|---|---|---|---:|---:|---|---|")
        for ev in rows:
            action = text(ev.get("action"))
            shown = f"**{cell(action)}**" if action in ("failed", "error") else cell(action)
            commit = text(ev.get("commit"))[:12]
            out.append(
                "| "
                + " | ".join(
                    [
                        cell(ev.get("tick")),
                        code(ev.get("branch")),
                        shown,
                        cell(ev.get("state")),
                        cell(ev.get("next_state")),
                        cell(ev.get("exit_code")),
                        duration(ev.get("duration_ms")),
                        code(commit),
                        cell(ev.get("error")),
                    ]
                )
                + " |"
            )
    else:
        out.append("Nothing was actionable.")
    out.append("")
    diagram = mermaid(events)
    if diagram:
        out.append("#### Transitions in this job")
        out.append("")
        out.extend(diagram)
        out.append("")
    board = read_board(board_file)
    if board is not None:
        with_state = [b for b in board if isinstance(b, dict) and (b.get("state") or b.get("invalid_state"))]
        out.append(f"#### Branches on <code>{cell(remote)}</code> afterwards")
        out.append("")
        if with_state:
            out.append("| Branch | State | Lease | Handler | Commit |")
            out.append("|---|---|---|---|---|")
            for b in sorted(with_state, key=lambda b: text(b.get("branch"))):
                name = text(b.get("branch"))
                if name.startswith(remote + "/"):
                    name = name[len(remote) + 1 :]
                state = cell(b.get("state")) if b.get("state") else f"invalid: {cell(b.get('invalid_state'))}"
                handler = {True: "yes", False: "no"}.get(b.get("handler"), "")
                lease = text(b.get("lease"))
                out.append(
                    f"| {code(name)} | {state} | {cell('' if lease == 'n/a' else lease)} | "
                    f"{handler} | {code(text(b.get('commit'))[:12])} |"
                )
        else:
            out.append("No branch carries a state.")
        out.append("")
    sys.stdout.write("\n".join(out) + "\n")


def cmd_counts(all_file):
    c = counts(read_events(all_file))
    for action in ACTIONS:
        name = {"notice": "notices", "error": "errors"}.get(action, action)
        print(f"{name}={c[action]}")


def main(argv):
    usage = "usage: action_report.py moved|annotate|summary|counts ARGS..."
    if len(argv) < 2:
        sys.exit(usage)
    cmd, args = argv[1], argv[2:]
    table = {
        "moved": (cmd_moved, 1),
        "annotate": (cmd_annotate, 3),
        "summary": (cmd_summary, 5),
        "counts": (cmd_counts, 1),
    }
    if cmd not in table or len(args) != table[cmd][1]:
        sys.exit(usage)
    table[cmd][0](*args)


if __name__ == "__main__":
    main(sys.argv)
