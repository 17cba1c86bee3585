use super::*;

fn usd(s: &str) -> Option<Money> {
    Some(Money::parse(s).unwrap())
}

#[test]
fn verdicts_are_read_from_the_first_non_empty_line() {
    use Verdict::*;
    let ok = |v: Verdict, d: &str| Ok((v, d.to_owned()));
    for (text, want) in [
        ("COMPLETED: added the flag\n\nTests pass.\n", ok(Completed("added the flag".into()), "Tests pass.")),
        ("\n\n  COMPLETED:   spaced   out  \n", ok(Completed("spaced out".into()), "")),
        ("FAILED: the API is gone\nlog:\n  404\n", ok(Failed("the API is gone".into()), "log:\n  404")),
        ("FAILED:\n", ok(Failed("(no reason given)".into()), "")),
        ("BLOCKED: which database?\nPostgres or SQLite", ok(Blocked("which database?".into()), "Postgres or SQLite")),
        ("COMPLETED:\n", Err(ReplyError::EmptyVerdict("COMPLETED:"))),
        ("BLOCKED:   \nwhy", Err(ReplyError::EmptyVerdict("BLOCKED:"))),
        ("", Err(ReplyError::Empty)),
        (" \n\t\n", Err(ReplyError::Empty)),
        ("I did it!\nCOMPLETED: x", Err(ReplyError::NoVerdict("I did it!".into()))),
        ("completed: x", Err(ReplyError::NoVerdict("completed: x".into()))),
        ("**COMPLETED:** x", Err(ReplyError::NoVerdict("**COMPLETED:** x".into()))),
        ("COMPLETED x", Err(ReplyError::NoVerdict("COMPLETED x".into()))),
    ] {
        assert_eq!(parse_text(text), want, "{text:?}");
    }
}

#[test]
fn json_output_modes_give_the_text_the_cost_and_the_tokens() {
    let claude = r#"{"type":"result","subtype":"success","is_error":false,"result":"COMPLETED: done it\nmore","total_cost_usd":0.0123456789,"usage":{"input_tokens":1200,"output_tokens":300,"cache_read_input_tokens":5000}}"#;
    let claude_error = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"result":"ran out of turns","total_cost_usd":0.5}"#;
    let claude_stream = "{\"type\":\"system\",\"subtype\":\"init\"}\n{\"type\":\"assistant\",\"message\":{}}\n\
        {\"type\":\"result\",\"result\":\"BLOCKED: which API?\",\"total_cost_usd\":2,\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}\n";
    let gemini = r#"{"response":"FAILED: cannot reach the repo","stats":{"models":{"gemini-2.5-pro":{"tokens":{"prompt":100,"candidates":20,"total":130}},"gemini-2.5-flash":{"tokens":{"total":70}}}}}"#;
    let gemini_error = r#"{"response":null,"error":{"type":"ApiError","message":"quota exceeded"}}"#;
    let codex = "{\"type\":\"thread.started\",\"thread_id\":\"x\"}\n{\"type\":\"turn.started\"}\n\
        {\"type\":\"item.completed\",\"item\":{\"id\":\"i0\",\"type\":\"reasoning\",\"text\":\"thinking\"}}\n\
        {\"type\":\"item.completed\",\"item\":{\"id\":\"i1\",\"type\":\"agent_message\",\"text\":\"COMPLETED: codex did it\"}}\n\
        {\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":900,\"cached_input_tokens\":800,\"output_tokens\":100}}\n";
    let codex_failed =
        "{\"type\":\"turn.started\"}\n{\"type\":\"turn.failed\",\"error\":{\"message\":\"stream disconnected\"}}\n";
    let plain_json = r#"{"hello":"world"}"#;
    // (stdout, verdict or error text, cost, tokens)
    type Case<'a> = (&'a str, Result<(&'a str, &'a str), &'a str>, Option<Money>, Option<u64>);
    let cases: Vec<Case<'_>> = vec![
        (claude, Ok(("completed", "done it")), usd("0.012346"), Some(1500)),
        (claude_error, Err("the agent reported an error: ran out of turns"), usd("0.5"), None),
        (claude_stream, Ok(("blocked", "which API?")), usd("2"), Some(15)),
        (gemini, Ok(("failed", "cannot reach the repo")), None, Some(200)),
        (gemini_error, Err("the agent reported an error: quota exceeded"), None, None),
        (codex, Ok(("completed", "codex did it")), None, Some(1000)),
        (codex_failed, Err("the agent reported an error: stream disconnected"), None, None),
        (plain_json, Err("does not start with COMPLETED:"), None, None),
        ("COMPLETED: plain text\n", Ok(("completed", "plain text")), None, None),
        ("{not json\nCOMPLETED: x", Err("its first line: \"{not json\""), None, None),
    ];
    for (stdout, want, cost, tokens) in cases {
        let (reply, usage) = parse(stdout);
        assert_eq!(usage, Usage { cost, tokens }, "{stdout}");
        match (reply, want) {
            (Ok(r), Ok((word, line))) => {
                assert_eq!((r.verdict.word(), r.verdict.line()), (word, line), "{stdout}");
                assert_eq!(r.usage, usage);
            }
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e} lacks {part:?}"),
            (got, want) => panic!("{stdout}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn costs_are_sane_dollar_amounts() {
    for (v, want) in [
        (serde_json::json!(0.1), usd("0.1")),
        (serde_json::json!(3), usd("3")),
        (serde_json::json!("0.25"), usd("0.25")),
        (serde_json::json!(0.0000004), usd("0")),
        (serde_json::json!(-1.0), None),
        (serde_json::json!("lots"), None),
        (serde_json::json!(null), None),
        (serde_json::json!(1e13), None),
    ] {
        assert_eq!(money(&v), want, "{v}");
    }
}
