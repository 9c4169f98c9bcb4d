//! The screener's behaviour: normalization, disguises, word boundaries, verdicts.

use super::normalize::Canon;
use super::*;
use crate::error::ErrorKind;
use serde_json::json;

fn rule(term: &str, category: Category, severity: Severity) -> Rule {
    Rule::new(term, category, severity)
}

fn screener(rules: &[(&str, Category, Severity)]) -> Screener {
    let rules = RuleSet::from(
        rules
            .iter()
            .map(|&(t, c, s)| rule(t, c, s))
            .collect::<Vec<_>>(),
    );
    Screener::new(&rules).expect("valid rules")
}

fn default_screener() -> Screener {
    Screener::new(&default_rules()).expect("default rules are valid")
}

fn terms(screener: &Screener, text: &str) -> Vec<String> {
    screener
        .screen_text(text, "")
        .into_iter()
        .map(|m| m.term)
        .collect()
}

fn normalized(text: &str) -> String {
    let mut canon = Canon::default();
    canon.normalize(text);
    String::from_utf8(canon.buf.clone()).expect("utf-8")
}

#[test]
fn normalization_is_a_stream_of_words_between_single_spaces() {
    assert_eq!(normalized(""), " ");
    assert_eq!(normalized("  Hello,   World!  "), " heiio worid ");
    assert_eq!(normalized("ｆｅｎｔａｎｙｌ"), " fentanyi ");
    assert_eq!(normalized("C.O.C.A.I.N.E"), " cocaine ");
    assert_eq!(normalized("f e n t a n y l"), " fentanyi ");
}

#[test]
fn case_and_unicode_compatibility_forms_match() {
    let s = default_screener();
    for text in [
        "FENTANYL",
        "FenTaNyl",
        "ｆｅｎｔａｎｙｌ",
        "ＦＥＮＴＡＮＹＬ",
        "fentanýl",
        "fe\u{0301}ntanyl",
        "fen\u{200B}tanyl",
        "fen\u{00AD}tanyl",
        "fеntаnуl", // Cyrillic е, а, у
    ] {
        assert_eq!(terms(&s, text), ["fentanyl"], "{text:?}");
    }
}

#[test]
fn leet_digits_and_symbols_match() {
    let s = default_screener();
    assert_eq!(terms(&s, "buy f3nt4nyl"), ["fentanyl"]);
    assert_eq!(terms(&s, "c0ca1ne"), ["cocaine"]);
    assert_eq!(terms(&s, "her0in"), ["heroin"]);
    assert_eq!(terms(&s, "0xyc0d0ne"), ["oxycodone"]);
    assert_eq!(
        terms(&s, "m0ney launder1ng"),
        ["money laundering", "laundering"]
    );
    assert_eq!(terms(&s, "1ns1der trad1ng"), ["insider trading"]);
    assert_eq!(
        terms(&s, "money |aundering"),
        ["money laundering", "laundering"]
    );
    assert_eq!(
        terms(&s, "money !aundering"),
        ["money laundering", "laundering"]
    );
    assert_eq!(terms(&s, "tax ev@sion"), ["tax evasion", "tax"]);
    assert_eq!(terms(&s, "$uicide"), ["suicide"]);
    assert_eq!(terms(&s, "7ax evasion"), ["tax evasion", "tax"]);
}

#[test]
fn one_l_and_i_are_the_same_letter() {
    let s = screener(&[("pill", Category::Medical, Severity::Medium)]);
    for text in [
        "pill", "PILL", "pi11", "p1ll", "piII", "pi||s", "p!ll", "p|ll",
    ] {
        assert_eq!(terms(&s, text), ["pill"], "{text:?}");
    }
}

#[test]
fn leet_symbols_at_the_end_of_a_word_are_punctuation() {
    let s = screener(&[("loan", Category::Financial, Severity::Medium)]);
    assert_eq!(terms(&s, "I need a loan!"), ["loan"]);
    assert_eq!(terms(&s, "a loan| really"), ["loan"]);
    assert_eq!(terms(&s, "a loan$"), ["loan"]);
}

#[test]
fn spaced_letters_match() {
    let s = default_screener();
    assert_eq!(terms(&s, "f e n t a n y l"), ["fentanyl"]);
    assert_eq!(terms(&s, "F E N T A N Y L please"), ["fentanyl"]);
    assert_eq!(terms(&s, "c,o,c,a,i,n,e"), ["cocaine"]);
    assert_eq!(terms(&s, "c / o / c / a / i / n / e"), ["cocaine"]);
    assert_eq!(
        terms(&s, "i want to buy a f e n t a n y l patch"),
        ["fentanyl"]
    );
    assert_eq!(terms(&s, "is h e r o i n a drug"), ["heroin"]);
    // Two spaces end a spelled-out word.
    assert_eq!(terms(&s, "b u y  f e n t a n y l"), ["fentanyl"]);
    assert_eq!(terms(&s, "t a x  e v a s i o n"), ["tax evasion", "tax"]);
}

#[test]
fn punctuation_inside_words_matches() {
    let s = default_screener();
    assert_eq!(terms(&s, "c.o.c.a.i.n.e"), ["cocaine"]);
    assert_eq!(
        terms(&s, "money laun-dering"),
        ["money laundering", "laundering"]
    );
    assert_eq!(
        terms(&s, "m*oney l_aundering"),
        ["money laundering", "laundering"]
    );
    assert_eq!(terms(&s, "fen·tan·yl"), ["fentanyl"]);
    // A compound reads as its words too: "tax-evasion" finds what "tax evasion" finds.
    assert_eq!(terms(&s, "tax-evasion"), terms(&s, "tax evasion"));
    assert_eq!(terms(&s, "tax-evasion"), ["tax evasion", "tax"]);
    assert_eq!(terms(&s, "moneylaundering"), ["money laundering"]);
}

#[test]
fn compound_words_read_as_their_pieces_too() {
    let s = screener(&[
        ("prescription", Category::Medical, Severity::High),
        ("small claims court", Category::Legal, Severity::Medium),
        ("laundering", Category::Financial, Severity::Critical),
    ]);
    // Each piece of a hyphenated or underscored compound is a word, and a phrase may run
    // through the compound.
    assert_eq!(
        terms(&s, "forward repeat-prescription requests"),
        ["prescription"]
    );
    assert_eq!(terms(&s, "a repeat_prescription"), ["prescription"]);
    assert_eq!(
        terms(&s, "file it at the small-claims court"),
        ["small claims court"]
    );
    // A disguise still joins, and the pieces do not report it twice.
    assert_eq!(terms(&s, "money laun-dering"), ["laundering"]);
    // Letters spelled out one by one, dots, and pieces of one letter are not compounds.
    assert!(terms(&s, "p-r-e-s-c-r-i-p-t-i-o-n").contains(&"prescription".to_owned()));
    assert!(terms(&s, "re.prescription").is_empty());
    assert!(terms(&s, "e-mail the re-order form").is_empty());
    // The match is placed at the compound (its pointer is the string's).
    let found = s.screen_text("one two repeat-prescription", "/steps/0");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pointer, "/steps/0");
}

#[test]
fn a_template_placeholder_reads_as_a_person() {
    let s = screener(&[
        ("start them on", Category::Medical, Severity::High),
        ("patientname", Category::Medical, Severity::Low),
    ]);
    for text in [
        "Start {{patient.name}} on 50 mg",
        "start {{ patient.name }} on it",
        "start {{patient_name}} on it",
    ] {
        assert_eq!(
            terms(&s, text),
            ["start them on", "patientname"],
            "{text:?}"
        );
    }
    // Not placeholders: one brace, one letter, or what a template name cannot hold.
    assert!(terms(&s, "start {patient} on it").is_empty());
    assert!(terms(&s, "start {{x}} on it").is_empty());
    assert!(terms(&s, "start {{patient/name}} on it").is_empty());
    assert_eq!(terms(&s, "start {{patient.name on"), ["patientname"]);
}

#[test]
fn hyphenated_terms_match_spaced_and_joined() {
    let s = default_screener();
    for text in ["self-harm", "self harm", "selfharm", "SELF–HARM"] {
        let found = terms(&s, text);
        assert!(
            found.contains(&"self-harm".to_owned()),
            "{text:?}: {found:?}"
        );
    }
}

#[test]
fn plurals_and_possessives_match() {
    let s = default_screener();
    assert_eq!(terms(&s, "two lawsuits"), ["lawsuit"]);
    assert_eq!(terms(&s, "my lawyer's fee"), ["lawyer"]);
    assert_eq!(terms(&s, "pharmacies"), ["pharmacy"]);
    assert_eq!(terms(&s, "lethal doses"), ["lethal dose", "dose"]);
}

#[test]
fn terms_only_match_whole_words() {
    let s = screener(&[
        ("rapist", Category::Legal, Severity::High),
        ("ass", Category::Legal, Severity::Low),
        ("rap", Category::Legal, Severity::Low),
        ("law", Category::Legal, Severity::Low),
        ("lawsuit", Category::Legal, Severity::High),
    ]);
    for text in [
        "my therapist is kind",
        "a classic film",
        "a scrapbook",
        "mow the lawn",
        "an outlaw",
        "t h e r a p i s t",
        "the.rapist", // joined: one word, "therapist"
    ] {
        assert!(terms(&s, text).is_empty(), "{text:?}");
    }
    assert_eq!(terms(&s, "a lawsuit"), ["lawsuit"]);
    assert_eq!(terms(&s, "law school"), ["law"]);
    assert_eq!(terms(&s, "(law)"), ["law"]);
    assert_eq!(terms(&s, "the rapist"), ["rapist"]);
}

#[test]
fn overlapping_terms_are_all_reported() {
    let s = default_screener();
    // Same start: in rule-set order.
    assert_eq!(terms(&s, "tax evasion"), ["tax evasion", "tax"]);
    let found = terms(&s, "open a bank account number");
    assert_eq!(found, ["bank account number", "bank account", "bank"]);
}

#[test]
fn each_rule_is_reported_once_per_string_with_the_rule_term() {
    // The rules alone: the learned stage would lower a drug named alone to a warning.
    let s = Screener::new(&RuleSet {
        model: None,
        ..default_rules()
    })
    .expect("the default rules");
    let found = s.screen_text("F3NTANYL, fentanyl and f e n t a n y l", "/x");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        Match {
            term: "fentanyl".into(),
            category: Category::Medical,
            severity: Severity::High,
            pointer: "/x".into(),
            because: None,
            learned: None,
        }
    );
}

#[test]
fn innocent_text_has_no_match() {
    let s = default_screener();
    for text in [
        "The heroine of the novel is brave.",
        "We walked along the riverbank.",
        "The taxi was late and the syntax was wrong.",
        "My grandmother keeps a scrapbook of grapes and drapes.",
        "This method works for methane too.",
        "",
        "   ",
        "!!!",
    ] {
        assert!(
            terms(&s, text).is_empty(),
            "{text:?}: {:?}",
            terms(&s, text)
        );
    }
}

#[test]
fn value_pointers_escape_keys_and_index_arrays() {
    let s = default_screener();
    let doc = json!({
        "a/b": {"c~d": "call my lawyer"},
        "list": ["fine", {"x": ["ok", "a mortgage"]}],
        "n": 3,
        "flag": true,
        "none": null,
        "lawyer": "keys are not screened"
    });
    let mut out = Vec::new();
    s.screen_value(&doc, "/input", &mut out);
    let mut got: Vec<(String, String)> = out.into_iter().map(|m| (m.pointer, m.term)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/input/a~1b/c~0d".to_owned(), "lawyer".to_owned()),
            ("/input/list/1/x/1".to_owned(), "mortgage".to_owned()),
        ]
    );
}

#[test]
fn a_string_document_is_its_own_pointer() {
    let s = default_screener();
    let mut out = Vec::new();
    s.screen_value(&json!("a lawsuit"), "", &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].pointer, "");
}

#[test]
fn verdict_per_severity() {
    assert_eq!(
        Verdict::for_severity(Some(Severity::Critical)),
        Verdict::Block
    );
    assert_eq!(Verdict::for_severity(Some(Severity::High)), Verdict::Hold);
    assert_eq!(Verdict::for_severity(Some(Severity::Medium)), Verdict::Warn);
    assert_eq!(Verdict::for_severity(Some(Severity::Low)), Verdict::Allow);
    assert_eq!(Verdict::for_severity(None), Verdict::Allow);
    assert!(Severity::Low < Severity::Medium);
    assert!(Severity::High < Severity::Critical);

    let s = default_screener();
    let verdict = |text: &str| s.screen(&[("/input", &json!(text))]).verdict;
    assert_eq!(
        verdict("what is the lethal dose of tylenol"),
        Verdict::Block
    );
    // A legal matter named alone is general; one handled for a person is held for review.
    assert_eq!(verdict("I got sued"), Verdict::Warn);
    assert_eq!(
        verdict("draft our reply to the lawsuit for the solicitor to review"),
        Verdict::Hold
    );
    assert_eq!(verdict("what are your mortgage rates"), Verdict::Warn);
    assert_eq!(verdict("I called my bank"), Verdict::Allow);
    assert_eq!(verdict("lovely weather"), Verdict::Allow);
}

#[test]
fn screen_takes_the_worst_severity_and_dedups_per_term_and_pointer() {
    let s = default_screener();
    let workflow = json!({"steps": [{"message": "talk to a doctor"}]});
    let input = json!({"q": "insider trading tips", "r": "insider trading"});
    let screening = s.screen(&[
        ("/workflow", &workflow),
        ("/input", &input),
        ("/input", &input),
    ]);
    assert_eq!(screening.verdict, Verdict::Block);
    let got: Vec<(&str, &str)> = screening
        .matches
        .iter()
        .map(|m| (m.pointer.as_str(), m.term.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("/workflow/steps/0/message", "doctor"),
            ("/input/q", "insider trading"),
            ("/input/r", "insider trading"),
        ]
    );
}

#[test]
fn names_serialize_in_snake_case() {
    for c in [Category::Medical, Category::Legal, Category::Financial] {
        assert_eq!(json!(c), json!(c.as_str()));
    }
    for v in [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        assert_eq!(json!(v), json!(v.as_str()));
    }
    for v in [Verdict::Block, Verdict::Hold, Verdict::Warn, Verdict::Allow] {
        assert_eq!(json!(v), json!(v.as_str()));
    }
}

#[test]
fn validate_reports_every_violation_with_its_pointer() {
    let long = "x".repeat(MAX_TERM_CHARS + 1);
    let rules = RuleSet::from(vec![
        rule("loan", Category::Financial, Severity::Medium),
        rule("  ", Category::Legal, Severity::Low),
        rule("LOAN", Category::Financial, Severity::High),
        rule(&long, Category::Medical, Severity::Low),
        rule("l-o-a-n", Category::Financial, Severity::Low),
        rule("?!", Category::Medical, Severity::Low),
        rule(
            &"y".repeat(MAX_TERM_CHARS),
            Category::Medical,
            Severity::Low,
        ),
    ]);
    let err = rules.validate().expect_err("invalid");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(err.code, "validation_failed");
    let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/rules/1/term",
            "/rules/2/term",
            "/rules/3/term",
            "/rules/4/term",
            "/rules/5/term"
        ]
    );
    assert!(err.violations[1].message.contains("/rules/0/term"));
}

#[test]
fn validate_limits_the_number_of_rules() {
    let rules = RuleSet::from(
        (0..=MAX_RULES)
            .map(|i| rule(&format!("term{i}"), Category::Legal, Severity::Low))
            .chain([rule("", Category::Legal, Severity::Low)])
            .collect::<Vec<_>>(),
    );
    let err = rules.validate().expect_err("too many");
    let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/rules", &format!("/rules/{}/term", MAX_RULES + 1)]
    );
}

#[test]
fn screener_refuses_an_invalid_rule_set() {
    let rules = RuleSet::from(vec![
        rule("bank", Category::Financial, Severity::Low),
        rule("Bank", Category::Financial, Severity::Low),
    ]);
    let err = Screener::new(&rules).expect_err("duplicate");
    assert_eq!(err.code, "validation_failed");
    assert_eq!(err.violations[0].pointer, "/rules/1/term");
}

#[test]
fn default_rules_are_valid_and_cover_every_category_and_severity() {
    let rules = default_rules();
    rules.validate().expect("valid");
    assert!(
        (120..=400).contains(&rules.rules.len()),
        "{}",
        rules.rules.len()
    );
    for c in [Category::Medical, Category::Legal, Category::Financial] {
        for v in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert!(
                rules
                    .rules
                    .iter()
                    .any(|r| r.category == c && r.severity == v),
                "{c:?} {v:?}"
            );
        }
    }
    let s = Screener::new(&rules).expect("compiles");
    assert_eq!(s.rules(), &rules);
    // Every rule finds its own term.
    for r in &rules.rules {
        let found = terms(&s, &r.term);
        assert!(found.contains(&r.term), "{:?}: {found:?}", r.term);
    }
}

#[test]
fn an_empty_rule_set_matches_nothing() {
    let s = Screener::new(&RuleSet::from(vec![])).expect("empty is valid");
    assert!(s.screen_text("fentanyl", "").is_empty());
}

#[test]
fn screener_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Screener>();
}

#[test]
fn hostile_unicode_never_panics() {
    let s = default_screener();
    let text =
        "\u{FEFF}ǅ ﬁ İ ß ẞ ﷺ ㈱ ¼ 𝔣𝔢𝔫𝔱𝔞𝔫𝔶𝔩 \u{0301}\u{0301} a\u{E0041}b 😀 \u{10FFFF} 中文 ١٢٣";
    let found = terms(&s, text);
    assert_eq!(found, ["fentanyl"]);
    for end in 0..text.len() {
        if text.is_char_boundary(end) {
            let _ = s.screen_text(&text[..end], "");
        }
    }
}

/// `intent_rules` with a learned stage: "every patient" pushes toward refusal, "pharmacist"
/// away from flagging.
fn learned_rules(escalate_at: u8, clear_below: u8) -> RuleSet {
    let mut rules = intent_rules();
    rules.model = Some(Model {
        window: 6,
        escalate_at,
        clear_below,
        bias: [-2000, 0],
        weights: [
            ("every patient".to_owned(), [4000, 1000]),
            ("patient".to_owned(), [500, 0]),
            ("pharmacist".to_owned(), [-500, -3000]),
        ]
        .into_iter()
        .collect(),
    });
    rules
}

#[test]
fn the_learned_stage_refuses_a_hold_and_names_the_rule_and_words() {
    let s = Screener::new(&learned_rules(80, 20)).expect("valid");
    // sigmoid(-2.0 + 4.0 + 0.5) = 0.924: the hold of med.treat is refused.
    let m = s.screen_text("prescribe insulin to every patient", "/t");
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].term.as_str(), m[0].severity),
        ("med.treat", Severity::Critical)
    );
    assert_eq!(
        m[0].learned,
        Some(Learned {
            from: Severity::High,
            score: 92,
            words: vec!["every patient".into(), "patient".into()],
        })
    );
    // Words beyond the window are not read: the hold stays.
    let far = "prescribe insulin. one two three four five six seven to every patient";
    let m = s.screen_text(far, "/t");
    assert_eq!(
        (m[0].severity, m[0].learned.clone()),
        (Severity::High, None)
    );
    // 100 never refuses.
    let s = Screener::new(&learned_rules(100, 0)).expect("valid");
    let m = s.screen_text("prescribe insulin to every patient", "/t");
    assert_eq!(m[0].severity, Severity::High);
}

#[test]
fn the_learned_stage_lowers_holds_only_and_leaves_refusals_and_silence_alone() {
    let s = Screener::new(&learned_rules(80, 20)).expect("valid");
    // sigmoid(-3.0) = 0.047 < 0.20: the hold is lowered to a warning.
    let m = s.screen_text("the pharmacist will prescribe insulin", "/t");
    assert_eq!(m[0].severity, Severity::Medium);
    assert_eq!(
        m[0].learned,
        Some(Learned {
            from: Severity::High,
            score: 4,
            words: vec!["pharmacist".into()],
        })
    );
    // The rules' refusal stands whatever the model says.
    let m = s.screen_text(
        "the pharmacist will prescribe insulin without a doctor",
        "/t",
    );
    assert_eq!(
        (m[0].severity, m[0].learned.clone()),
        (Severity::Critical, None)
    );
    // Text the rules found nothing in is not read.
    assert!(s.screen_text("every patient pharmacist", "/t").is_empty());
    // A warning is not lowered further.
    let m = s.screen_text("the pharmacist checks the dose", "/t");
    assert_eq!(
        (m[0].severity, m[0].learned.clone()),
        (Severity::Medium, None)
    );
}

#[test]
fn a_bad_model_names_every_bad_field() {
    let mut rules = learned_rules(0, 100);
    let model = rules.model.as_mut().expect("a model");
    model.window = 51;
    model.bias = [0, -200_000];
    model.weights.insert("Every  PATIENT".into(), [1, 1]);
    model.weights.insert("one two three".into(), [1, 1]);
    model.weights.insert("--".into(), [1, 1]);
    let err = rules.validate().expect_err("invalid");
    let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/model/window",
            "/model/escalate_at",
            "/model/clear_below",
            "/model/bias",
            "/model/weights/--",
            "/model/weights/every patient",
            "/model/weights/one two three",
        ]
    );
}

/// The stage reads a text through the matcher's word ids; training reads it through
/// `features`. Both see the same features: the logits agree on every tuned sentence.
#[test]
fn the_stage_reads_the_features_training_reads() {
    let rules = default_rules();
    let model = rules.model.clone().expect("the default rules have a model");
    let s = Screener::new(&rules).expect("the default rules");
    let mut canon = Canon::default();
    let weights: HashMap<Vec<u8>, [i32; 2]> = model
        .weights
        .iter()
        .map(|(f, w)| (canon.normalize_term(f, false), *w))
        .collect();
    let corpus = include_str!("../../tests/data/screening/tune.tsv");
    let mut checked = 0;
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let text = line.rsplit('\t').next().expect("a text");
        let mut expected = [i64::from(model.bias[0]), i64::from(model.bias[1])];
        for feature in features(text) {
            if let Some(w) = weights.get(feature.as_bytes()) {
                expected[0] += i64::from(w[0]);
                expected[1] += i64::from(w[1]);
            }
        }
        assert_eq!(s.learned_logits(text), Some(expected), "{text}");
        checked += 1;
    }
    assert!(checked > 400);
}

#[test]
fn features_are_the_normalized_words_and_pairs_once_each() {
    assert_eq!(
        features("Stop  st0pping, stop!"),
        ["stop", "stop stopping", "stopping", "stopping stop"]
    );
}

/// A small rule set with every kind of intent and mark.
fn intent_rules() -> RuleSet {
    RuleSet::from_json(json!({
        "rules": [
            {"term": "dose", "category": "medical", "severity": "medium",
             "unless": "dose_senses", "within": 3}
        ],
        "lists": [
            {"name": "act", "terms": ["prescribe", "stop taking"]},
            {"name": "drug", "terms": ["insulin", "warfarin"]},
            {"name": "no", "terms": ["no", "without"]},
            {"name": "pro", "terms": ["doctor"]},
            {"name": "review", "terms": ["to review"]},
            {"name": "info", "terms": ["in general"]},
            {"name": "all", "terms": ["every caller"]},
            {"name": "dose_senses", "terms": ["humour"]},
            {"name": "treat_senses", "terms": ["caffeine"]}
        ],
        "intents": [
            {"name": "removed", "action": "no", "subject": "pro", "window": 2,
             "ordered": true, "marks": "escalator"},
            {"name": "reviewed", "action": "review", "marks": "review"},
            {"name": "general", "action": "info", "marks": "info"},
            {"name": "everyone", "action": "all", "marks": "everyone"},
            {"name": "med.treat", "action": "act", "subject": "drug", "window": 3,
             "unless": "treat_senses", "category": "medical", "severity": "high", "escalated": "critical",
             "reviewed": "medium", "informational": "low", "to_everyone": "critical"}
        ]
    }))
    .expect("valid rule set")
}

/// The intent matches of `text`: (name, severity, action, subject, mark intent).
fn intents(s: &Screener, text: &str) -> Vec<(String, Severity, String, String, String)> {
    s.screen_text(text, "/t")
        .into_iter()
        .filter_map(|m| {
            let b = m.because?;
            Some((
                m.term,
                m.severity,
                b.action,
                b.subject.unwrap_or_default(),
                b.mark.map(|k| k.intent).unwrap_or_default(),
            ))
        })
        .collect()
}

fn found(
    name: &str,
    severity: Severity,
    action: &str,
    subject: &str,
    mark: &str,
) -> Vec<(String, Severity, String, String, String)> {
    vec![(
        name.into(),
        severity,
        action.into(),
        subject.into(),
        mark.into(),
    )]
}

#[test]
fn an_intent_is_an_action_and_a_subject_within_its_window_either_way_round() {
    let s = Screener::new(&intent_rules()).unwrap();
    let high = found("med.treat", Severity::High, "prescribe", "insulin", "");
    assert_eq!(intents(&s, "Prescribe insulin"), high);
    assert_eq!(intents(&s, "prescribe the basal acting insulin"), high);
    assert_eq!(
        intents(&s, "insulin: prescribe it"),
        found("med.treat", Severity::High, "prescribe", "insulin", "")
    );
    // Four words between is beyond a window of three.
    assert!(intents(&s, "prescribe one two three four insulin").is_empty());
    // A subject or an action alone is no intent.
    assert!(intents(&s, "insulin prices went up").is_empty());
    assert!(intents(&s, "prescribe rest and water").is_empty());
    // Each intent is reported once per string, at its first place.
    let twice = s.screen_text("prescribe insulin, then prescribe warfarin", "/t");
    assert_eq!(twice.len(), 1);
    // Intents see through disguises like terms do.
    assert_eq!(intents(&s, "p-r-e-s-c-r-i-b-e 1nsul1n"), high);
}

#[test]
fn an_action_word_inside_a_subject_phrase_is_not_an_action() {
    let rules = RuleSet::from_json(json!({
        "rules": [],
        "lists": [
            {"name": "act", "terms": ["scores"]},
            {"name": "subject", "terms": ["credit", "credit scores"]}
        ],
        "intents": [
            {"name": "fin.scores", "action": "act", "subject": "subject", "window": 4,
             "category": "financial", "severity": "critical"}
        ]
    }))
    .expect("valid rule set");
    let s = Screener::new(&rules).unwrap();
    assert!(intents(&s, "Credit scores depend on payment history and credit use").is_empty());
    assert_eq!(
        intents(&s, "the model scores credit applicants"),
        found("fin.scores", Severity::Critical, "scores", "credit", "")
    );
}

#[test]
fn marks_set_the_severity_escalator_first_then_info_review_and_everyone() {
    let s = Screener::new(&intent_rules()).unwrap();
    let treat = |severity, mark: &str| found("med.treat", severity, "prescribe", "insulin", mark);
    assert_eq!(
        intents(&s, "prescribe insulin, no doctor needed"),
        treat(Severity::Critical, "removed")
    );
    assert_eq!(
        intents(&s, "prescribe insulin for the doctor to review"),
        treat(Severity::Medium, "reviewed")
    );
    assert_eq!(
        intents(
            &s,
            "prescribe insulin for the doctor to review, no doctor needed"
        ),
        treat(Severity::Critical, "removed")
    );
    assert_eq!(
        intents(&s, "in general, prescribe insulin for the doctor to review"),
        treat(Severity::Low, "general")
    );
    assert_eq!(
        intents(&s, "prescribe insulin to every caller"),
        treat(Severity::Critical, "everyone")
    );
    // An ordered mark needs its action first: "the doctor said no" removes no one.
    assert_eq!(
        intents(&s, "prescribe insulin as the doctor said no"),
        treat(Severity::High, "")
    );
    // The explanation names the mark's words, as written in the lists.
    let m = &s.screen_text("Prescribe insulin WITHOUT a doctor", "/input/step")[0];
    assert_eq!(m.pointer, "/input/step");
    assert_eq!(m.category, Category::Medical);
    let mark = m.because.as_ref().unwrap().mark.as_ref().unwrap();
    assert_eq!(mark.kind, Mark::Escalator);
    assert_eq!(mark.words, ["without", "doctor"]);
}

#[test]
fn a_harmless_sense_near_an_intent_excuses_that_place_only() {
    let s = Screener::new(&intent_rules()).unwrap();
    assert!(intents(&s, "prescribe insulin with caffeine").is_empty());
    assert_eq!(
        intents(
            &s,
            "prescribe insulin with caffeine; later, one two three, prescribe warfarin"
        ),
        found("med.treat", Severity::High, "prescribe", "warfarin", "")
    );
}

#[test]
fn a_harmless_sense_near_a_term_excuses_it_and_only_near_it() {
    let s = Screener::new(&intent_rules()).unwrap();
    assert!(terms(&s, "add a dose of humour to the newsletter").is_empty());
    assert!(terms(&s, "humour: a daily dose").is_empty());
    assert_eq!(terms(&s, "check the dose twice"), ["dose"]);
    assert_eq!(
        terms(&s, "humour aside, one two three four, the dose is wrong"),
        ["dose"]
    );
    // One excused place does not excuse another.
    assert_eq!(
        terms(&s, "a dose of humour, then check the insulin dose"),
        ["dose"]
    );
}

#[test]
fn validate_reports_every_violation_of_lists_and_intents_with_its_pointer() {
    let rules = RuleSet::from_json(json!({
        "rules": [{"term": "dose", "category": "medical", "severity": "medium",
                   "unless": "missing", "within": 51}],
        "lists": [
            {"name": "act", "terms": ["prescribe", "PRESCRIBE", "--"]},
            {"name": "act", "terms": ["x"]},
            {"name": " ", "terms": []}
        ],
        "intents": [
            {"name": "a", "action": "act", "subject": "nowhere", "window": 99,
             "marks": "review", "category": "medical", "severity": "high"},
            {"name": "a", "action": "act"}
        ]
    }))
    .expect("the shape is right");
    let err = rules.validate().expect_err("invalid");
    let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/lists/0/terms/1",
            "/lists/0/terms/2",
            "/lists/1/name",
            "/lists/2/name",
            "/rules/0/unless",
            "/rules/0/within",
            "/intents/0/subject",
            "/intents/0/window",
            "/intents/0/category",
            "/intents/0/severity",
            "/intents/1/name",
            "/intents/1/category",
            "/intents/1/severity",
        ]
    );
    assert_eq!(err.code, "validation_failed");
}

#[test]
fn a_rule_set_of_the_wrong_shape_is_refused_with_the_pointer_of_the_field() {
    let pointer = |doc: serde_json::Value| {
        let err = RuleSet::from_json(doc).expect_err("wrong shape");
        assert_eq!(err.code, "validation_failed");
        err.violations[0].pointer.clone()
    };
    assert_eq!(
        pointer(json!({"rules": [], "intents": [{"name": "a", "action": "b", "marks": "loud"}]})),
        "/intents/0/marks"
    );
    assert_eq!(
        pointer(json!({"rules": [], "lists": [{"name": "a", "terms": [1]}]})),
        "/lists/0/terms/0"
    );
    assert_eq!(pointer(json!({"rules": [], "intnets": []})), "/intnets");
    assert_eq!(
        pointer(
            json!({"rules": [{"term": "x", "category": "legal", "severity": "low", "sense": "y"}]})
        ),
        "/rules/0/sense"
    );
}

#[test]
fn letters_split_by_hyphens_underscores_or_a_mix_are_read_as_one_word() {
    let s = default_screener();
    for text in [
        "f-e-n-t-a-n-y-l",
        "f_e_n_t_a_n_y_l",
        "f-e.n_t*a-n.y_l",
        "F - E - N - T - A - N - Y - L",
        "fen-tan_yl",
        "fen-ta nyl",
        "f-e-n t_a_n-y-l",
        "f-e n.t a_n y-l",
        "f-e n.t an-yl",
        "f-e-n t a-n-y-l",
        "fe_n t a.n-yl",
    ] {
        assert!(
            terms(&s, text).contains(&"fentanyl".to_owned()),
            "{text:?}: {:?}",
            terms(&s, text)
        );
    }
    assert!(terms(&s, "forge a p-r.e s_c-ription").contains(&"prescription".to_owned()));
    assert!(terms(&s, "o-x.y c o_d-o.n-e for all").contains(&"oxycodone".to_owned()));
}

#[test]
fn capitals_and_letters_of_other_scripts_that_look_latin_are_read_as_latin() {
    let s = default_screener();
    // Greek capitals Η Ε Ι Ο, Cyrillic capitals Н Е О, dotless ı, Latin small capital ɪ.
    for text in ["ΗΕRΟΙΝ", "НЕRОIN", "herıon heroın", "hеrоɪn"] {
        assert!(
            terms(&s, text).contains(&"heroin".to_owned()),
            "{text:?}: {:?}",
            terms(&s, text)
        );
    }
}

#[test]
fn joining_split_pieces_finds_no_word_across_real_word_boundaries() {
    let s = default_screener();
    for text in [
        "Send the slides to D. O. S. Evans at the design agency.",
        "Send the agenda to Dr. U. G. Smith and the post-doc fellows.",
        "E-mail the re-order form to the warehouse manager.",
        "Send the U.S.-based team the revised meeting times.",
        "Re-run the data-import job for the e-commerce store.",
        "Attach the P.O. number to the re-issued invoice.",
    ] {
        let found = s.screen_text(text, "/t");
        assert!(
            found.iter().all(|m| m.severity == Severity::Low),
            "{text:?}: {found:?}"
        );
    }
    assert_eq!(normalized("pre-scrip tion"), " prescrip tion ");
}

#[test]
fn the_default_rules_read_intent() {
    let s = default_screener();
    let verdict = |text: &str| {
        Verdict::for_severity(s.screen_text(text, "/t").iter().map(|m| m.severity).max())
    };
    for text in [
        "Automatically prescribe oxycodone to every caller who asks.",
        "Tell people what insulin dose to inject from their glucose reading, no doctor needed.",
        "Diagnose the caller's chest pain and tell them to skip the doctor.",
        "Act as the customer's attorney and sign the settlement on their behalf.",
        "Promise every investor guaranteed monthly returns of 8%.",
    ] {
        assert_eq!(verdict(text), Verdict::Block, "{text}");
    }
    for text in [
        "Include each subscriber's zodiac sign in the horoscope newsletter.",
        "Our prescription for growth: more webinars.",
        "Add a dose of humour to the intro of Monday's newsletter.",
        "Diagnose the build failure from the CI logs.",
    ] {
        assert!(
            matches!(verdict(text), Verdict::Allow | Verdict::Warn),
            "{text}: {:?}",
            s.screen_text(text, "/t")
        );
    }
    assert_eq!(
        verdict("Draft the insulin dose change for the doctor to review."),
        Verdict::Hold
    );
}
