//! Table tests for the gc decisions: each rule and each protection, without git or a clock.

use super::*;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86400;
const LIMIT: Duration = Duration::from_secs(14 * 86400);

fn log(run: &str, age_days: i64) -> LogEntry {
    LogEntry {
        path: PathBuf::from(format!("logs/k/{run}.log")),
        branch_key: "k".into(),
        run_id: run.into(),
        mtime: NOW - age_days * DAY,
        bytes: 10,
    }
}

fn slot(locked: bool, kept_for: Option<&str>, age_days: i64) -> SlotEntry {
    SlotEntry {
        name: "slot-0".into(),
        path: PathBuf::from("worktrees/slot-0"),
        locked,
        kept_for: kept_for.map(str::to_owned),
        mtime: NOW - age_days * DAY,
        bytes: 100,
    }
}

fn reference(name: &str, run_id: Option<&str>, age_days: i64) -> RefEntry {
    RefEntry {
        name: name.into(),
        id: ObjectId::null(gix::hash::Kind::Sha1),
        kind: RefKind::parse(name).expect("a gc ref kind"),
        commit_time: NOW - age_days * DAY,
        run_id: run_id.map(str::to_owned),
    }
}

fn working(branch: &str, run: &str) -> HeadFacts {
    HeadFacts { branch: branch.into(), working: true, run_id: Some(run.into()), stalled_run: None }
}

fn failed(branch: &str, run: &str) -> HeadFacts {
    HeadFacts { branch: branch.into(), working: false, run_id: Some(run.into()), stalled_run: None }
}

fn plain(branch: &str) -> HeadFacts {
    HeadFacts { branch: branch.into(), working: false, run_id: None, stalled_run: None }
}

fn stalled(branch: &str, run: &str) -> HeadFacts {
    HeadFacts { branch: branch.into(), working: false, run_id: None, stalled_run: Some(run.into()) }
}

fn only_log(entry: LogEntry, heads: &[HeadFacts]) -> Verdict {
    let inv = Inventory { logs: vec![entry], ..Default::default() };
    decide(&inv, heads, NOW, LIMIT).logs.remove(0)
}

fn only_slot(entry: SlotEntry, heads: &[HeadFacts]) -> Verdict {
    let inv = Inventory { slots: vec![entry], ..Default::default() };
    decide(&inv, heads, NOW, LIMIT).slots.remove(0)
}

fn only_ref(entry: RefEntry, heads: &[HeadFacts]) -> Verdict {
    let inv = Inventory { refs: vec![entry], ..Default::default() };
    decide(&inv, heads, NOW, LIMIT).refs.remove(0)
}

#[test]
fn logs_go_after_the_cutoff_unless_their_run_is_running_or_recorded() {
    let table: &[(&str, LogEntry, Vec<HeadFacts>, bool)] = &[
        ("old, unrelated", log("r1", 20), vec![plain("t1")], true),
        ("old, no branches at all", log("r1", 20), vec![], true),
        ("exactly at the limit", log("r1", 14), vec![], true),
        ("new", log("r1", 3), vec![], false),
        ("old but running", log("r1", 20), vec![working("t1", "r1")], false),
        ("old but the failure at a head", log("r1", 20), vec![failed("t1", "r1")], false),
        ("old but stalled at a head", log("r1", 20), vec![stalled("t1", "r1")], false),
        ("old, another run is at the head", log("r1", 20), vec![failed("t1", "r2")], true),
    ];
    for (what, entry, heads, removed) in table {
        let v = only_log(entry.clone(), heads);
        assert_eq!(v.removes(), *removed, "{what}: {v:?}");
    }
    assert!(only_log(log("r1", 20), &[working("t1", "r1")]).reason().contains("running on t1"));
    assert!(only_log(log("r1", 20), &[failed("t1", "r1")]).reason().contains("head of t1"));
}

#[test]
fn slots_follow_lock_kept_mark_and_branch_head() {
    let table: &[(&str, SlotEntry, Vec<HeadFacts>, bool)] = &[
        ("locked, old", slot(true, None, 30), vec![], false),
        ("locked, kept, branch gone", slot(true, Some("t1"), 30), vec![], false),
        ("idle, old", slot(false, None, 30), vec![], true),
        ("idle, new", slot(false, None, 2), vec![], false),
        ("kept, old, branch gone", slot(false, Some("t1"), 30), vec![plain("t2")], true),
        ("kept, new, branch gone", slot(false, Some("t1"), 2), vec![], false),
        ("kept, old, head still the failure", slot(false, Some("t1"), 30), vec![failed("t1", "r1")], false),
        ("kept, old, branch running again", slot(false, Some("t1"), 30), vec![working("t1", "r2")], false),
        ("kept, old, head moved on", slot(false, Some("t1"), 30), vec![plain("t1")], true),
        ("kept, new, head moved on", slot(false, Some("t1"), 2), vec![plain("t1")], false),
        // Remote mode: a remote-tracking head that still records the failure protects it.
        (
            "kept, old, one of two heads records it",
            slot(false, Some("t1"), 30),
            vec![plain("t1"), failed("t1", "r1")],
            false,
        ),
    ];
    for (what, entry, heads, removed) in table {
        let v = only_slot(entry.clone(), heads);
        assert_eq!(v.removes(), *removed, "{what}: {v:?}");
    }
    assert!(only_slot(slot(false, Some("t1"), 30), &[]).reason().contains("no longer exists"));
    assert!(only_slot(slot(false, Some("t1"), 30), &[plain("t1")]).reason().contains("moved on"));
}

#[test]
fn lease_refs_go_once_the_head_is_not_their_runs_working_commit() {
    let table: &[(&str, RefEntry, Vec<HeadFacts>, bool)] = &[
        ("running, brand new", reference("refs/baton/leases/t1", Some("r1"), 0), vec![working("t1", "r1")], false),
        ("running, old", reference("refs/baton/leases/t1", Some("r1"), 99), vec![working("t1", "r1")], false),
        ("head moved on, brand new", reference("refs/baton/leases/t1", Some("r1"), 0), vec![plain("t1")], true),
        (
            "another run holds the branch",
            reference("refs/baton/leases/t1", Some("r1"), 0),
            vec![working("t1", "r2")],
            true,
        ),
        ("the run failed", reference("refs/baton/leases/t1", Some("r1"), 0), vec![failed("t1", "r1")], true),
        ("branch gone", reference("refs/baton/leases/t1", Some("r1"), 0), vec![], true),
        ("no run id", reference("refs/baton/leases/t1", None, 0), vec![working("t1", "r1")], true),
        ("branch with slashes", reference("refs/baton/leases/a/b", Some("r1"), 0), vec![working("a/b", "r1")], false),
        (
            "same run on another branch",
            reference("refs/baton/leases/t1", Some("r1"), 0),
            vec![working("t2", "r1")],
            true,
        ),
    ];
    for (what, entry, heads, removed) in table {
        let v = only_ref(entry.clone(), heads);
        assert_eq!(v.removes(), *removed, "{what}: {v:?}");
    }
}

#[test]
fn salvage_rejected_and_conflict_refs_go_after_the_cutoff_unless_protected() {
    let table: &[(&str, RefEntry, Vec<HeadFacts>, bool)] = &[
        ("salvage, old", reference("refs/baton/salvage/t1-1234/1700000000000", None, 20), vec![], true),
        ("salvage, new", reference("refs/baton/salvage/t1-1234/1700000000000", None, 1), vec![], false),
        ("rejected, old", reference("refs/baton/rejected/t1/r1", None, 20), vec![plain("t1")], true),
        ("rejected, new", reference("refs/baton/rejected/t1/r1", None, 1), vec![], false),
        (
            "rejected, old, failure at head",
            reference("refs/baton/rejected/t1/r1", None, 20),
            vec![failed("t1", "r1")],
            false,
        ),
        (
            "rejected, old, running",
            reference("refs/baton/rejected/a/b/r1", None, 20),
            vec![working("a/b", "r1")],
            false,
        ),
        ("conflict, old", reference("refs/baton/conflicts/t1/r1", None, 20), vec![failed("t1", "r2")], true),
        ("conflict, new", reference("refs/baton/conflicts/t1/r1", None, 1), vec![], false),
        (
            "conflict, old, failure at head",
            reference("refs/baton/conflicts/t1/r1", None, 20),
            vec![failed("t1", "r1")],
            false,
        ),
    ];
    for (what, entry, heads, removed) in table {
        let v = only_ref(entry.clone(), heads);
        assert_eq!(v.removes(), *removed, "{what}: {v:?}");
    }
}

#[test]
fn verdicts_line_up_with_the_inventory() {
    let inv = Inventory {
        logs: vec![log("a", 20), log("b", 1), log("c", 20)],
        slots: vec![slot(false, None, 20), slot(true, None, 20)],
        refs: vec![reference("refs/baton/salvage/k/1", None, 1), reference("refs/baton/leases/t1", Some("c"), 1)],
    };
    let d = decide(&inv, &[failed("t9", "c")], NOW, LIMIT);
    assert_eq!(d.logs.iter().map(Verdict::removes).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(d.slots.iter().map(Verdict::removes).collect::<Vec<_>>(), [true, false]);
    assert_eq!(d.refs.iter().map(Verdict::removes).collect::<Vec<_>>(), [false, true]);
}

#[test]
fn zero_age_removes_everything_unprotected() {
    let inv = Inventory { logs: vec![log("a", 0), log("b", 0)], ..Default::default() };
    let d = decide(&inv, &[failed("t1", "b")], NOW, Duration::ZERO);
    assert_eq!(d.logs.iter().map(Verdict::removes).collect::<Vec<_>>(), [true, false]);
}

#[test]
fn ref_kinds_are_parsed_and_unknown_ones_left_alone() {
    assert_eq!(RefKind::parse("refs/baton/leases/feature/x"), Some(RefKind::Lease { branch: "feature/x".into() }));
    assert_eq!(
        RefKind::parse("refs/baton/rejected/feature/x/r-1"),
        Some(RefKind::Rejected { branch: "feature/x".into(), run_id: "r-1".into() })
    );
    assert_eq!(
        RefKind::parse("refs/baton/conflicts/t/r"),
        Some(RefKind::Conflict { branch: "t".into(), run_id: "r".into() })
    );
    assert_eq!(RefKind::parse("refs/baton/salvage/k/1"), Some(RefKind::Salvage));
    for other in ["refs/baton/breakers/origin", "refs/baton/rejected/onlyrun", "refs/heads/x", "refs/baton/leases"] {
        assert_eq!(RefKind::parse(other), None, "{other}");
    }
}

#[test]
fn ages_parse_with_a_unit() {
    for (text, secs) in [("30s", 30), ("5m", 300), ("2h", 7200), ("14d", 14 * 86400), ("0s", 0)] {
        assert_eq!(parse_age(text), Ok(Duration::from_secs(secs)), "{text}");
    }
    for bad in ["", "14", "d", "-1d", "1.5h", "1w", "14 d", "1d2h", "99999999999999999999d", "+3d"] {
        assert!(parse_age(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn usage_counts_by_kind() {
    let inv = Inventory {
        logs: vec![log("a", 1), log("b", 1)],
        slots: vec![slot(false, Some("t1"), 1), slot(true, None, 1)],
        refs: vec![],
    };
    let names = ["refs/baton/salvage/k/1", "refs/baton/salvage/k/2", "refs/baton/breakers/origin"].map(String::from);
    let u = usage("/r/.git/baton".into(), &inv, &names);
    assert_eq!(u.logs, LogUsage { count: 2, bytes: 20 });
    assert_eq!(u.slots, SlotUsage { count: 2, kept: 1, locked: 1, bytes: 200 });
    assert_eq!(u.refs["salvage"], 2);
    assert_eq!(u.refs["breakers"], 1);
    assert_eq!(u.refs["leases"], 0);
}

#[test]
fn spawn_refs_go_once_their_run_no_longer_runs() {
    assert_eq!(RefKind::parse("refs/baton/spawn/r1/kid/a"), Some(RefKind::Spawn { run_id: "r1".into() }));
    assert_eq!(RefKind::parse("refs/baton/spawn/r1"), None);
    let kid = || reference("refs/baton/spawn/r1/kid", None, 0);
    let table: &[(&str, Vec<HeadFacts>, bool)] = &[
        ("the run is running", vec![working("p", "r1")], false),
        ("another run holds the parent", vec![working("p", "r2")], true),
        ("the run's failure is recorded", vec![failed("p", "r1")], true),
        ("the run was taken over", vec![stalled("p", "r1")], true),
        ("nothing", vec![], true),
    ];
    for (what, heads, removed) in table {
        let v = only_ref(kid(), heads);
        assert_eq!(v.removes(), *removed, "{what}: {v:?}");
    }
}
