//! High-risk content screening: finds medical, legal and financial content in text and in JSON
//! documents (a workflow, a job's input), so the caller can block, hold or warn before anything
//! runs.
//!
//! This module owns the rule model ([`Rule`], [`RuleSet`] and its validation), the
//! [`default_rules`], the text normalization that defeats the common evasions, and the
//! [`Screener`], which finds every rule in one Aho-Corasick pass over the normalized text and
//! turns the worst severity found into a [`Verdict`]. It is pure: no I/O, no clock, no global
//! state; what to do with a [`Screening`] is the caller's decision.
//!
//! It must never: log, store or alter the text it screens; report a term that starts or ends
//! inside a word ("therapist" is not "rapist"); or panic, whatever the input (hostile Unicode
//! included).
//!
//! # Normalization
//!
//! Rule terms and screened text go through the same mapping, so they compare equal whenever a
//! human would read them as the same word:
//!
//! - Unicode compatibility decomposition, one character at a time (ASCII skips it): NFKD
//!   rather than NFKC so that combining marks can then be dropped, and "ｆｅｎｔａｎｙｌ",
//!   "𝔣𝔢𝔫𝔱𝔞𝔫𝔶𝔩" and "fentanýl" all read as "fentanyl". Zero-width and other invisible
//!   format characters are dropped.
//! - Lowercasing, plus a few Cyrillic and Greek look-alikes folded to their Latin twins.
//! - Leet: `0`→o, `3`→e, `4`→a, `5`→s, `7`→t, and `1`, `l`, `!`, `|` all become one letter
//!   (written `i`), so "1" needs no guess between "i" and "l". `@`, `$`, `!` and `|` count as
//!   letters only when a letter or digit follows ("c@sh", not "help!").
//! - Punctuation that people insert inside words (`.` `-` `_` `*` `'` and a few more) is
//!   dropped: "c.o.c.a.i.n.e", "laun-dering", "m*oney". Other punctuation and white space
//!   separate words.
//! - A run of one-letter words is joined: "f e n t a n y l", "c,o,c,a,i,n,e". Two white
//!   space characters in a row end such a run ("b u y  f e n t a n y l" is two words), and a
//!   real one-letter word ("a", "I") at either end of a run is tolerated ("buy a f e n t a n y
//!   l"). A term inside a longer run is not found, by design: "t h e r a p i s t" has no
//!   "rapist".
//!
//! The result is a stream of words separated by single spaces, with a space at each end. Each
//! term is searched as `" term "`, so every match starts and ends on a word boundary by
//! construction. A term also matches its plural ("lawsuits", "lawyer's"), and a term of several
//! words also matches with its words run together ("selfharm", "moneylaundering").
//!
//! ```
//! use levqor_core::screening::{default_rules, Screener, Verdict};
//! use serde_json::json;
//!
//! let screener = Screener::new(&default_rules()).unwrap();
//! let input = json!({"note": "Where can I buy f3nt@nyl?", "ok": "Lovely weather today"});
//! let screening = screener.screen(&[("/input", &input)]);
//! assert_eq!(screening.verdict, Verdict::Hold);
//! assert_eq!(screening.matches[0].term, "fentanyl");
//! assert_eq!(screening.matches[0].pointer, "/input/note");
//! ```

use crate::error::{Error, Result, Violation};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// The most rules a [`RuleSet`] may hold.
pub const MAX_RULES: usize = 10_000;

/// The longest term, in characters, a [`Rule`] may have.
pub const MAX_TERM_CHARS: usize = 100;

/// Rule sets whose patterns add up to at most this many bytes get a full DFA (fastest); larger
/// ones let the crate pick a smaller automaton.
const DFA_PATTERN_BYTES: usize = 64 * 1024;

/// What kind of high-risk content a rule detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Health, drugs, diagnoses, self-harm.
    Medical,
    /// Lawsuits, crimes, courts, contracts.
    Legal,
    /// Money, loans, investments, taxes, financial crime.
    Financial,
}

impl Category {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Medical => "medical",
            Category::Legal => "legal",
            Category::Financial => "financial",
        }
    }
}

/// How risky a term is; ordered `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Mentions the domain ("doctor", "bank"); allowed.
    Low,
    /// Seeks or gives advice in the domain ("mortgage", "symptoms"); warned.
    Medium,
    /// Regulated or sensitive matter ("fentanyl", "lawsuit", "bankruptcy"); held for review.
    High,
    /// Harm or crime ("lethal dose", "money laundering"); blocked.
    Critical,
}

impl Severity {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One term to look for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The word or phrase, as a human writes it ("tax evasion"); normalized before matching.
    pub term: String,
    /// What the term is about.
    pub category: Category,
    /// How risky a match is.
    pub severity: Severity,
}

impl Rule {
    /// A rule for `term`.
    pub fn new(term: impl Into<String>, category: Category, severity: Severity) -> Self {
        Self {
            term: term.into(),
            category,
            severity,
        }
    }
}

/// The rules a [`Screener`] matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// Every rule; their terms are distinct after normalization.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Checks the set and reports every violation, each with its JSON pointer
    /// (`/rules/3/term`): a term that is empty after normalization, a term longer than
    /// [`MAX_TERM_CHARS`], a term equal to an earlier one after normalization, and more than
    /// [`MAX_RULES`] rules.
    pub fn validate(&self) -> Result<()> {
        let mut violations = Vec::new();
        if self.rules.len() > MAX_RULES {
            violations.push(Violation::new(
                "/rules",
                format!(
                    "{} rules; at most {MAX_RULES} are allowed",
                    self.rules.len()
                ),
            ));
        }
        let mut canon = Canon::default();
        let mut first_seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let pointer = format!("/rules/{i}/term");
            let chars = rule.term.chars().count();
            if chars > MAX_TERM_CHARS {
                violations.push(Violation::new(
                    pointer.clone(),
                    format!("{chars} characters; at most {MAX_TERM_CHARS} are allowed"),
                ));
            }
            let normalized = canon.normalize_term(&rule.term, false);
            if normalized.is_empty() {
                violations.push(Violation::new(
                    pointer,
                    "empty after normalization: a term needs a letter or a digit",
                ));
            } else if let Some(&first) = first_seen.get(&normalized) {
                violations.push(Violation::new(
                    pointer,
                    format!("duplicates /rules/{first}/term after normalization"),
                ));
            } else {
                first_seen.insert(normalized, i);
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::violations(
                "validation_failed",
                "the rule set is invalid",
                violations,
            ))
        }
    }
}

/// What to do with a document, from the worst severity found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Refuse it (a critical term).
    Block,
    /// Keep it for human review (a high term).
    Hold,
    /// Let it through with a warning (a medium term).
    Warn,
    /// Let it through (low terms or none).
    Allow,
}

impl Verdict {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Block => "block",
            Verdict::Hold => "hold",
            Verdict::Warn => "warn",
            Verdict::Allow => "allow",
        }
    }

    /// Critical blocks, high holds, medium warns; low or nothing allows.
    pub fn for_severity(severity: Option<Severity>) -> Verdict {
        match severity {
            Some(Severity::Critical) => Verdict::Block,
            Some(Severity::High) => Verdict::Hold,
            Some(Severity::Medium) => Verdict::Warn,
            Some(Severity::Low) | None => Verdict::Allow,
        }
    }
}

/// One rule found in one string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// The rule's term as written in the rule set (not the text that matched it).
    pub term: String,
    /// The rule's category.
    pub category: Category,
    /// The rule's severity.
    pub severity: Severity,
    /// JSON pointer (RFC 6901) of the string that holds the match.
    pub pointer: String,
}

/// The outcome of screening some documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screening {
    /// From the worst severity among the matches.
    pub verdict: Verdict,
    /// Every match, at most one per (term, pointer), in document order.
    pub matches: Vec<Match>,
}

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

/// The one-letter English words, as normalized ("a", and "I" which is also "l" and "1").
fn is_one_letter_word(b: u8) -> bool {
    b == b'a' || b == b'i'
}

// What each byte of the text does to the normalized stream.
/// A letter or digit: emits `MAP[b]`.
const WORD: u8 = 0;
/// Ends the current word.
const SEP: u8 = 1;
/// Punctuation dropped inside words ("laun-dering"); at a word's edge it simply vanishes.
const JOIN: u8 = 2;
/// `@ $ ! |`: the letter `MAP[b]` if a letter or digit follows, else punctuation.
const LEET: u8 = 3;
/// A byte of a non-ASCII character: decoded and normalized as a character.
const NON_ASCII: u8 = 4;
/// ASCII white space: ends the current word; two in a row also end a run of one-letter words
/// ("b u y  f e n t a n y l" is two words).
const SPACE: u8 = 5;

const fn byte_tables() -> ([u8; 256], [u8; 256]) {
    let mut class = [NON_ASCII; 256];
    let mut map = [0u8; 256];
    let mut b = 0u8;
    while b < 128 {
        class[b as usize] = SEP;
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            class[b as usize] = WORD;
            map[b as usize] = b;
        } else if b.is_ascii_uppercase() {
            class[b as usize] = WORD;
            map[b as usize] = b.to_ascii_lowercase();
        }
        b += 1;
    }
    // "1", "l", "I", "!" and "|" are one letter, so "k1ll", "kill" and "k!ll" compare equal.
    map[b'l' as usize] = b'i';
    map[b'L' as usize] = b'i';
    map[b'0' as usize] = b'o';
    map[b'1' as usize] = b'i';
    map[b'3' as usize] = b'e';
    map[b'4' as usize] = b'a';
    map[b'5' as usize] = b's';
    map[b'7' as usize] = b't';
    let leet = [(b'@', b'a'), (b'$', b's'), (b'!', b'i'), (b'|', b'i')];
    let mut i = 0;
    while i < leet.len() {
        class[leet[i].0 as usize] = LEET;
        map[leet[i].0 as usize] = leet[i].1;
        i += 1;
    }
    let spaces = *b" \t\n\r\x0b\x0c";
    let mut i = 0;
    while i < spaces.len() {
        class[spaces[i] as usize] = SPACE;
        i += 1;
    }
    let joiners = *b".-_*'`~^+";
    let mut i = 0;
    while i < joiners.len() {
        class[joiners[i] as usize] = JOIN;
        i += 1;
    }
    (class, map)
}

const TABLES: ([u8; 256], [u8; 256]) = byte_tables();
/// Byte → class (`WORD`, `SEP`, `SPACE`, `JOIN`, `LEET`, `NON_ASCII`).
static CLASS: [u8; 256] = TABLES.0;
/// ASCII byte → the byte it stands for in the stream (lowercase, leet undone).
static MAP: [u8; 256] = TABLES.1;

/// Invisible characters dropped outright, so "fen\u{200b}tanyl" is "fentanyl".
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Non-ASCII punctuation read like the ASCII joiners: apostrophes, hyphens, middle dots.
fn is_joiner(c: char) -> bool {
    matches!(
        c,
        '\u{2018}'
            | '\u{2019}'
            | '\u{02BC}'
            | '\u{2010}'
            | '\u{2011}'
            | '\u{00B7}'
            | '\u{2027}'
            | '\u{2219}'
            | '\u{22C5}'
            | '\u{30FB}'
    )
}

/// Cyrillic and Greek lowercase letters that look like a Latin one ("раураl").
fn latin_look_alike(c: char) -> Option<u8> {
    Some(match c {
        'а' | 'α' => b'a',
        'в' | 'β' => b'b',
        'с' | 'ϲ' => b'c',
        'ԁ' => b'd',
        'е' | 'ε' => b'e',
        'һ' | 'н' => b'h',
        'і' | 'ι' | 'ӏ' => b'i',
        'ј' => b'j',
        'к' | 'κ' => b'k',
        'м' => b'm',
        'η' => b'n',
        'о' | 'ο' => b'o',
        'р' | 'ρ' => b'p',
        'ѕ' => b's',
        'т' | 'τ' => b't',
        'υ' => b'u',
        'ν' => b'v',
        'ԝ' => b'w',
        'х' | 'χ' => b'x',
        'у' | 'γ' => b'y',
        _ => return None,
    })
}

/// The normalizer: turns text into the canonical stream of words (see the module docs) in one
/// pass, reusing its buffers between calls.
#[derive(Default)]
struct Canon {
    /// The stream: `" word word word "`.
    buf: Vec<u8>,
    /// `@ $ ! |` seen since the last letter, not yet known to be letters.
    pending: Vec<u8>,
    /// Whether a word is open at the end of `buf`.
    in_word: bool,
    /// Where the open word starts in `buf`.
    word_start: usize,
    /// Characters in the open word.
    word_chars: usize,
    /// Consecutive white space characters just seen.
    spaces: u8,
    /// Whether two white space characters in a row were seen since the last word opened.
    wide_gap: bool,
    /// Whether the open word came after such a gap.
    wide_gap_before_word: bool,
    /// Whether the last closed word had one character (a run of them is joined).
    run_open: bool,
    /// Where the open run of one-letter words starts and ends in `buf`, and its length.
    run_start: usize,
    run_end: usize,
    run_words: u32,
    /// Runs of two or more one-letter words that start or end with "a" or "i".
    runs: Vec<(usize, usize)>,
    /// Read joiners as separators (for the "self harm" form of the term "self-harm").
    split_joiners: bool,
    /// Scratch for re-searching a run.
    probe: Vec<u8>,
    /// Direct-mapped cache: non-ASCII character → what it contributes.
    folds: Vec<(char, Fold)>,
}

impl Canon {
    /// The normalized form of a term: the stream without its outer spaces.
    fn normalize_term(&mut self, term: &str, split_joiners: bool) -> Vec<u8> {
        self.split_joiners = split_joiners;
        self.normalize(term);
        self.split_joiners = false;
        let inner = self.buf.strip_prefix(b" ").unwrap_or(&self.buf);
        inner.strip_suffix(b" ").unwrap_or(inner).to_vec()
    }

    fn normalize(&mut self, text: &str) {
        self.buf.clear();
        self.buf.reserve(text.len() + 2);
        self.buf.push(b' ');
        self.pending.clear();
        self.in_word = false;
        self.word_chars = 0;
        self.spaces = 0;
        self.wide_gap = false;
        self.wide_gap_before_word = false;
        self.run_open = false;
        self.run_words = 0;
        self.runs.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match CLASS[usize::from(b)] {
                WORD => {
                    // The hot path: a run of ASCII letters and digits is copied through the
                    // map in one go.
                    if !self.pending.is_empty() {
                        self.flush_pending();
                    }
                    if !self.in_word {
                        self.open_word();
                    }
                    let start = i;
                    i += 1;
                    while i < bytes.len() && CLASS[usize::from(bytes[i])] == WORD {
                        i += 1;
                    }
                    let word = &bytes[start..i];
                    self.buf.extend(word.iter().map(|&b| MAP[usize::from(b)]));
                    self.word_chars += word.len();
                    self.spaces = 0;
                }
                SPACE => {
                    self.space();
                    i += 1;
                }
                NON_ASCII => {
                    // `i` is always on a character boundary: it only moves by whole characters.
                    let Some(c) = text[i..].chars().next() else {
                        break;
                    };
                    i += c.len_utf8();
                    self.unicode(c);
                }
                _ => {
                    self.ascii(b);
                    i += 1;
                }
            }
        }
        self.separator();
        self.close_run();
        if self.buf.last() != Some(&b' ') {
            self.buf.push(b' ');
        }
    }

    /// One ASCII byte (callers pass only ASCII).
    #[inline]
    fn ascii(&mut self, b: u8) {
        let i = usize::from(b & 0x7f);
        match CLASS[i] {
            WORD => self.letter(MAP[i]),
            SPACE => self.space(),
            JOIN if !self.split_joiners => {
                self.spaces = 0;
                self.pending.clear();
            }
            LEET => {
                self.spaces = 0;
                self.pending.push(MAP[i]);
            }
            _ => {
                self.spaces = 0;
                self.separator();
            }
        }
    }

    #[inline]
    fn space(&mut self) {
        self.spaces = self.spaces.saturating_add(1);
        if self.spaces >= 2 {
            self.wide_gap = true;
        }
        if self.in_word || !self.pending.is_empty() {
            self.separator();
        }
    }

    #[inline]
    fn letter(&mut self, b: u8) {
        if !self.pending.is_empty() {
            self.flush_pending();
        }
        if !self.in_word {
            self.open_word();
        }
        self.buf.push(b);
        self.word_chars += 1;
        self.spaces = 0;
    }

    fn unicode_letter(&mut self, c: char) {
        if !self.pending.is_empty() {
            self.flush_pending();
        }
        if !self.in_word {
            self.open_word();
        }
        let mut utf8 = [0u8; 4];
        self.buf
            .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        self.word_chars += 1;
        self.spaces = 0;
    }

    /// The pending `@ $ ! |` are followed by a letter: they are letters too ("c@sh").
    #[cold]
    fn flush_pending(&mut self) {
        if !self.in_word {
            self.open_word();
        }
        self.buf.extend_from_slice(&self.pending);
        self.word_chars += self.pending.len();
        self.pending.clear();
    }

    fn open_word(&mut self) {
        if self.buf.last() != Some(&b' ') {
            self.buf.push(b' ');
        }
        self.in_word = true;
        self.word_start = self.buf.len();
        self.word_chars = 0;
        self.wide_gap_before_word = self.wide_gap;
        self.wide_gap = false;
    }

    fn separator(&mut self) {
        self.pending.clear();
        if self.in_word {
            self.close_word();
        }
    }

    fn close_word(&mut self) {
        self.in_word = false;
        if self.word_chars == 1 {
            if self.run_open && self.wide_gap_before_word {
                self.close_run();
            }
            if self.run_open {
                // Join this letter to the one-letter words before it: "f e n t a n y l".
                self.buf.remove(self.word_start - 1);
                self.run_words += 1;
            } else {
                self.run_open = true;
                self.run_start = self.word_start;
                self.run_words = 1;
            }
            self.run_end = self.buf.len();
        } else {
            self.close_run();
        }
    }

    fn close_run(&mut self) {
        if self.run_open && self.run_words >= 2 {
            let run = &self.buf[self.run_start..self.run_end];
            if run.first().is_some_and(|&b| is_one_letter_word(b))
                || run.last().is_some_and(|&b| is_one_letter_word(b))
            {
                self.runs.push((self.run_start, self.run_end));
            }
        }
        self.run_open = false;
    }

    fn unicode(&mut self, c: char) {
        if is_invisible(c) {
            return;
        }
        decompose_compatible(c, |d| self.decomposed(d));
    }

    fn decomposed(&mut self, d: char) {
        if d.is_ascii() {
            self.ascii(d as u8);
            return;
        }
        // Unicode property lookups cost tens of nanoseconds; text in one script repeats few
        // characters, so a small direct-mapped cache saves most of them.
        if self.folds.is_empty() {
            self.folds = vec![('\0', Fold::Complex); FOLD_CACHE];
        }
        let slot = (d as usize ^ (d as usize >> 7)) % FOLD_CACHE;
        let fold = match self.folds[slot] {
            (key, fold) if key == d => fold,
            _ => {
                let fold = Fold::of(d);
                self.folds[slot] = (d, fold);
                fold
            }
        };
        match fold {
            Fold::Skip => {}
            Fold::Joiner if self.split_joiners => self.separator(),
            Fold::Joiner => {
                self.spaces = 0;
                self.pending.clear();
            }
            Fold::Ascii(b) => self.ascii(b),
            Fold::Letter(e) => self.unicode_letter(e),
            Fold::Separator => {
                self.spaces = 0;
                self.separator();
            }
            Fold::Complex => self.lowercased(d),
        }
    }

    /// The slow path for a character whose lowercase is several characters ("İ").
    fn lowercased(&mut self, d: char) {
        for e in d.to_lowercase() {
            if e.is_ascii() {
                self.ascii(e as u8);
            } else if is_combining_mark(e) {
                // e.g. the dot of "İ" lowercased
            } else if let Some(latin) = latin_look_alike(e) {
                self.ascii(latin);
            } else if e.is_alphanumeric() {
                self.unicode_letter(e);
            } else {
                self.separator();
            }
        }
    }
}

/// Entries in [`Canon`]'s cache of non-ASCII characters.
const FOLD_CACHE: usize = 512;

/// What one non-ASCII character (already decomposed) contributes to the stream.
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// A combining mark or an invisible character: nothing.
    Skip,
    /// Punctuation dropped inside words (’ ‐ ·).
    Joiner,
    /// Stands for this ASCII byte (a Latin look-alike).
    Ascii(u8),
    /// A letter or digit, lowercased.
    Letter(char),
    /// Ends the current word.
    Separator,
    /// Lowercases to several characters: handled one by one.
    Complex,
}

impl Fold {
    fn of(d: char) -> Fold {
        if is_combining_mark(d) || is_invisible(d) {
            return Fold::Skip;
        }
        if is_joiner(d) {
            return Fold::Joiner;
        }
        let mut lower = d.to_lowercase();
        let (Some(e), None) = (lower.next(), lower.next()) else {
            return Fold::Complex;
        };
        if e.is_ascii() {
            Fold::Ascii(e as u8)
        } else if is_combining_mark(e) {
            Fold::Skip
        } else if let Some(latin) = latin_look_alike(e) {
            Fold::Ascii(latin)
        } else if e.is_alphanumeric() {
            Fold::Letter(e)
        } else {
            Fold::Separator
        }
    }
}

/// The default rules: about 260 terms across medical, legal and financial content.
///
/// Critical terms describe harm or crime (a lethal dose, money laundering); high terms are
/// regulated or sensitive matter (prescription opioids, lawsuits, bankruptcy); medium terms
/// ask for or give advice (symptoms, contracts, mortgages); low terms only name the domain
/// (doctor, lawyer, bank).
pub fn default_rules() -> RuleSet {
    use Category::{Financial as F, Legal as L, Medical as M};
    use Severity::{Critical as C, High as H, Low as Lo, Medium as Me};
    const RULES: &[(&str, Category, Severity)] = &[
        // Medical: self-harm and overdose instructions, forged prescriptions.
        ("lethal dose", M, C),
        ("fatal dose", M, C),
        ("how to overdose", M, C),
        ("overdose on purpose", M, C),
        ("kill myself", M, C),
        ("end my life", M, C),
        ("hang myself", M, C),
        ("suicide method", M, C),
        ("how to commit suicide", M, C),
        ("how to self-harm", M, C),
        ("cut myself", M, C),
        ("forge a prescription", M, C),
        ("fake prescription", M, C),
        // Medical: diagnoses, controlled and prescription drugs, serious conditions.
        ("diagnosis", M, H),
        ("diagnosed", M, H),
        ("prescription", M, H),
        ("without a prescription", M, H),
        ("controlled substance", M, H),
        ("oxycodone", M, H),
        ("oxycontin", M, H),
        ("hydrocodone", M, H),
        ("fentanyl", M, H),
        ("morphine", M, H),
        ("codeine", M, H),
        ("tramadol", M, H),
        ("xanax", M, H),
        ("valium", M, H),
        ("adderall", M, H),
        ("benzodiazepine", M, H),
        ("opioid", M, H),
        ("cocaine", M, H),
        ("heroin", M, H),
        ("methamphetamine", M, H),
        ("meth", M, H),
        ("ketamine", M, H),
        ("overdose", M, H),
        ("suicide", M, H),
        ("suicidal", M, H),
        ("self-harm", M, H),
        ("eating disorder", M, H),
        ("chemotherapy", M, H),
        ("cancer", M, H),
        ("tumor", M, H),
        ("tumour", M, H),
        ("hiv", M, H),
        ("heart attack", M, H),
        ("seizure", M, H),
        ("antidepressant", M, H),
        ("dosage", M, H),
        // Medical: symptoms, treatment, common medicines and conditions.
        ("symptom", M, Me),
        ("medication", M, Me),
        ("medicine", M, Me),
        ("side effect", M, Me),
        ("treatment", M, Me),
        ("prescribed", M, Me),
        ("dose", M, Me),
        ("pill", M, Me),
        ("painkiller", M, Me),
        ("sleeping pill", M, Me),
        ("sleeping tablet", M, Me),
        ("ibuprofen", M, Me),
        ("acetaminophen", M, Me),
        ("paracetamol", M, Me),
        ("aspirin", M, Me),
        ("antibiotic", M, Me),
        ("insulin", M, Me),
        ("steroid", M, Me),
        ("vaccine", M, Me),
        ("infection", M, Me),
        ("fever", M, Me),
        ("chest pain", M, Me),
        ("blood pressure", M, Me),
        ("depression", M, Me),
        ("anxiety", M, Me),
        ("panic attack", M, Me),
        ("diabetes", M, Me),
        ("asthma", M, Me),
        ("migraine", M, Me),
        ("allergic reaction", M, Me),
        ("surgery", M, Me),
        ("pregnancy", M, Me),
        ("pregnant", M, Me),
        ("mental health", M, Me),
        ("addiction", M, Me),
        ("rehab", M, Me),
        ("covid-19", M, Me),
        // Medical: the domain.
        ("doctor", M, Lo),
        ("physician", M, Lo),
        ("nurse", M, Lo),
        ("hospital", M, Lo),
        ("clinic", M, Lo),
        ("pharmacy", M, Lo),
        ("pharmacist", M, Lo),
        ("therapist", M, Lo),
        ("therapy", M, Lo),
        ("dentist", M, Lo),
        ("psychiatrist", M, Lo),
        ("surgeon", M, Lo),
        ("medical", M, Lo),
        ("health insurance", M, Lo),
        // Legal: obstructing justice, forgery.
        ("destroy evidence", L, C),
        ("tamper with evidence", L, C),
        ("hide evidence", L, C),
        ("bribe a judge", L, C),
        ("bribe a witness", L, C),
        ("bribe an official", L, C),
        ("fake passport", L, C),
        ("forge a signature", L, C),
        ("forged documents", L, C),
        // Legal: litigation, crimes, family law.
        ("lawsuit", L, H),
        ("sued", L, H),
        ("suing", L, H),
        ("sue me", L, H),
        ("sue us", L, H),
        ("sue my", L, H),
        ("sue them", L, H),
        ("sue you", L, H),
        ("sue him", L, H),
        ("sue her", L, H),
        ("sue the", L, H),
        ("custody battle", L, H),
        ("custody", L, H),
        ("restraining order", L, H),
        ("criminal charges", L, H),
        ("criminal record", L, H),
        ("felony", L, H),
        ("misdemeanor", L, H),
        ("arrested", L, H),
        ("indictment", L, H),
        ("indicted", L, H),
        ("subpoena", L, H),
        ("plea deal", L, H),
        ("plea bargain", L, H),
        ("defamation", L, H),
        ("libel", L, H),
        ("slander", L, H),
        ("eviction", L, H),
        ("evicted", L, H),
        ("sexual assault", L, H),
        ("rape", L, H),
        ("rapist", L, H),
        ("perjury", L, H),
        ("obstruction of justice", L, H),
        ("identity theft", L, H),
        ("deportation", L, H),
        ("dui", L, H),
        ("breach of contract", L, H),
        ("class action", L, H),
        ("wrongful termination", L, H),
        ("malpractice", L, H),
        ("fake id", L, H),
        ("manslaughter", L, H),
        // Legal: contracts, courts, advice.
        ("contract", L, Me),
        ("legal advice", L, Me),
        ("liability", L, Me),
        ("divorce", L, Me),
        ("court date", L, Me),
        ("court hearing", L, Me),
        ("court order", L, Me),
        ("small claims", L, Me),
        ("settlement offer", L, Me),
        ("power of attorney", L, Me),
        ("last will and testament", L, Me),
        ("copyright infringement", L, Me),
        ("trademark", L, Me),
        ("cease and desist", L, Me),
        ("prenup", L, Me),
        ("prenuptial agreement", L, Me),
        ("non-disclosure agreement", L, Me),
        ("probate", L, Me),
        ("alimony", L, Me),
        ("child support", L, Me),
        ("illegal", L, Me),
        ("legal action", L, Me),
        ("press charges", L, Me),
        ("probation", L, Me),
        ("parole", L, Me),
        // Legal: the domain.
        ("lawyer", L, Lo),
        ("attorney", L, Lo),
        ("legal", L, Lo),
        ("paralegal", L, Lo),
        ("law firm", L, Lo),
        ("notary", L, Lo),
        ("solicitor", L, Lo),
        ("courtroom", L, Lo),
        // Financial: financial crime.
        ("insider trading", F, C),
        ("money laundering", F, C),
        ("launder money", F, C),
        ("laundering money", F, C),
        ("tax evasion", F, C),
        ("evade taxes", F, C),
        ("evading taxes", F, C),
        ("tax fraud", F, C),
        ("ponzi scheme", F, C),
        ("pump and dump", F, C),
        ("embezzle", F, C),
        ("embezzlement", F, C),
        ("embezzling", F, C),
        ("embezzled", F, C),
        ("laundered", F, C),
        ("wire fraud", F, C),
        ("securities fraud", F, C),
        ("bank fraud", F, C),
        ("counterfeit money", F, C),
        ("structuring deposits", F, C),
        // Financial: distress, moving money, account secrets.
        ("bankruptcy", F, H),
        ("bankrupt", F, H),
        ("foreclosure", F, H),
        ("wire transfer", F, H),
        ("wire the money", F, H),
        ("fraud", F, H),
        ("fraudulent", F, H),
        ("debt collector", F, H),
        ("payday loan", F, H),
        ("margin call", F, H),
        ("wage garnishment", F, H),
        ("repossession", F, H),
        ("social security number", F, H),
        ("bank account number", F, H),
        ("routing number", F, H),
        ("credit card number", F, H),
        ("pin number", F, H),
        ("guaranteed returns", F, H),
        // Financial: loans, investments, taxes.
        ("loan", F, Me),
        ("mortgage", F, Me),
        ("investment advice", F, Me),
        ("financial advice", F, Me),
        ("investment", F, Me),
        ("investor", F, Me),
        ("stock market", F, Me),
        ("stock tips", F, Me),
        ("credit score", F, Me),
        ("credit card", F, Me),
        ("debt", F, Me),
        ("tax return", F, Me),
        ("tax", F, Me),
        ("irs", F, Me),
        ("refinance", F, Me),
        ("interest rate", F, Me),
        ("401(k)", F, Me),
        ("retirement savings", F, Me),
        ("pension", F, Me),
        ("cryptocurrency", F, Me),
        ("bitcoin", F, Me),
        ("crypto", F, Me),
        ("capital gains", F, Me),
        ("bank account", F, Me),
        ("overdraft", F, Me),
        ("hedge fund", F, Me),
        ("mutual fund", F, Me),
        ("dividend", F, Me),
        ("day trading", F, Me),
        // Financial: the domain.
        ("bank", F, Lo),
        ("banker", F, Lo),
        ("banking", F, Lo),
        ("insurance", F, Lo),
        ("accountant", F, Lo),
        ("financial advisor", F, Lo),
        ("stockbroker", F, Lo),
        ("paycheck", F, Lo),
        ("salary", F, Lo),
        ("financial", F, Lo),
    ];
    RuleSet {
        rules: RULES
            .iter()
            .map(|&(term, category, severity)| Rule::new(term, category, severity))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn rule(term: &str, category: Category, severity: Severity) -> Rule {
        Rule::new(term, category, severity)
    }

    fn screener(rules: &[(&str, Category, Severity)]) -> Screener {
        let rules = RuleSet {
            rules: rules.iter().map(|&(t, c, s)| rule(t, c, s)).collect(),
        };
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
        assert_eq!(terms(&s, "m0ney launder1ng"), ["money laundering"]);
        assert_eq!(terms(&s, "1ns1der trad1ng"), ["insider trading"]);
        assert_eq!(terms(&s, "money |aundering"), ["money laundering"]);
        assert_eq!(terms(&s, "money !aundering"), ["money laundering"]);
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
        assert_eq!(terms(&s, "money laun-dering"), ["money laundering"]);
        assert_eq!(terms(&s, "m*oney l_aundering"), ["money laundering"]);
        assert_eq!(terms(&s, "fen·tan·yl"), ["fentanyl"]);
        assert_eq!(terms(&s, "tax-evasion"), ["tax evasion"]);
        assert_eq!(terms(&s, "moneylaundering"), ["money laundering"]);
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
        let s = default_screener();
        let found = s.screen_text("F3NTANYL, fentanyl and f e n t a n y l", "/x");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0],
            Match {
                term: "fentanyl".into(),
                category: Category::Medical,
                severity: Severity::High,
                pointer: "/x".into(),
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
        assert_eq!(verdict("I got sued"), Verdict::Hold);
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
        let rules = RuleSet {
            rules: vec![
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
            ],
        };
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
        let rules = RuleSet {
            rules: (0..=MAX_RULES)
                .map(|i| rule(&format!("term{i}"), Category::Legal, Severity::Low))
                .chain([rule("", Category::Legal, Severity::Low)])
                .collect(),
        };
        let err = rules.validate().expect_err("too many");
        let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/rules", &format!("/rules/{}/term", MAX_RULES + 1)]
        );
    }

    #[test]
    fn screener_refuses_an_invalid_rule_set() {
        let rules = RuleSet {
            rules: vec![
                rule("bank", Category::Financial, Severity::Low),
                rule("Bank", Category::Financial, Severity::Low),
            ],
        };
        let err = Screener::new(&rules).expect_err("duplicate");
        assert_eq!(err.code, "validation_failed");
        assert_eq!(err.violations[0].pointer, "/rules/1/term");
    }

    #[test]
    fn default_rules_are_valid_and_cover_every_category_and_severity() {
        let rules = default_rules();
        rules.validate().expect("valid");
        assert!(
            (120..=300).contains(&rules.rules.len()),
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
        let s = Screener::new(&RuleSet { rules: vec![] }).expect("empty is valid");
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
}
