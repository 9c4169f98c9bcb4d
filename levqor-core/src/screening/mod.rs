//! High-risk content screening: finds medical, legal and financial content in text and in JSON
//! documents (a workflow, a job's input), so the caller can block, hold or warn before anything
//! runs.
//!
//! This module owns the rule model ([`Rule`]s with their harmless senses, [`WordList`]s,
//! [`Intent`]s, and the validation of a [`RuleSet`]), the [`default_rules`], the text
//! normalization that defeats the common evasions, and the [`Screener`], which finds every term
//! and list word in one pass over the normalized words, reads the intents over them, and turns
//! the worst severity found into a [`Verdict`], each match saying why ([`Because`]). A rule set
//! may carry a learned second stage ([`Model`]) that reads the words around a string's deciding
//! match and may refuse a hold or warning, or lower a hold to a warning, saying so in the match
//! ([`Learned`]); [`features`] reads text as it does, for training. It is pure: no I/O, no
//! clock, no global state; what to do with a [`Screening`] is the caller's decision.
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
//! - Lowercasing, plus Cyrillic, Greek and Latin-extension look-alikes folded to their Latin
//!   twins; capitals are folded before lowercasing, so the Greek "Η" reads "h", not "n".
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
//! - Pieces of two or more letters one space apart, of each adjacent two at least one spelled
//!   with a joiner inside ("p-r.e s_c-ription", "p-r e.s c_r-ibe"), are also tried joined, up
//!   to four pieces, in place of them; the pieces are still read as they are.
//!
//! The result is a stream of words separated by single spaces, with a space at each end. Terms
//! are matched as whole words of that stream, so every match starts and ends on a word boundary
//! by construction. A term also matches its plural ("lawsuits", "lawyer's"), and a term of several
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

mod area;
mod learned;
mod matcher;
mod normalize;
mod rules;
mod screener;
mod service;
#[cfg(test)]
mod service_tests;
mod stage;
mod store;
#[cfg(test)]
mod tests;

pub use area::ScreeningsArea;
pub use learned::features;
pub use rules::default_rules;
pub use screener::Screener;
pub use service::{AppealDecision, Screenings};
pub use stage::RULES_REFRESH;
pub(crate) use stage::{RuleCache, ScreenStage};
pub use store::{AppealStatus, ScreeningRecord, ScreeningStore};

use crate::error::{Error, Result, Violation};
use normalize::Canon;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// The most terms and list words, together, a [`RuleSet`] may hold.
pub const MAX_RULES: usize = 10_000;

/// The longest term or list word, in characters.
pub const MAX_TERM_CHARS: usize = 100;

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
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The word or phrase, as a human writes it ("tax evasion"); normalized before matching.
    pub term: String,
    /// What the term is about.
    pub category: Category,
    /// How risky a match is.
    pub severity: Severity,
    /// The term's other senses: the name of a [`WordList`] whose words, within
    /// [`within`](Rule::within) words of the term, make it harmless ("a dose of humour",
    /// "our prescription for growth").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// How many words on either side [`unless`](Rule::unless) looks at.
    #[serde(default = "default_window", skip_serializing_if = "is_default_window")]
    pub within: u32,
}

impl Rule {
    /// A rule for `term`.
    pub fn new(term: impl Into<String>, category: Category, severity: Severity) -> Self {
        Self {
            term: term.into(),
            category,
            severity,
            unless: None,
            within: DEFAULT_WINDOW,
        }
    }
}

/// A named list of words and phrases that [`Intent`]s and senses refer to ("medical_action":
/// diagnose, prescribe, ...). Its terms are normalized and matched like a [`Rule`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordList {
    /// How intents and rules refer to it.
    pub name: String,
    /// Its words and phrases.
    pub terms: Vec<String>,
}

/// What a marking [`Intent`] says about the text it is found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The professional is removed ("no doctor needed", "instead of a lawyer"), or the act is
    /// done in someone's name ("on their behalf"): an intent found beside it takes its
    /// `escalated` severity.
    Escalator,
    /// The act is applied to everyone, or automatically ("every caller", "all applicants"):
    /// an intent takes its `to_everyone` severity (unless one of the marks above or a review
    /// or info mark is there).
    Everyone,
    /// A person reviews before anything happens ("for the pharmacist to approve"): an intent
    /// takes its `reviewed` severity (unless an escalator or an info mark is there).
    Review,
    /// General information, not applied to a person ("in general terms", "for the FAQ"): an
    /// intent takes its `informational` severity (unless an escalator is there).
    Info,
}

impl Mark {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Escalator => "escalator",
            Mark::Everyone => "everyone",
            Mark::Review => "review",
            Mark::Info => "info",
        }
    }
}

/// An intent: what a text asks to be done. It is found when a word of its `action` list and
/// a word of its `subject` list (when it has one) stand within `window` words of each other in
/// one string (with `ordered`, the action first). A marking intent (`marks`) qualifies the
/// other intents found in the same string; any other intent is a finding of its `category`,
/// whose severity follows the first mark beside it that it has a severity for, in this order:
/// `escalated` (an escalator), `informational` (an info mark), `reviewed` (a review),
/// `to_everyone` (applied to everyone); else its `severity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Names the intent in explanations ("medical.prescribe"); unique in the set.
    pub name: String,
    /// The name of the [`WordList`] of actions ("prescribe", "stop taking").
    pub action: String,
    /// The name of the [`WordList`] of subjects ("insulin", "warfarin"); none: the action alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The most words between the action and the subject, either way round.
    #[serde(default = "default_window", skip_serializing_if = "is_default_window")]
    pub window: u32,
    /// Whether the action must come before the subject ("for the lawyer", not "a lawyer for").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
    /// Other senses: the name of a [`WordList`] whose words, within `window` words of the
    /// action or the subject, make that place harmless ("change the dose of caffeine").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// A marking intent: what it marks. A marking intent has no category or severities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks: Option<Mark>,
    /// A finding's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// A finding's severity when no mark qualifies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The severity beside an escalator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated: Option<Severity>,
    /// The severity beside an info mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub informational: Option<Severity>,
    /// The severity beside a review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed: Option<Severity>,
    /// The severity when applied to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_everyone: Option<Severity>,
}

/// The window of an [`Intent`] or of a [`Rule`]'s senses when the rule set does not say.
pub const DEFAULT_WINDOW: u32 = 6;

/// The widest window allowed.
pub const MAX_WINDOW: u32 = 50;

fn default_window() -> u32 {
    DEFAULT_WINDOW
}

fn is_default_window(window: &u32) -> bool {
    *window == DEFAULT_WINDOW
}

/// The rules a [`Screener`] matches: terms, the word lists, and the intents over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Every term; they are distinct after normalization.
    pub rules: Vec<Rule>,
    /// The word lists that intents and senses name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<WordList>,
    /// The intents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<Intent>,
    /// The learned second stage, when there is one: it may refuse what the rules hold or warn
    /// about, and warn about what they hold, never touching text the rules found nothing in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
}

/// The largest rule document the adapters accept, in bytes (4 MiB): with a learned stage a rule
/// document outgrows the limit of every other request (512 KiB).
pub const MAX_RULES_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// The most features a [`Model`] may hold.
pub const MAX_MODEL_FEATURES: usize = 50_000;

/// The largest weight (or bias) of a [`Model`], in thousandths.
pub const MAX_MODEL_WEIGHT: i32 = 100_000;

/// A learned second stage over the rules' verdict: two logistic models over the words and the
/// pairs of adjacent words of the normalized text around the match that decided it. One
/// scores how likely the text asks for an act that must be refused, the other how likely it
/// must be flagged (refused or held). A string the rules hold or warn about is refused when
/// the first scores at least `escalate_at` percent; a string they hold is warned about when
/// the second scores below `clear_below` percent. A string with no match, or one the rules
/// already refuse, is left as the rules decided, and every change names the rule it changed
/// and the words that weighed most ([`Learned`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Words read on each side of the deciding match (at most [`MAX_WINDOW`]).
    #[serde(default = "default_model_window")]
    pub window: u32,
    /// A hold or warning is refused from this score of refusal, in percent (1–100; 100
    /// never refuses).
    pub escalate_at: u8,
    /// A hold is warned about below this score of flagging, in percent (0–99; 0 never
    /// lowers).
    pub clear_below: u8,
    /// The intercepts of the two models (refuse, flag), in thousandths of a logit.
    pub bias: [i32; 2],
    /// Feature → its weights in the two models (refuse, flag), in thousandths of a logit. A
    /// feature is one word (`"insulin"`) or two adjacent ones (`"no doctor"`), read as the
    /// text is (normalized: `"every caller"` is the `"every caiier"` of [`features`]); each
    /// counts once however often it occurs.
    pub weights: std::collections::BTreeMap<String, [i32; 2]>,
}

fn default_model_window() -> u32 {
    DEFAULT_MODEL_WINDOW
}

/// The words read on each side of the deciding match by default: a long sentence.
pub const DEFAULT_MODEL_WINDOW: u32 = 32;

impl From<Vec<Rule>> for RuleSet {
    /// A rule set of terms alone.
    fn from(rules: Vec<Rule>) -> Self {
        RuleSet {
            rules,
            lists: Vec::new(),
            intents: Vec::new(),
            model: None,
        }
    }
}

impl RuleSet {
    /// Reads a rule set from JSON; a document of the wrong shape is refused with the pointer
    /// of the first field that does not fit (`/intents/2/marks`).
    pub fn from_json(value: Value) -> Result<RuleSet> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let pointer = json_pointer(e.path());
            Error::violations(
                "validation_failed",
                "the rule set is not in the expected shape",
                vec![Violation::new(pointer, e.inner().to_string())],
            )
        })
    }

    /// Checks the set and reports every violation, each with its JSON pointer
    /// (`/rules/3/term`, `/intents/2/subject`): a term or list word that is empty after
    /// normalization or longer than [`MAX_TERM_CHARS`]; a term equal to an earlier one after
    /// normalization (a word twice in one list alike); more than [`MAX_RULES`] terms and
    /// words in all; a list or intent name that is empty or given twice; a reference to a
    /// list that does not exist; a window above [`MAX_WINDOW`]; a marking intent with a
    /// category or a severity; a finding intent without a category or a severity.
    pub fn validate(&self) -> Result<()> {
        let mut violations = Vec::new();
        let words: usize =
            self.rules.len() + self.lists.iter().map(|l| l.terms.len()).sum::<usize>();
        if words > MAX_RULES {
            violations.push(Violation::new(
                "/rules",
                format!("{words} terms and list words; at most {MAX_RULES} are allowed"),
            ));
        }
        let mut canon = Canon::default();
        let mut check_term = |pointer: String,
                              term: &str,
                              first_seen: &mut HashMap<Vec<u8>, String>,
                              violations: &mut Vec<Violation>| {
            let chars = term.chars().count();
            if chars > MAX_TERM_CHARS {
                violations.push(Violation::new(
                    pointer.clone(),
                    format!("{chars} characters; at most {MAX_TERM_CHARS} are allowed"),
                ));
            }
            let normalized = canon.normalize_term(term, false);
            if normalized.is_empty() {
                violations.push(Violation::new(
                    pointer,
                    "empty after normalization: a term needs a letter or a digit",
                ));
            } else if let Some(first) = first_seen.get(&normalized) {
                violations.push(Violation::new(
                    pointer,
                    format!("duplicates {first} after normalization"),
                ));
            } else {
                first_seen.insert(normalized, pointer);
            }
        };
        let mut first_seen = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            check_term(
                format!("/rules/{i}/term"),
                &rule.term,
                &mut first_seen,
                &mut violations,
            );
        }
        let mut list_names = HashMap::new();
        for (i, list) in self.lists.iter().enumerate() {
            check_name(
                format!("/lists/{i}/name"),
                &list.name,
                &mut list_names,
                &mut violations,
            );
            let mut first_seen = HashMap::new();
            for (j, term) in list.terms.iter().enumerate() {
                check_term(
                    format!("/lists/{i}/terms/{j}"),
                    term,
                    &mut first_seen,
                    &mut violations,
                );
            }
        }
        let check_list = |pointer: String, name: &str, violations: &mut Vec<Violation>| {
            if !list_names.contains_key(name) {
                violations.push(Violation::new(
                    pointer,
                    format!("no list is named {name:?}"),
                ));
            }
        };
        let check_window = |pointer: String, window: u32, violations: &mut Vec<Violation>| {
            if window > MAX_WINDOW {
                violations.push(Violation::new(
                    pointer,
                    format!("{window} words; at most {MAX_WINDOW} are allowed"),
                ));
            }
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(unless) = &rule.unless {
                check_list(format!("/rules/{i}/unless"), unless, &mut violations);
            }
            check_window(format!("/rules/{i}/within"), rule.within, &mut violations);
        }
        let mut intent_names = HashMap::new();
        for (i, intent) in self.intents.iter().enumerate() {
            let at = |field: &str| format!("/intents/{i}/{field}");
            check_name(at("name"), &intent.name, &mut intent_names, &mut violations);
            check_list(at("action"), &intent.action, &mut violations);
            if let Some(subject) = &intent.subject {
                check_list(at("subject"), subject, &mut violations);
            }
            if let Some(unless) = &intent.unless {
                check_list(at("unless"), unless, &mut violations);
            }
            check_window(at("window"), intent.window, &mut violations);
            let severities = [
                ("severity", intent.severity),
                ("escalated", intent.escalated),
                ("informational", intent.informational),
                ("reviewed", intent.reviewed),
                ("to_everyone", intent.to_everyone),
            ];
            if intent.marks.is_some() {
                if intent.category.is_some() {
                    violations.push(Violation::new(
                        at("category"),
                        "a marking intent has no category",
                    ));
                }
                for (field, severity) in severities {
                    if severity.is_some() {
                        violations.push(Violation::new(
                            at(field),
                            "a marking intent has no severity",
                        ));
                    }
                }
            } else {
                if intent.category.is_none() {
                    violations.push(Violation::new(
                        at("category"),
                        "an intent that is not a mark needs a category",
                    ));
                }
                if intent.severity.is_none() {
                    violations.push(Violation::new(
                        at("severity"),
                        "an intent that is not a mark needs a severity",
                    ));
                }
            }
        }
        if let Some(model) = &self.model {
            model.check(&mut canon, &mut violations);
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

impl Model {
    /// Adds a violation for every field out of range, every feature that is not one or two
    /// words after normalization, and every feature that normalizes as an earlier one did.
    fn check(&self, canon: &mut Canon, violations: &mut Vec<Violation>) {
        if self.window == 0 || self.window > MAX_WINDOW {
            violations.push(Violation::new(
                "/model/window",
                format!("{} words; from 1 to {MAX_WINDOW} are allowed", self.window),
            ));
        }
        if !(1..=100).contains(&self.escalate_at) {
            violations.push(Violation::new(
                "/model/escalate_at",
                "a percentage from 1 to 100 (100 never refuses)",
            ));
        }
        if self.clear_below > 99 {
            violations.push(Violation::new(
                "/model/clear_below",
                "a percentage from 0 to 99 (0 never lowers)",
            ));
        }
        let too_heavy = |w: &[i32; 2]| w.iter().any(|w| w.unsigned_abs() > MAX_MODEL_WEIGHT as u32);
        if too_heavy(&self.bias) {
            violations.push(Violation::new(
                "/model/bias",
                format!("at most {MAX_MODEL_WEIGHT} thousandths either way"),
            ));
        }
        if self.weights.len() > MAX_MODEL_FEATURES {
            violations.push(Violation::new(
                "/model/weights",
                format!(
                    "{} features; at most {MAX_MODEL_FEATURES} are allowed",
                    self.weights.len()
                ),
            ));
        }
        let mut first_seen: HashMap<Vec<u8>, &str> = HashMap::new();
        for (feature, weights) in &self.weights {
            let pointer = || {
                format!(
                    "/model/weights/{}",
                    feature.replace('~', "~0").replace('/', "~1")
                )
            };
            if too_heavy(weights) {
                violations.push(Violation::new(
                    pointer(),
                    format!("at most {MAX_MODEL_WEIGHT} thousandths either way"),
                ));
            }
            let normalized = canon.normalize_term(feature, false);
            let words = normalized.split(|&b| b == b' ').count();
            if normalized.is_empty() || words > 2 {
                violations.push(Violation::new(
                    pointer(),
                    format!(
                        "a feature is one or two words; this one reads as {:?}",
                        String::from_utf8_lossy(&normalized)
                    ),
                ));
            } else if let Some(first) = first_seen.get(&normalized) {
                violations.push(Violation::new(
                    pointer(),
                    format!("reads as the feature {first:?} after normalization"),
                ));
            } else {
                first_seen.insert(normalized, feature);
            }
        }
    }
}

/// The JSON pointer of a serde path (`intents[2].marks` → `/intents/2/marks`).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

/// Reports an empty `name` or one already in `seen`.
fn check_name(
    pointer: String,
    name: &str,
    seen: &mut HashMap<String, String>,
    violations: &mut Vec<Violation>,
) {
    if name.trim().is_empty() {
        violations.push(Violation::new(pointer, "a name is required"));
    } else if let Some(first) = seen.get(name) {
        violations.push(Violation::new(
            pointer,
            format!("the name is already {first}"),
        ));
    } else {
        seen.insert(name.to_owned(), pointer);
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
    /// The rule's term as written in the rule set (not the text that matched it), or the
    /// intent's name.
    pub term: String,
    /// The rule's category.
    pub category: Category,
    /// The severity it decided.
    pub severity: Severity,
    /// JSON pointer (RFC 6901) of the string that holds the match.
    pub pointer: String,
    /// For an intent, why: the words that made it and the marks that set its severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub because: Option<Because>,
    /// When the learned stage changed the severity the rule gave: from what, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Learned>,
}

/// How the learned stage ([`Model`]) changed a match's severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// The severity the rule gave.
    pub from: Severity,
    /// The model's score, in percent: of refusal when it raised the severity, of flagging
    /// when it lowered it.
    pub score: u8,
    /// The features of the text that weighed most toward the change, heaviest first.
    pub words: Vec<String>,
}

/// Why an intent was found, in the words of the rule set's lists (as written there), all in
/// the string at the match's pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Because {
    /// The action's word ("prescribe").
    pub action: String,
    /// The subject's word ("insulin"), when the intent has a subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The mark that set the severity, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<MarkFound>,
}

/// A marking intent found in a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkFound {
    /// What it marks.
    pub kind: Mark,
    /// The marking intent's name ("no_professional").
    pub intent: String,
    /// Its words, as written in the lists ("without", "doctor").
    pub words: Vec<String>,
}

/// The outcome of screening some documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screening {
    /// From the worst severity among the matches.
    pub verdict: Verdict,
    /// Every match, at most one per (term, pointer), in document order.
    pub matches: Vec<Match>,
}
