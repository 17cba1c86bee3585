use super::*;

const ENVELOPE: &str = "Please be quick.\n\n## Task: T-7\n\nGoal: add a --json flag to status\n\n\
    Acceptance Criteria:\n- cargo test passes\n- the flag is documented\n\n\
    Inputs:\n- src/cli/status.rs — the command\n- README.md\n\n\
    Budget: 3 runs, $2\n\nRisk Level: low\n\nStop Conditions:\n- the schema must change\n\n\
    ## Notes\n\nAsk Ana about the field names.\n";

fn input(body: &str) -> Input<'_> {
    Input { branch: "t1", state: "implement", body, attempt: 1, ..Input::default() }
}

/// Does `text` hold each of `want`, in this order?
fn in_order(text: &str, want: &[&str]) -> Result<(), String> {
    let mut at = 0;
    for w in want {
        match text[at..].find(w) {
            Some(i) => at += i + w.len(),
            None => return Err(format!("{w:?} missing (or out of order) in\n{text}")),
        }
    }
    Ok(())
}

#[test]
fn prompts_hold_the_task_the_history_and_the_contract() {
    let previous = Previous {
        attempt: 1,
        error: Some("handler exited with status 1".into()),
        error_type: Some("logic".into()),
        section: Some("## Attempt 1 failed\n\n- error type: logic\n\n    FAILED: tests do not compile".into()),
    };
    let children = Children {
        parent: Some("t1".into()),
        correlation_id: Some("c-42".into()),
        rule: Some("all".into()),
        children: vec![
            Child {
                branch: "t1-api".into(),
                state: Some("done".into()),
                outcome: Some("succeeded".into()),
                subject: Some("API ready".into()),
                body: Some("## Details\nendpoints added".into()),
                cost: Some(serde_json::json!(0.25)),
                head: Some("abc123".into()),
            },
            Child { branch: "t1-ui".into(), state: Some("failed".into()), ..Child::default() },
        ],
    };
    let with_attempts = format!("{ENVELOPE}\n## Attempt 1 failed\n\n- error type: logic\n");
    let round_body = format!(
        "{ENVELOPE}\n## Attempt 1 failed\n\n- error type: logic\n\nRound 4 of implement (loop.soft = 3, loop.hard = 10): this state keeps coming back; change the approach."
    );
    let raw_retry = "fix the bug\n\n## Attempt 1 failed\n\n- error: boom\n";
    // (name, input, wanted in order, not wanted)
    let cases: Vec<(&str, Input<'_>, Vec<&str>, Vec<&str>)> = vec![
        (
            "envelope",
            input(ENVELOPE),
            vec![
                "branch `t1` (step `implement`)",
                "## Goal (task T-7)\n\nadd a --json flag to status\n",
                "## Acceptance criteria (all must hold)\n\n- cargo test passes\n- the flag is documented\n",
                "## Inputs\n\n- src/cli/status.rs — the command\n- README.md\n",
                "## Budget\n\n3 runs, $2\n",
                "## Risk level\n\nlow\n",
                "## Stop conditions",
                "- the schema must change\n",
                "## Notes\n\nPlease be quick.\n\nAsk Ana about the field names.\n",
                "## How to answer",
                "COMPLETED: <one line",
                "FAILED: <one line",
                "BLOCKED: <one line",
            ],
            vec!["## Task: T-7", "Goal: add", "## Attempt", "attempt 1", "## Child tasks"],
        ),
        (
            "raw body, no envelope",
            input("Fix the flaky test in tests/runner.rs.\n"),
            vec!["## Task\n\nFix the flaky test in tests/runner.rs.\n", "## How to answer"],
            vec!["## Goal", "## Notes", "previous attempt"],
        ),
        (
            "empty body",
            input(""),
            vec!["## Task\n\n(The task has no description.)\n", "## How to answer"],
            vec![],
        ),
        (
            "a malformed envelope is shown as written",
            input("## Task: T-1\n\nGoal:\n"),
            vec!["## Task\n\n## Task: T-1\n\nGoal:\n", "## How to answer"],
            vec!["## Goal ("],
        ),
        (
            "retry of an envelope: the failure once, not the body's copy",
            Input { attempt: 2, max_attempts: Some(3), previous: Some(previous.clone()), ..input(&with_attempts) },
            vec![
                "This is attempt 2 of 3.",
                "## Goal (task T-7)",
                "## The previous attempt (attempt 1) failed\n\nError (logic): handler exited with status 1\n",
                "### Attempt 1 failed",
                "FAILED: tests do not compile",
                "## How to answer",
            ],
            vec!["\n## Attempt 1 failed"],
        ),
        (
            "retry of a raw body without a record",
            Input { attempt: 2, previous: Some(Previous { attempt: 1, ..Previous::default() }), ..input(raw_retry) },
            vec!["This is attempt 2.", "## Task\n\nfix the bug\n\n## The previous", "(No record of its output.)"],
            vec!["- error: boom", "Error"],
        ),
        (
            "past the loop's soft cap the envelope still reads and the note stands apart",
            Input { round: Some(4), ..input(&round_body) },
            vec!["## Goal (task T-7)", "## This step keeps coming back\n\nRound 4 of implement (loop.soft = 3", "## How to answer"],
            vec!["## Task\n", "- error type"],
        ),
        (
            "a round note of another round is left in the body",
            Input { round: Some(5), ..input("do it\n\nRound 4 of x (loop.soft = 3): y") },
            vec!["## Task\n\ndo it\n\nRound 4 of x"],
            vec!["keeps coming back"],
        ),
        (
            "children of a join",
            Input { children: Some(&children), ..input("merge the parts") },
            vec![
                "## Task\n\nmerge the parts",
                "## Child tasks\n\nThis task waited for its child tasks (join rule `all`, correlation id `c-42`). 2 child task(s):",
                "### `t1-api`: done (succeeded)\n\nLast commit: API ready\nHead: abc123\nCost: 0.25\n\n#### Details\nendpoints added\n",
                "### `t1-ui`: failed\n",
                "## How to answer",
            ],
            vec!["\n## Details"],
        ),
        (
            "unreadable children are said, not hidden",
            Input { children_problem: Some("reading BATON_CHILDREN_JSON: gone".into()), ..input("x") },
            vec!["## Child tasks\n\n(The runner's summary of the child tasks could not be read: reading BATON_CHILDREN_JSON: gone.)"],
            vec![],
        ),
    ];
    for (name, i, want, not) in cases {
        let p = build(&i);
        if let Err(e) = in_order(&p, &want) {
            panic!("{name}: {e}");
        }
        for n in not {
            assert!(!p.contains(n), "{name}: {n:?} should not be in\n{p}");
        }
        assert!(p.ends_with(&format!("{CONTRACT}\n")), "{name}: the contract ends the prompt");
    }
}

#[test]
fn the_runners_children_file_reads_and_tolerates_gaps() {
    let full = r#"{"parent":"p","correlation_id":"c","rule":"all","children":[
        {"branch":"a","state":"done","outcome":"succeeded","subject":"s","body":"b","cost":"0.5","head":"h"},
        {"branch":"b","state":null,"cost":null,"extra":1}],"future":true}"#;
    let c = Children::parse(full).unwrap();
    assert_eq!(c.children.len(), 2);
    assert_eq!(c.children[0].cost, Some(serde_json::json!("0.5")));
    assert_eq!(c.children[1].state, None);
    assert_eq!(Children::parse("{}").unwrap(), Children::default());
    for bad in ["", "{\"children\":[{}]}", "{\"children\":3}"] {
        assert!(Children::parse(bad).unwrap_err().starts_with("not the children JSON"), "{bad}");
    }
}
