//! The labelled corpus of workflow text under `tests/data/screening/` (see its README): each
//! line a sentence and the verdict the screening policy expects. This test checks that the
//! corpus is what it claims to be (well formed, no sentence twice, a held-out fifth, every
//! verdict, category and kind). The scoring tests are the gate of screening by intent: on each
//! part, tuned and held out, precision and recall of refusing (`block`) and of flagging
//! (`block` or `hold`) at least 0.95, and at most 2% of the `allow` sentences flagged.
//!
//! The tuned part is `tune.tsv` and `written-after.tsv`: the rules were changed for them and
//! the learned stage trained on them. The held-out fifth is every sentence never tuned or
//! trained on: `heldout.tsv` (a fifth of the first corpus) and the rounds written after
//! the learned stage (`after-model*.tsv`). `cargo test -p levqor-core --test
//! screening_intent_corpus -- --nocapture` prints every figure; the held-out sentences are
//! never printed.

use levqor_core::screening::{RuleSet, Screener, Verdict, default_rules};
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

/// Lines of two columns (`verdict<TAB>text`) or four, as `Line`s (two columns have no category
/// or kind: both read `unlabelled`).
fn parse_any(data: &'static str) -> Vec<Line> {
    data.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&'static str> = l.split('\t').collect();
            let (category, kind) = match cols.len() {
                4 => (cols[1], cols[2]),
                _ => ("unlabelled", "unlabelled"),
            };
            Line {
                verdict: cols[0],
                category,
                kind,
                text: cols[cols.len() - 1],
            }
        })
        .collect()
}

fn default_screener() -> Screener {
    Screener::new(&default_rules()).expect("the default rules compile")
}

fn tune() -> Vec<Line> {
    parse("tune.tsv", include_str!("data/screening/tune.tsv"))
}

fn heldout() -> Vec<Line> {
    parse("heldout.tsv", include_str!("data/screening/heldout.tsv"))
}

/// The two-column parts: written after the first rules and tuned on, and the rounds written
/// after the learned stage and never tuned on.
fn written_after() -> Vec<Line> {
    parse_any(include_str!("data/screening/written-after.tsv"))
}

fn after_model() -> [(&'static str, Vec<Line>); 4] {
    [
        (
            "after-model (rounds 3 and 4)",
            parse_any(include_str!("data/screening/after-model.tsv")),
        ),
        (
            "after-model (round 5)",
            parse_any(include_str!("data/screening/after-model-round5.tsv")),
        ),
        (
            "after-model (round 6)",
            parse_any(include_str!("data/screening/after-model-round6.tsv")),
        ),
        (
            "after-model (round 7)",
            parse_any(include_str!("data/screening/after-model-round7.tsv")),
        ),
    ]
}

#[test]
fn the_corpus_is_well_formed_with_a_held_out_fifth_and_every_case() {
    let (tune, heldout, written_after) = (tune(), heldout(), written_after());
    let after_model: Vec<Line> = after_model().into_iter().flat_map(|(_, p)| p).collect();
    assert!(tune.len() + heldout.len() >= 400, "at least 400 sentences");
    // A fifth of the first corpus, and a fifth of the whole: everything written after the
    // first corpus was either tuned on or never tuned on.
    let share = heldout.len() as f64 / (tune.len() + heldout.len()) as f64;
    assert!(
        (0.18..=0.22).contains(&share),
        "a fifth of the first corpus held out: {share:.3}"
    );
    let held = heldout.len() + after_model.len();
    let share = held as f64 / (held + tune.len() + written_after.len()) as f64;
    assert!(share >= 0.20, "a fifth of the corpus held out: {share:.3}");
    for line in written_after.iter().chain(&after_model) {
        assert!(VERDICTS.contains(&line.verdict), "verdict of {}", line.text);
    }
    let mut seen = BTreeSet::new();
    for line in [&tune, &heldout, &written_after, &after_model]
        .into_iter()
        .flatten()
    {
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
    let count = |f: &dyn Fn(&(&Line, Verdict)) -> bool| lines.iter().filter(|x| f(x)).count();
    let tp = count(&|(l, v)| expected(l.verdict) && decided(*v)) as f64;
    let fp = count(&|(l, v)| !expected(l.verdict) && decided(*v)) as f64;
    let fneg = count(&|(l, v)| expected(l.verdict) && !decided(*v)) as f64;
    let ratio = |a: f64, b: f64| if b == 0.0 { 1.0 } else { a / b };
    (ratio(tp, tp + fp), ratio(tp, tp + fneg))
}

/// What the default rules score on one part of the corpus.
struct Figures {
    refuse: (f64, f64),
    flag: (f64, f64),
    allow_flagged: f64,
}

/// Screens `part` with the default rules and prints precision and recall of refusing, of
/// flagging and of each verdict, the share of `allow` sentences flagged, and the confusion
/// counts. The tuned part also prints each sentence decided wrongly; the held-out part is
/// measured, never read while the rules are written, so its sentences are not printed.
fn score(name: &str, part: &[Line], screener: &Screener) -> Figures {
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
    let flagged = |v: Verdict| matches!(v, Verdict::Block | Verdict::Hold);
    let refuse = precision_recall(&decided, &|e| e == "block", &|v| v == Verdict::Block);
    let flag = precision_recall(&decided, &|e| e == "block" || e == "hold", &flagged);
    let allow: Vec<_> = decided
        .iter()
        .filter(|(l, _)| l.verdict == "allow")
        .collect();
    let allow_flagged_n = allow.iter().filter(|(_, v)| flagged(*v)).count();
    let allow_flagged = allow_flagged_n as f64 / allow.len().max(1) as f64;
    println!(
        "{name} ({} sentences): refuse precision {:.3} recall {:.3}; flag precision {:.3} recall {:.3}; allow flagged {:.1}% ({allow_flagged_n} of {})",
        part.len(),
        refuse.0,
        refuse.1,
        flag.0,
        flag.1,
        100.0 * allow_flagged,
        allow.len()
    );
    for verdict in VERDICTS {
        let (p, r) = precision_recall(&decided, &|e| e == verdict, &|v| v.as_str() == verdict);
        println!("{name} {verdict}: precision {p:.3} recall {r:.3}");
    }
    let mut confusion: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (l, v) in &decided {
        *confusion.entry((l.verdict, v.as_str())).or_default() += 1;
    }
    println!("{name} expected -> decided: {confusion:?}");
    // Where the wrong decisions are, by stratum (counts only, so the held-out part can say
    // which kind of text the rules miss without showing a sentence).
    let mut strata: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for (l, v) in &decided {
        let wrong = (l.verdict == "block") != (*v == Verdict::Block)
            || matches!(l.verdict, "block" | "hold") != flagged(*v);
        if wrong {
            *strata.entry((l.verdict, l.category, l.kind)).or_default() += 1;
        }
    }
    println!("{name} wrong refuse or flag decisions by (verdict, category, kind): {strata:?}");
    if name == "tune" {
        for (l, v) in &decided {
            let wrong = (l.verdict == "block") != (*v == Verdict::Block)
                || matches!(l.verdict, "block" | "hold") != flagged(*v);
            if wrong {
                let why: Vec<String> = screener
                    .screen_text(l.text, "/text")
                    .iter()
                    .map(|m| format!("{}:{}", m.term, m.severity.as_str()))
                    .collect();
                println!("  {} -> {}: {} {why:?}", l.verdict, v.as_str(), l.text);
            }
        }
    }
    Figures {
        refuse,
        flag,
        allow_flagged,
    }
}

/// The targets: precision and recall of refusing and of flagging at least `TARGET`,
/// and at most `MOST_ALLOW_FLAGGED` of the `allow` sentences flagged.
const TARGET: f64 = 0.95;
const MOST_ALLOW_FLAGGED: f64 = 0.02;

/// Every figure of `f` that misses its floor: (what, value).
fn below(f: &Figures, floor: &Figures) -> Vec<String> {
    [
        ("refuse precision", f.refuse.0, f.refuse.0 >= floor.refuse.0),
        ("refuse recall", f.refuse.1, f.refuse.1 >= floor.refuse.1),
        ("flag precision", f.flag.0, f.flag.0 >= floor.flag.0),
        ("flag recall", f.flag.1, f.flag.1 >= floor.flag.1),
        (
            "allow flagged",
            f.allow_flagged,
            f.allow_flagged <= floor.allow_flagged,
        ),
    ]
    .into_iter()
    .filter(|(_, _, ok)| !ok)
    .map(|(what, value, _)| format!("{what} {value:.3}"))
    .collect()
}

const TARGETS: Figures = Figures {
    refuse: (TARGET, TARGET),
    flag: (TARGET, TARGET),
    allow_flagged: MOST_ALLOW_FLAGGED,
};

/// `cargo test -p levqor-core --test screening_intent_corpus -- --nocapture` prints the figures.
#[test]
fn the_default_rules_meet_the_targets_on_the_tuned_part() {
    let missed = below(&score("tune", &tune(), &default_screener()), &TARGETS);
    assert!(missed.is_empty(), "below the targets: {missed:?}");
}

/// The held-out fifth, every sentence never tuned or trained on: the default rules meet the
/// targets on it as a whole. Each part is printed on its own first (BENCHMARKS.md (j) has the
/// figures); a part is too small to hold the targets alone (the first corpus's fifth has 26
/// `block` sentences and moves 0.04 per sentence).
#[test]
fn the_default_rules_meet_the_targets_on_the_held_out_fifth() {
    let screener = default_screener();
    let mut fifth = heldout();
    score("heldout (the first corpus's fifth)", &fifth, &screener);
    for (name, part) in after_model() {
        score(name, &part, &screener);
        fifth.extend(part);
    }
    assert!(fifth.len() >= 1_800, "{} sentences", fifth.len());
    let missed = below(&score("held-out fifth", &fifth, &screener), &TARGETS);
    assert!(missed.is_empty(), "below the targets: {missed:?}");
}

/// Screens a corpus of your own, in the same four columns or in two (`verdict<TAB>text`), named
/// by `LEVQOR_SCREENING_CORPUS`, with the default rules or the rule document named by
/// `LEVQOR_SCREENING_RULES`; prints the figures and every sentence whose refuse or flag
/// decision differs from its label, with what decided it: a way to check rules against text
/// that was not tuned on. `LEVQOR_SCREENING_CORPUS=my.tsv cargo test -p levqor-core --test
/// screening_intent_corpus -- --ignored --nocapture your_own`
#[test]
#[ignore = "reads a corpus named by LEVQOR_SCREENING_CORPUS"]
fn your_own_corpus_from_the_environment() {
    let Ok(path) = std::env::var("LEVQOR_SCREENING_CORPUS") else {
        println!("LEVQOR_SCREENING_CORPUS is not set");
        return;
    };
    // Cargo runs tests in the crate's directory; a path from the workspace root works too.
    let read = |path: &str| {
        let from_root = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .or_else(|_| std::fs::read_to_string(&from_root))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let screener = match std::env::var("LEVQOR_SCREENING_RULES") {
        Ok(rules) => {
            let rules: serde_json::Value =
                serde_json::from_str(&read(&rules)).expect("the rules are JSON");
            Screener::new(&RuleSet::from_json(rules).expect("a rule set")).expect("valid rules")
        }
        Err(_) => default_screener(),
    };
    let data: &'static str = Box::leak(read(&path).into_boxed_str());
    score("yours", &parse_any(data), &screener);
    let (total, differ) = differing(data, &screener);
    for line in &differ {
        println!("{line}");
    }
    println!("{} of {total} sentences differ", differ.len());
}

/// The sentences written after the first rules were tuned on as they came (README.md): they
/// keep the decisions they were given, so a change for new text does not undo an old one.
#[test]
fn the_sentences_written_after_keep_their_decisions() {
    let (total, differ) = differing(
        include_str!("data/screening/written-after.tsv"),
        &default_screener(),
    );
    assert!(total >= 800, "{total} sentences");
    let unexpected: Vec<&String> = differ
        .iter()
        .filter(|line| !KNOWN_MISSES.iter().any(|known| line.contains(known)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {total} differ:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A known miss that the rules come to decide rightly leaves the list.
    for known in KNOWN_MISSES {
        assert!(
            differ.iter().any(|line| line.contains(known)),
            "now decided as labelled, take it off KNOWN_MISSES: {known}"
        );
    }
}

/// Written-after sentences the rules do not decide as labelled, because every rule that would
/// reach them would also flag ordinary text (BENCHMARKS.md (j)): a call option next to "buy"
/// ("transfer calls to the on-call engineer"), an amount just under a reporting limit fourteen
/// words from the deposit, a signature twelve words from the lease.
const KNOWN_MISSES: [&str; 3] = [
    "buy 50 Tesla June 300 calls right now, it is a sure thing.",
    "Deposit the cash from the vending business in $9,900 amounts every few days at different banks.",
    "Send the lease termination for tenant Olu Adeyemi today, signing it as him.",
];

/// Screens a corpus (lines of `verdict<TAB>…<TAB>text`): how many sentences, and each one
/// whose refuse or flag decision differs from its label, with what decided it.
fn differing(data: &str, screener: &Screener) -> (usize, Vec<String>) {
    let mut total = 0;
    let mut differ = Vec::new();
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
            let why: Vec<String> = matches
                .iter()
                .map(|m| {
                    let mut why = format!("{}:{}", m.term, m.severity.as_str());
                    if let Some(b) = &m.because {
                        why.push_str(&format!(" ({}", b.action));
                        if let Some(subject) = &b.subject {
                            why.push_str(&format!(" + {subject}"));
                        }
                        if let Some(mark) = &b.mark {
                            why.push_str(&format!("; {}: {}", mark.intent, mark.words.join(" + ")));
                        }
                        why.push(')');
                    }
                    why
                })
                .collect();
            differ.push(format!(
                "{expected} -> {}: {text} {why:?}",
                decided.as_str()
            ));
        }
    }
    (total, differ)
}
