//! The default rule set, kept as data in `default_rules.json`: the same document an admin
//! stores through `PUT /v1/admin/screening/rules`.

use super::RuleSet;
use std::sync::OnceLock;

/// The default rules: about 270 terms across medical, legal and financial content, the word
/// lists of actions, subjects, professionals and marks, and the intents over them.
///
/// Critical terms describe harm or crime (a lethal dose, money laundering); high terms are
/// regulated or sensitive matter (prescription opioids, lawsuits, bankruptcy); medium terms
/// ask for or give advice (symptoms, contracts, mortgages); low terms only name the domain
/// (doctor, lawyer, bank). The intents read what a text asks to be done: an automation that
/// diagnoses, prescribes or changes a dose, signs or files for someone, promises returns or
/// decides credit is refused, unless a professional reviews it first (held) or it is general
/// information (warned).
pub fn default_rules() -> RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES
        .get_or_init(|| {
            serde_json::from_str(include_str!("default_rules.json"))
                .expect("default_rules.json is a rule set")
        })
        .clone()
}
