//! The labelled corpus of workflow text under `tests/data/screening/` (see its README): each
//! line a sentence and the verdict the screening policy expects. This test checks that the
//! corpus is what it claims to be (well formed, no sentence twice, a held-out fifth, every
//! verdict, category and kind). The scoring test is the gate of screening by intent: on each
//! part, tuned and held out, precision and recall of refusing (`block`) and of flagging
//! (`block` or `hold`) at least 0.95, and at most 2% of the `allow` sentences flagged. The
//! default rules of today score words, not intent, and are far from it, so the gate is ignored
//! until the intent rules land: `cargo test -p levqor-core --test screening_intent_corpus --
//! --ignored --nocapture` prints the figures.

use levqor_core::screening::{Screener, Verdict, default_rules};
use std::collections::{BTreeMap, BTreeSet};

const VERDICTS: [&str; 4] = ["block", "hold", "warn", "allow"];
const CATEGORIES: [&str; 4] = ["medical", "legal", "financial", "none"];
const KINDS: [&str; 5] = ["plain", "disguise", "figurative", "unrelated", "business"];

struct Line {
    verdict: &'static str,
    category: &'static str,
    kind: &'static str,
    text: &'static str,
}

fn parse(name: &str, data: &'static str) -> Vec<Line> {
    data.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            let cols: Vec<&'static str> = l.split('\t').collect();
            assert_eq!(
                cols.len(),
                4,
                "{name}:{}: four tab-separated columns",
                n + 1
            );
            let [verdict, category, kind, text] = [cols[0], cols[1], cols[2], cols[3]];
            assert!(
                VERDICTS.contains(&verdict),
                "{name}:{}: verdict {verdict}",
                n + 1
            );
            assert!(
                CATEGORIES.contains(&category),
                "{name}:{}: category {category}",
                n + 1
            );
            assert!(KINDS.contains(&kind), "{name}:{}: kind {kind}", n + 1);
            assert!(
                category != "none" || verdict == "allow",
                "{name}:{}: `none` is for allow",
                n + 1
            );
            assert!(!text.trim().is_empty(), "{name}:{}: text", n + 1);
            Line {
                verdict,
                category,
                kind,
                text,
            }
        })
        .collect()
}

fn tune() -> Vec<Line> {
    parse("tune.tsv", include_str!("data/screening/tune.tsv"))
}

fn heldout() -> Vec<Line> {
    parse("heldout.tsv", include_str!("data/screening/heldout.tsv"))
}

#[test]
fn the_corpus_is_well_formed_with_a_held_out_fifth_and_every_case() {
    let (tune, heldout) = (tune(), heldout());
    let total = tune.len() + heldout.len();
    assert!(total >= 400, "at least 400 sentences: {total}");
    let share = heldout.len() as f64 / total as f64;
    assert!(
        (0.18..=0.22).contains(&share),
        "a fifth held out: {share:.3}"
    );
    let mut seen = BTreeSet::new();
    for line in tune.iter().chain(&heldout) {
        assert!(
            seen.insert(line.text.to_lowercase()),
            "twice: {}",
            line.text
        );
    }
    for part in [&tune, &heldout] {
        for verdict in VERDICTS {
            for category in ["medical", "legal", "financial"] {
                let n = part
                    .iter()
                    .filter(|l| l.verdict == verdict && l.category == category)
                    .count();
                assert!(n > 0, "no {verdict} {category} sentence in one part");
            }
        }
    }
    let count = |f: &dyn Fn(&Line) -> bool| tune.iter().chain(&heldout).filter(|l| f(l)).count();
    assert!(
        count(&|l| l.verdict != "allow" && l.kind == "disguise") >= 25,
        "disguises"
    );
    assert!(
        count(&|l| l.kind == "figurative" || l.kind == "unrelated") >= 60,
        "other senses"
    );
    assert!(
        count(&|l| l.kind == "business" && l.category == "none") >= 100,
        "business text"
    );
}

/// A decision's precision and recall.
fn precision_recall(
    lines: &[(&Line, Verdict)],
    expected: &dyn Fn(&str) -> bool,
    decided: &dyn Fn(Verdict) -> bool,
) -> (f64, f64) {
    let tp = lines
        .iter()
        .filter(|(l, v)| expected(l.verdict) && decided(*v))
        .count() as f64;
    let fp = lines
        .iter()
        .filter(|(l, v)| !expected(l.verdict) && decided(*v))
        .count() as f64;
    let fneg = lines
        .iter()
        .filter(|(l, v)| expected(l.verdict) && !decided(*v))
        .count() as f64;
    let ratio = |a: f64, b: f64| if b == 0.0 { 1.0 } else { a / b };
    (ratio(tp, tp + fp), ratio(tp, tp + fneg))
}

/// The targets: precision and recall of refusing and of flagging, and the most `allow`
/// sentences that may be flagged.
const TARGET: f64 = 0.95;
const MOST_ALLOW_FLAGGED: f64 = 0.02;

#[test]
#[ignore = "the gate of the intent rules, which have not landed; --ignored prints the figures"]
fn the_default_rules_meet_the_targets_on_both_parts() {
    let mut missed = Vec::new();
    let screener = Screener::new(&default_rules()).expect("the default rules compile");
    for (name, part) in [("tune", tune()), ("heldout", heldout())] {
        let decided: Vec<(&Line, Verdict)> = part
            .iter()
            .map(|l| {
                let matches = screener.screen_text(l.text, "/text");
                (
                    l,
                    Verdict::for_severity(matches.iter().map(|m| m.severity).max()),
                )
            })
            .collect();
        let refuse = precision_recall(&decided, &|e| e == "block", &|v| v == Verdict::Block);
        let flag = precision_recall(&decided, &|e| e == "block" || e == "hold", &|v| {
            matches!(v, Verdict::Block | Verdict::Hold)
        });
        let allow: Vec<_> = decided
            .iter()
            .filter(|(l, _)| l.verdict == "allow")
            .collect();
        let flagged = allow
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Block | Verdict::Hold))
            .count();
        let mut confusion: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (l, v) in &decided {
            *confusion.entry((l.verdict, v.as_str())).or_default() += 1;
        }
        println!(
            "{name} ({} sentences): refuse precision {:.3} recall {:.3}; flag precision {:.3} recall {:.3}; allow flagged {:.1}% ({flagged} of {})",
            part.len(),
            refuse.0,
            refuse.1,
            flag.0,
            flag.1,
            100.0 * flagged as f64 / allow.len().max(1) as f64,
            allow.len()
        );
        println!("{name} expected -> decided: {confusion:?}");
        // Only the tuned part's disagreements are printed: the held-out part is measured,
        // never read while the rules are written.
        if name == "tune" {
            for (l, v) in &decided {
                let flag = |v: &str| matches!(v, "block" | "hold");
                if (l.verdict == "block") != (v.as_str() == "block")
                    || flag(l.verdict) != flag(v.as_str())
                {
                    let why: Vec<String> = screener
                        .screen_text(l.text, "/text")
                        .iter()
                        .map(|m| format!("{}:{}", m.term, m.severity.as_str()))
                        .collect();
                    println!("  {} -> {}: {} {why:?}", l.verdict, v.as_str(), l.text);
                }
            }
        }
        let allow_flagged = flagged as f64 / allow.len().max(1) as f64;
        for (what, value, ok) in [
            ("refuse precision", refuse.0, refuse.0 >= TARGET),
            ("refuse recall", refuse.1, refuse.1 >= TARGET),
            ("flag precision", flag.0, flag.0 >= TARGET),
            ("flag recall", flag.1, flag.1 >= TARGET),
            (
                "allow flagged",
                allow_flagged,
                allow_flagged <= MOST_ALLOW_FLAGGED,
            ),
        ] {
            if !ok {
                missed.push(format!("{name}: {what} {value:.3}"));
            }
        }
    }
    assert!(missed.is_empty(), "below the targets: {missed:?}");
}

/// Screens a corpus of your own, in the same four columns or in two (`verdict<TAB>text`), named
/// by `LEVQOR_SCREENING_CORPUS`, and prints every sentence whose refuse or flag decision differs
/// from its label, with what decided it: a way to check rules against text that was not tuned
/// on. `LEVQOR_SCREENING_CORPUS=my.tsv cargo test -p levqor-core --test
/// screening_intent_corpus -- --ignored --nocapture your_own`
#[test]
#[ignore = "reads a corpus named by LEVQOR_SCREENING_CORPUS"]
fn your_own_corpus_from_the_environment() {
    let Ok(path) = std::env::var("LEVQOR_SCREENING_CORPUS") else {
        println!("LEVQOR_SCREENING_CORPUS is not set");
        return;
    };
    let data = std::fs::read_to_string(&path).expect("the corpus file");
    let screener = Screener::new(&default_rules()).expect("the default rules compile");
    let (mut total, mut differ) = (0, 0);
    for line in data
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (expected, text) = (cols[0], cols[cols.len() - 1]);
        let matches = screener.screen_text(text, "/text");
        let decided = Verdict::for_severity(matches.iter().map(|m| m.severity).max());
        let flag = |v: &str| matches!(v, "block" | "hold");
        total += 1;
        if (expected == "block") != (decided == Verdict::Block)
            || flag(expected) != flag(decided.as_str())
        {
            differ += 1;
            let why: Vec<String> = matches
                .iter()
                .map(|m| format!("{}:{}", m.term, m.severity.as_str()))
                .collect();
            println!("{expected} -> {}: {text} {why:?}", decided.as_str());
        }
    }
    println!("{differ} of {total} sentences differ");
}
