//! The learned stage ([`Model`]): two logistic models over the words and pairs of adjacent
//! words of the normalized text around the match that decided a string. They may refuse what
//! the rules hold or warn about, and warn about what the rules hold; what the rules found
//! nothing in, or refuse, they never touch. The features are read from the same normalized
//! stream the rules search, so a disguised word weighs what the plain word does.

use super::matcher::{Matcher, Word};
use super::normalize::Canon;
use super::{Model, Severity};
use rustc_hash::FxHashMap;

/// No word.
const NONE: u32 = u32::MAX;

/// How many features an explanation names.
const EXPLAINED: usize = 3;

/// Which of the two models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// How likely the text asks for an act that must be refused.
    Refuse = 0,
    /// How likely it must be flagged (refused or held).
    Flag = 1,
}

/// A [`Model`] ready to score. Its words are words of the screener's matcher, so the words of a
/// text arrive with their ids from the one lookup the rules already make.
#[derive(Debug, Clone)]
pub(super) struct Learner {
    pub(super) window: u32,
    escalate_at: u8,
    clear_below: u8,
    bias: [i32; 2],
    /// Matcher word id → the weights of the word alone (zero for a word in no feature alone).
    single: Vec<[i32; 2]>,
    /// (word id, next word id) → the weights of the pair.
    pairs: FxHashMap<(u32, u32), [i32; 2]>,
    /// Matcher word id → whether a pair starts with it (most words start none, and need no
    /// lookup of the pair).
    starts_pair: Vec<bool>,
    /// Feature → as the model writes it (a word alone is `(word, NONE)`).
    written: FxHashMap<(u32, u32), Box<str>>,
}

/// What the stage decided for one string.
pub(super) struct Change {
    /// `Critical` to refuse, `Medium` to lower holds to warnings.
    pub(super) to: Severity,
    /// The score of the model that decided, in percent.
    pub(super) score: u8,
    /// The features that weighed most toward the change.
    pub(super) words: Vec<String>,
}

/// Buffers reused across strings.
#[derive(Default)]
pub(super) struct LearnScratch {
    /// The features in the window: `(word, NONE)` or `(word, next word)`, each once.
    features: Vec<(u32, u32)>,
    /// Word id → the call that last counted it, so a word counts once per call.
    counted: Vec<u32>,
    call: u32,
}

impl Learner {
    /// Compiles a validated model: its features normalized, as the text will be, and their
    /// words given ids in `matcher`.
    pub(super) fn new(model: &Model, canon: &mut Canon, matcher: &mut Matcher) -> Learner {
        let mut features = Vec::with_capacity(model.weights.len());
        for (feature, &weights) in &model.weights {
            let normalized = canon.normalize_term(feature, false);
            let mut words = normalized
                .split(|&b| b == b' ')
                .map(|w| matcher.add_word(w));
            let key = match (words.next(), words.next()) {
                (Some(a), None) => (a, NONE),
                (Some(a), Some(b)) => (a, b),
                _ => continue,
            };
            features.push((key, weights, feature.as_str()));
        }
        let mut learner = Learner {
            window: model.window,
            escalate_at: model.escalate_at,
            clear_below: model.clear_below,
            bias: model.bias,
            single: vec![[0, 0]; matcher.vocabulary()],
            pairs: FxHashMap::default(),
            starts_pair: vec![false; matcher.vocabulary()],
            written: FxHashMap::default(),
        };
        for (key, weights, feature) in features {
            if key.1 == NONE {
                learner.single[key.0 as usize] = weights;
            } else {
                learner.pairs.insert(key, weights);
                learner.starts_pair[key.0 as usize] = true;
            }
            learner.written.insert(key, feature.into());
        }
        learner
    }

    /// Reads `words[from..to]` (with their matcher ids) and decides whether the string's worst
    /// severity `worst` (from the rules) changes.
    pub(super) fn decide(
        &self,
        words: &[Word],
        (from, to): (usize, usize),
        worst: Severity,
        scratch: &mut LearnScratch,
    ) -> Option<Change> {
        if !matches!(worst, Severity::High | Severity::Medium) {
            return None;
        }
        let logit = self.logits(words, (from, to), scratch);
        let features = &scratch.features;
        let refuse = percent(logit[Head::Refuse as usize]);
        if self.escalate_at < 100 && refuse >= self.escalate_at {
            return Some(Change {
                to: Severity::Critical,
                score: refuse,
                words: self.heaviest(Head::Refuse, features, true),
            });
        }
        let flag = percent(logit[Head::Flag as usize]);
        if worst == Severity::High && flag < self.clear_below {
            return Some(Change {
                to: Severity::Medium,
                score: flag,
                words: self.heaviest(Head::Flag, features, false),
            });
        }
        None
    }

    /// The two models' logits (refuse, flag), in thousandths, over `words[from..to]`; the
    /// features found are left in `scratch.features`.
    pub(super) fn logits(
        &self,
        words: &[Word],
        (from, to): (usize, usize),
        scratch: &mut LearnScratch,
    ) -> [i64; 2] {
        let LearnScratch {
            features,
            counted,
            call,
        } = scratch;
        if counted.len() != self.single.len() || *call == u32::MAX {
            counted.clear();
            counted.resize(self.single.len(), 0);
            *call = 0;
        }
        *call += 1;
        features.clear();
        let mut logit = [i64::from(self.bias[0]), i64::from(self.bias[1])];
        let mut add = |w: [i32; 2]| {
            logit[0] += i64::from(w[0]);
            logit[1] += i64::from(w[1]);
        };
        // The word before, when a pair starts with it.
        let mut before = NONE;
        for w in &words[from..to] {
            let id = w.id;
            if let Some(&weights) = self.single.get(id as usize) {
                if weights != [0, 0] && counted[id as usize] != *call {
                    counted[id as usize] = *call;
                    add(weights);
                    features.push((id, NONE));
                }
                // A pair twice in one window is rare: a look back over the few found is enough.
                if before != NONE
                    && let Some(&weights) = self.pairs.get(&(before, id))
                    && !features.contains(&(before, id))
                {
                    add(weights);
                    features.push((before, id));
                }
            }
            before = match self.starts_pair.get(id as usize) {
                Some(true) => id,
                _ => NONE,
            };
        }
        logit
    }

    fn weight(&self, head: Head, (a, b): (u32, u32)) -> i32 {
        let weights = if b == NONE {
            self.single.get(a as usize)
        } else {
            self.pairs.get(&(a, b))
        };
        weights.map_or(0, |w| w[head as usize])
    }

    /// The features that pushed the score most toward `up` (or down), heaviest first, as the
    /// model writes them.
    fn heaviest(&self, head: Head, features: &[(u32, u32)], up: bool) -> Vec<String> {
        let mut weighed: Vec<(i32, (u32, u32))> = features
            .iter()
            .map(|&f| (self.weight(head, f), f))
            .filter(|&(w, _)| if up { w > 0 } else { w < 0 })
            .collect();
        weighed.sort_by_key(|&(w, f)| (std::cmp::Reverse(w.abs()), f));
        weighed
            .into_iter()
            .take(EXPLAINED)
            .filter_map(|(_, f)| self.written.get(&f).map(|w| w.to_string()))
            .collect()
    }
}

/// A logit in thousandths as a probability in whole percent, rounded down.
fn percent(logit: i64) -> u8 {
    let p = 1.0 / (1.0 + (-(logit as f64) / 1000.0).exp());
    (p * 100.0).floor() as u8
}

/// The features a [`Model`] reads in `text`: every normalized word and every pair of adjacent
/// normalized words, once each, sorted. The training of a model reads sentences through this,
/// so that it sees them as the screener does.
pub fn features(text: &str) -> Vec<String> {
    let mut canon = Canon::default();
    canon.normalize(text);
    let words: Vec<&[u8]> = canon
        .buf
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let text = |w: &[u8]| String::from_utf8_lossy(w).into_owned();
    let mut out: Vec<String> = words.iter().map(|w| text(w)).collect();
    out.extend(
        words
            .windows(2)
            .map(|pair| format!("{} {}", text(pair[0]), text(pair[1]))),
    );
    out.sort();
    out.dedup();
    out
}
