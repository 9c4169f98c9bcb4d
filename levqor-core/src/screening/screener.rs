//! The [`Screener`]: one Aho-Corasick automaton over every normalized term, run over the
//! normalized text of every string in the screened documents.

use super::normalize::{Canon, is_one_letter_word};
use super::{Match, RuleSet, Screening, Verdict};
use crate::error::{Error, Result};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt::Write as _;

/// Rule sets whose patterns add up to at most this many bytes get a full DFA (fastest); larger
/// ones let the crate pick a smaller automaton.
const DFA_PATTERN_BYTES: usize = 64 * 1024;

/// A compiled, immutable rule set: one Aho-Corasick automaton over every normalized term.
/// `Send + Sync`; build it once and share it in an `Arc`.
#[derive(Debug, Clone)]
pub struct Screener {
    rules: RuleSet,
    automaton: AhoCorasick,
    /// Pattern id → index of its rule in `rules`.
    pattern_rule: Vec<u32>,
    /// Length in bytes of the longest pattern.
    longest_pattern: usize,
}

impl Screener {
    /// Validates `rules` (see [`RuleSet::validate`]) and compiles them.
    pub fn new(rules: &RuleSet) -> Result<Screener> {
        rules.validate()?;
        let mut canon = Canon::default();
        let forms: Vec<Vec<Vec<u8>>> = rules
            .rules
            .iter()
            .map(|rule| term_patterns(&mut canon, &rule.term))
            .collect();
        // Every rule's own form first: a variant of one rule ("bank" + "s") never hides
        // another rule's term ("banks").
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_rule = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for round in [0, 1] {
            for (rule, forms) in forms.iter().enumerate() {
                let forms = if round == 0 { &forms[..1] } else { &forms[1..] };
                for form in forms {
                    if seen.insert(form.clone()) {
                        patterns.push(form.clone());
                        pattern_rule.push(rule as u32);
                    }
                }
            }
        }
        let total: usize = patterns.iter().map(Vec::len).sum();
        let longest_pattern = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let kind = (total <= DFA_PATTERN_BYTES).then_some(AhoCorasickKind::DFA);
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(kind)
            // Every pattern starts with a space, so a prefilter would stop at every word.
            .prefilter(false)
            .build(&patterns)
            .map_err(|e| {
                Error::invalid(
                    "rule_set_too_large",
                    format!("the rules do not fit one automaton: {e}"),
                )
            })?;
        Ok(Screener {
            rules: rules.clone(),
            automaton,
            pattern_rule,
            longest_pattern,
        })
    }

    /// The rule set this screener was built from.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Every rule found in `text`, once per rule, in order of first occurrence; each match
    /// carries `pointer`.
    pub fn screen_text(&self, text: &str, pointer: &str) -> Vec<Match> {
        let mut out = Vec::new();
        self.screen_into(text, pointer, &mut Scratch::default(), &mut out);
        out
    }

    /// Screens every string in `value` (object values and array items, recursively; keys,
    /// numbers and booleans are not screened) and appends the matches to `out`, each with
    /// the RFC 6901 pointer of its string below `pointer` (`~` and `/` in keys escaped as
    /// `~0` and `~1`).
    pub fn screen_value(&self, value: &Value, pointer: &str, out: &mut Vec<Match>) {
        let mut path = pointer.to_owned();
        self.walk(value, &mut path, &mut Scratch::default(), out);
    }

    /// Screens named documents, e.g. `[("/workflow", &workflow), ("/input", &input)]`: the
    /// verdict comes from the worst severity found; matches are deduplicated per
    /// (term, pointer).
    pub fn screen(&self, documents: &[(&str, &Value)]) -> Screening {
        let mut scratch = Scratch::default();
        let mut matches = Vec::new();
        let mut path = String::new();
        for (pointer, value) in documents {
            path.clear();
            path.push_str(pointer);
            self.walk(value, &mut path, &mut scratch, &mut matches);
        }
        let mut seen = HashSet::new();
        matches.retain(|m| seen.insert((m.term.clone(), m.pointer.clone())));
        let worst = matches.iter().map(|m| m.severity).max();
        Screening {
            verdict: Verdict::for_severity(worst),
            matches,
        }
    }

    fn walk(&self, value: &Value, path: &mut String, scratch: &mut Scratch, out: &mut Vec<Match>) {
        match value {
            Value::String(text) => self.screen_into(text, path, scratch, out),
            Value::Array(items) => {
                let len = path.len();
                for (i, item) in items.iter().enumerate() {
                    let _ = write!(path, "/{i}");
                    self.walk(item, path, scratch, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                let len = path.len();
                for (key, item) in map {
                    path.push('/');
                    push_escaped(path, key);
                    self.walk(item, path, scratch, out);
                    path.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn screen_into(&self, text: &str, pointer: &str, scratch: &mut Scratch, out: &mut Vec<Match>) {
        let Scratch {
            canon,
            first_at,
            found,
        } = scratch;
        if first_at.len() != self.rules.rules.len() {
            first_at.clear();
            first_at.resize(self.rules.rules.len(), usize::MAX);
        }
        let mut hit = |at: usize, pattern: usize| {
            let rule = self.pattern_rule[pattern];
            let first = &mut first_at[rule as usize];
            if *first == usize::MAX {
                found.push(rule);
            }
            *first = (*first).min(at);
        };
        canon.normalize(text);
        for m in self.automaton.find_overlapping_iter(&canon.buf[..]) {
            hit(m.start(), m.pattern().as_usize());
        }
        // A spelled-out word right after (or before) a real one-letter word, as in
        // "buy a f e n t a n y l", was joined with it ("afentanyi"): try the run again
        // without its leading and trailing "a"/"i" letters. A run holds no space, so only a
        // whole stripped run can match, and one longer than every pattern cannot.
        for &(start, end) in &canon.runs {
            let run = &canon.buf[start..end];
            if run.len() > self.longest_pattern + 6 {
                continue;
            }
            let lead = run
                .iter()
                .take(3)
                .take_while(|&&b| is_one_letter_word(b))
                .count();
            let trail = run
                .iter()
                .rev()
                .take(3)
                .take_while(|&&b| is_one_letter_word(b))
                .count();
            for skip_lead in 0..=lead {
                for skip_trail in 0..=trail {
                    if (skip_lead, skip_trail) == (0, 0) || skip_lead + skip_trail >= run.len() {
                        continue;
                    }
                    canon.probe.clear();
                    canon.probe.push(b' ');
                    canon
                        .probe
                        .extend_from_slice(&run[skip_lead..run.len() - skip_trail]);
                    canon.probe.push(b' ');
                    for m in self.automaton.find_overlapping_iter(&canon.probe[..]) {
                        hit(start + skip_lead, m.pattern().as_usize());
                    }
                }
            }
        }
        found.sort_unstable_by_key(|&rule| (first_at[rule as usize], rule));
        for &rule in found.iter() {
            first_at[rule as usize] = usize::MAX;
            let rule = &self.rules.rules[rule as usize];
            out.push(Match {
                term: rule.term.clone(),
                category: rule.category,
                severity: rule.severity,
                pointer: pointer.to_owned(),
            });
        }
        found.clear();
    }
}

/// Buffers reused across the strings of one call.
#[derive(Default)]
struct Scratch {
    canon: Canon,
    /// Rule index → where it first matched in the normalized text (`usize::MAX`: not yet).
    first_at: Vec<usize>,
    /// The rules matched so far, in the order found.
    found: Vec<u32>,
}

/// Appends `key` escaped as an RFC 6901 reference token.
fn push_escaped(path: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// The patterns for one term, its own form first: `" term "`, plus its words run together,
/// its joiners read as spaces ("self-harm" → "self harm"), and the plurals of each.
fn term_patterns(canon: &mut Canon, term: &str) -> Vec<Vec<u8>> {
    let mut bases = vec![canon.normalize_term(term, false)];
    let split = canon.normalize_term(term, true);
    if !bases.contains(&split) {
        bases.push(split);
    }
    for i in 0..bases.len() {
        if bases[i].contains(&b' ') {
            let joined: Vec<u8> = bases[i].iter().copied().filter(|&b| b != b' ').collect();
            if !bases.contains(&joined) {
                bases.push(joined);
            }
        }
    }
    let mut forms: Vec<Vec<u8>> = Vec::new();
    for base in &bases {
        for form in std::iter::once(base.clone()).chain(plurals(base)) {
            let mut pattern = Vec::with_capacity(form.len() + 2);
            pattern.push(b' ');
            pattern.extend_from_slice(&form);
            pattern.push(b' ');
            if !forms.contains(&pattern) {
                forms.push(pattern);
            }
        }
    }
    forms
}

/// English plural (and, through the dropped apostrophe, possessive) forms of a normalized
/// term: "+s", "+es" after s/x/z/ch/sh, "y" → "ies" after a consonant.
fn plurals(base: &[u8]) -> Vec<Vec<u8>> {
    let Some(&last) = base.last() else {
        return Vec::new();
    };
    if !last.is_ascii_lowercase() {
        return Vec::new();
    }
    let with = |suffix: &[u8]| {
        let mut form = base.to_vec();
        form.extend_from_slice(suffix);
        form
    };
    let mut forms = Vec::new();
    if last != b's' {
        forms.push(with(b"s"));
    }
    if matches!(last, b's' | b'x' | b'z') || base.ends_with(b"ch") || base.ends_with(b"sh") {
        forms.push(with(b"es"));
    }
    if last == b'y'
        && base.len() >= 2
        && !matches!(base[base.len() - 2], b'a' | b'e' | b'i' | b'o' | b'u')
    {
        let mut form = base[..base.len() - 1].to_vec();
        form.extend_from_slice(b"ies");
        forms.push(form);
    }
    forms
}
