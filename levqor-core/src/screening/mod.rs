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

mod area;
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
pub use rules::default_rules;
pub use screener::Screener;
pub use service::{AppealDecision, Screenings};
pub use stage::RULES_REFRESH;
pub(crate) use stage::{RuleCache, ScreenStage};
pub use store::{AppealStatus, ScreeningRecord, ScreeningStore};

use crate::error::{Error, Result, Violation};
use normalize::Canon;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The most rules a [`RuleSet`] may hold.
pub const MAX_RULES: usize = 10_000;

/// The longest term, in characters, a [`Rule`] may have.
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
