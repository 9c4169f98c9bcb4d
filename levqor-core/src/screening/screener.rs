//! The [`Screener`]: every normalized term and list word, found in the normalized text of every
//! string in the screened documents, then the intents over them.

use super::learned::{LearnScratch, Learner};
use super::matcher::{Matcher, Word};
use super::normalize::{Canon, is_one_letter_word};
use super::{Because, Learned, Mark, MarkFound, Match, RuleSet, Screening, Severity, Verdict};
use crate::error::Result;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// How many words on each side of a compound word are searched again with its pieces.
const COMPOUND_REACH: usize = 4;

/// A compiled, immutable rule set: every normalized term and list word in one word matcher,
/// and the intents over them. `Send + Sync`; build it once and share it in an `Arc`.
#[derive(Debug, Clone)]
pub struct Screener {
    rules: RuleSet,
    matcher: Matcher,
    /// Pattern id → what it stands for: at most one rule, and the list words it is.
    pattern_sources: Vec<Vec<Source>>,
    /// Length in bytes of the longest one-word pattern.
    longest_word: usize,
    /// Words in the longest pattern.
    longest_words: u32,
    /// Rule index → the list of its harmless senses, by index.
    unless: Vec<Option<u32>>,
    /// The intents, their lists resolved to indices; marking intents first.
    intents: Vec<Compiled>,
    /// The learned stage, when the rules have a model.
    learner: Option<Learner>,
}

/// What a pattern stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The term of `rules[i]`.
    Rule(u32),
    /// The word `lists[list].terms[word]`.
    Word { list: u32, word: u32 },
}

/// An intent ready to run.
#[derive(Debug, Clone)]
struct Compiled {
    /// Index in `rules.intents`.
    intent: usize,
    action: u32,
    subject: Option<u32>,
    unless: Option<u32>,
    window: u32,
    ordered: bool,
    marks: Option<Mark>,
}

impl Screener {
    /// Validates `rules` (see [`RuleSet::validate`]) and compiles them.
    pub fn new(rules: &RuleSet) -> Result<Screener> {
        rules.validate()?;
        let mut canon = Canon::default();
        let mut sources: Vec<(Source, Vec<Vec<u8>>)> = Vec::new();
        for (i, rule) in rules.rules.iter().enumerate() {
            sources.push((
                Source::Rule(i as u32),
                term_patterns(&mut canon, &rule.term),
            ));
        }
        for (l, list) in rules.lists.iter().enumerate() {
            for (w, term) in list.terms.iter().enumerate() {
                let source = Source::Word {
                    list: l as u32,
                    word: w as u32,
                };
                sources.push((source, word_patterns(&mut canon, term)));
            }
        }
        // Every term's own form first: a variant of one rule ("bank" + "s") never hides
        // another rule's term ("banks"). A pattern stands for one rule at most, and for every
        // list word it is.
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_sources: Vec<Vec<Source>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for round in [0, 1] {
            for (source, forms) in &sources {
                let forms = if round == 0 { &forms[..1] } else { &forms[1..] };
                for form in forms {
                    let at = *index.entry(form.clone()).or_insert_with(|| {
                        patterns.push(form.clone());
                        pattern_sources.push(Vec::new());
                        patterns.len() - 1
                    });
                    let taken = &mut pattern_sources[at];
                    let clash = taken.iter().any(|t| match (t, source) {
                        (Source::Rule(_), Source::Rule(_)) => true,
                        (Source::Word { list: a, .. }, Source::Word { list: b, .. }) => a == b,
                        _ => false,
                    });
                    if !clash {
                        taken.push(*source);
                    }
                }
            }
        }
        let longest_word = patterns
            .iter()
            .filter(|p| p[1..p.len() - 1].iter().all(|&b| b != b' '))
            .map(|p| p.len() - 2)
            .max()
            .unwrap_or(0);
        let longest_words = patterns
            .iter()
            .map(|p| p.iter().filter(|&&b| b == b' ').count() as u32 - 1)
            .max()
            .unwrap_or(0);
        let mut matcher = Matcher::new(&patterns);
        let learner = rules
            .model
            .as_ref()
            .map(|model| Learner::new(model, &mut canon, &mut matcher));
        let list_index: HashMap<&str, u32> = rules
            .lists
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i as u32))
            .collect();
        let unless = rules
            .rules
            .iter()
            .map(|r| r.unless.as_deref().map(|name| list_index[name]))
            .collect();
        let mut intents: Vec<Compiled> = rules
            .intents
            .iter()
            .enumerate()
            .map(|(i, intent)| Compiled {
                intent: i,
                action: list_index[intent.action.as_str()],
                subject: intent.subject.as_deref().map(|name| list_index[name]),
                unless: intent.unless.as_deref().map(|name| list_index[name]),
                window: intent.window,
                ordered: intent.ordered,
                marks: intent.marks,
            })
            .collect();
        intents.sort_by_key(|c| c.marks.is_none());
        Ok(Screener {
            rules: rules.clone(),
            matcher,
            pattern_sources,
            longest_word,
            longest_words,
            unless,
            intents,
            learner,
        })
    }

    /// The learned stage's logits over the whole of `text` (for tests).
    #[cfg(test)]
    pub(super) fn learned_logits(&self, text: &str) -> Option<[i64; 2]> {
        let learner = self.learner.as_ref()?;
        let mut scratch = Scratch::default();
        scratch.canon.normalize(text);
        self.matcher.words(&scratch.canon.buf, &mut scratch.words);
        let all = (0, scratch.words.len());
        Some(learner.logits(&scratch.words, all, &mut scratch.learn))
    }

    /// The rule set this screener was built from.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Every rule and intent found in `text`, once each, in order of first occurrence; each
    /// match carries `pointer`.
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
        // Each string reports a rule once; only documents named twice can repeat a match.
        let distinct: HashSet<&str> = documents.iter().map(|(pointer, _)| *pointer).collect();
        if distinct.len() != documents.len() {
            let mut seen = HashSet::new();
            matches.retain(|m| seen.insert((m.term.clone(), m.pointer.clone())));
        }
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
        scratch.canon.normalize(text);
        scratch.hits.clear();
        self.find_hits(scratch);
        if scratch.hits.is_empty() {
            return;
        }
        scratch
            .hits
            .sort_unstable_by_key(|h| (h.first_word, h.last_word, h.pattern));
        // A compound's pieces can find what its joined form found.
        if !scratch.canon.pieces.is_empty() {
            scratch
                .hits
                .dedup_by_key(|h| (h.first_word, h.last_word, h.pattern));
        }
        if scratch.by_list.len() != self.rules.lists.len() {
            scratch.by_list.clear();
            scratch
                .by_list
                .resize_with(self.rules.lists.len(), Vec::new);
        }
        if scratch.seen.len() != self.rules.rules.len() {
            scratch.seen.clear();
            scratch.seen.resize(self.rules.rules.len(), false);
        }
        let Scratch {
            words,
            hits,
            by_list,
            touched,
            found,
            seen,
            learn,
            ..
        } = scratch;
        for (h, hit) in hits.iter().enumerate() {
            for source in &self.pattern_sources[hit.pattern as usize] {
                if let Source::Word { list, word } = *source {
                    let at = &mut by_list[list as usize];
                    if at.is_empty() {
                        touched.push(list);
                    }
                    at.push(Occurrence {
                        hit: h as u32,
                        word,
                    });
                }
            }
        }
        // Terms: the first occurrence that no harmless sense excuses.
        for hit in hits.iter() {
            let Some(rule) =
                self.pattern_sources[hit.pattern as usize]
                    .iter()
                    .find_map(|s| match s {
                        Source::Rule(r) => Some(*r),
                        Source::Word { .. } => None,
                    })
            else {
                continue;
            };
            if seen[rule as usize] {
                continue;
            }
            let r = &self.rules.rules[rule as usize];
            if let Some(unless) = self.unless[rule as usize]
                && self.near(hits, &by_list[unless as usize], hit, r.within)
            {
                continue;
            }
            seen[rule as usize] = true;
            found.push(Found {
                at: hit.first_word,
                term: Some(rule),
                because: None,
                category: r.category,
                severity: r.severity,
                name: None,
                learned: None,
            });
        }
        // Intents: the marks first, then every finding with the severity its marks give it.
        let mut marks: [Option<MarkFound>; 4] = Default::default();
        for compiled in &self.intents {
            if compiled
                .marks
                .is_some_and(|kind| marks[kind as usize].is_some())
            {
                continue;
            }
            let Some((at, action, subject)) = self.find_intent(compiled, hits, by_list) else {
                continue;
            };
            let intent = &self.rules.intents[compiled.intent];
            let word = |o: &Occurrence, list: u32| {
                self.rules.lists[list as usize].terms[o.word as usize].clone()
            };
            let action_word = word(&action, compiled.action);
            let subject_word = subject.map(|s| word(&s, compiled.subject.unwrap_or_default()));
            if let Some(kind) = compiled.marks {
                marks[kind as usize] = Some(MarkFound {
                    kind,
                    intent: intent.name.clone(),
                    words: std::iter::once(action_word).chain(subject_word).collect(),
                });
                continue;
            }
            let (Some(category), Some(base)) = (intent.category, intent.severity) else {
                continue;
            };
            let (severity, mark) = [
                (Mark::Escalator, intent.escalated),
                (Mark::Info, intent.informational),
                (Mark::Review, intent.reviewed),
                (Mark::Everyone, intent.to_everyone),
            ]
            .into_iter()
            .find_map(|(kind, severity)| {
                let mark = marks[kind as usize].as_ref()?;
                Some((severity?, Some(mark.clone())))
            })
            .unwrap_or((base, None));
            found.push(Found {
                at,
                term: None,
                because: Some(Because {
                    action: action_word,
                    subject: subject_word,
                    mark,
                }),
                category,
                severity,
                name: Some(compiled.intent),
                learned: None,
            });
        }
        // Text order; at one place, terms in rule-set order, then intents in theirs.
        found.sort_by_key(|f| (f.at, f.term.is_none(), f.term, f.name));
        if let Some(learner) = &self.learner {
            learn_from(learner, words, found, learn);
        }
        for f in found.iter() {
            if let Some(rule) = f.term {
                seen[rule as usize] = false;
            }
        }
        for f in found.drain(..) {
            let term = match (f.term, f.name) {
                (Some(rule), _) => self.rules.rules[rule as usize].term.clone(),
                (None, Some(intent)) => self.rules.intents[intent].name.clone(),
                (None, None) => continue,
            };
            out.push(Match {
                term,
                category: f.category,
                severity: f.severity,
                pointer: pointer.to_owned(),
                because: f.because,
                learned: f.learned,
            });
        }
        for &list in touched.iter() {
            by_list[list as usize].clear();
        }
        touched.clear();
    }

    /// Finds every pattern in the normalized text, and in the spelled-out words that a
    /// one-letter word or a split may hide, into `scratch.hits`.
    fn find_hits(&self, scratch: &mut Scratch) {
        let Scratch {
            canon,
            hits,
            words,
            local,
            ..
        } = scratch;
        self.matcher.words(&canon.buf, words);
        self.matcher.find(words, |first_word, last_word, pattern| {
            hits.push(Hit {
                first_word,
                last_word,
                pattern,
            })
        });
        if canon.runs.is_empty() && canon.splits.is_empty() && canon.pieces.is_empty() {
            return;
        }
        // The word that starts at `start` in the normalized text.
        let word_at = |start: usize| words.partition_point(|w| (w.start as usize) < start) as u32;
        let probe = |word: &[u8], first_word: u32, last_word: u32, hits: &mut Vec<Hit>| {
            for &pattern in self.matcher.single(word) {
                hits.push(Hit {
                    first_word,
                    last_word,
                    pattern,
                });
            }
        };
        // A spelled-out word right after (or before) a real one-letter word, as in
        // "buy a f e n t a n y l", was joined with it ("afentanyi"): try the run again
        // without its leading and trailing "a"/"i" letters. A run is one word, so only a
        // one-word pattern can match it, and not one shorter than the run less six letters.
        for &(start, end) in &canon.runs {
            let run = &canon.buf[start..end];
            if run.len() > self.longest_word + 6 {
                continue;
            }
            let at = word_at(start);
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
                    probe(&run[skip_lead..run.len() - skip_trail], at, at, hits);
                }
            }
        }
        // A compound word ("repeat-prescription", "small-claims form") also reads as its
        // pieces: its neighbourhood is searched again with the pieces as words, and what
        // touches them is placed at the compound.
        let pieces = &canon.pieces;
        let mut i = 0;
        while i < pieces.len() {
            let word = pieces[i].0;
            let n = pieces[i..].iter().take_while(|p| p.0 == word).count();
            let at = word_at(word) as usize;
            let before = at.min(COMPOUND_REACH);
            let after = words.len().saturating_sub(at + 1).min(COMPOUND_REACH);
            local.clear();
            local.extend_from_slice(&words[at - before..at]);
            local.extend(
                pieces[i..i + n]
                    .iter()
                    .map(|&(_, start, end)| self.matcher.word(&canon.piece_bytes[start..end])),
            );
            local.extend_from_slice(&words[at + 1..at + 1 + after]);
            let place = |k: u32| {
                let k = k as usize;
                (if k < before {
                    at - before + k
                } else if k < before + n {
                    at
                } else {
                    at + 1 + (k - before - n)
                }) as u32
            };
            self.matcher.find(local, |first, last, pattern| {
                let touches = (first as usize) < before + n && last as usize >= before;
                if touches {
                    hits.push(Hit {
                        first_word: place(first),
                        last_word: place(last),
                        pattern,
                    });
                }
            });
            i += n;
        }
        // Pieces of one word split by spaces and spelled with joiners, as in "p-r.e s_c-ription"
        // or "p-r e.s c_r-ibe": try every run of two to four adjacent pieces joined, placed
        // where the pieces are. A split joins two pieces; adjacent splits share a piece.
        let splits = &canon.splits;
        for i in 0..splits.len() {
            let start = splits[i].0;
            let at = word_at(start);
            let mut k = i;
            loop {
                let end = splits[k].2;
                if end - start > self.longest_word + 3 {
                    break;
                }
                canon.probe.clear();
                canon
                    .probe
                    .extend(canon.buf[start..end].iter().filter(|&&b| b != b' '));
                probe(&canon.probe, at, at + (k - i) as u32 + 1, hits);
                // The next split continues this run when its first piece is this one's second.
                if k + 1 >= splits.len() || k - i >= 2 || splits[k + 1].0 != splits[k].1 + 1 {
                    break;
                }
                k += 1;
            }
        }
    }

    /// The first place where `compiled`'s action and subject stand within its window: the
    /// word where it starts, and the two occurrences. Both lists are in text order, so one
    /// pass over the actions and a sliding start in the subjects do it.
    fn find_intent(
        &self,
        compiled: &Compiled,
        hits: &[Hit],
        by_list: &[Vec<Occurrence>],
    ) -> Option<(u32, Occurrence, Option<Occurrence>)> {
        let actions = &by_list[compiled.action as usize];
        let excused = |hit: &Hit| {
            compiled.unless.is_some_and(|unless| {
                self.near(hits, &by_list[unless as usize], hit, compiled.window)
            })
        };
        let Some(subject) = compiled.subject else {
            let first = actions.iter().find(|a| !excused(&hits[a.hit as usize]))?;
            return Some((hits[first.hit as usize].first_word, *first, None));
        };
        let subjects = &by_list[subject as usize];
        let reach = compiled.window + self.longest_words;
        let mut from = 0;
        for a in actions {
            let ha = &hits[a.hit as usize];
            while from < subjects.len()
                && hits[subjects[from].hit as usize].first_word + reach < ha.first_word
            {
                from += 1;
            }
            // An action word inside a subject's phrase ("scores" in "credit scores") is not an
            // action on anything.
            if subjects[from..]
                .iter()
                .map(|s| &hits[s.hit as usize])
                .take_while(|hs| hs.first_word <= ha.first_word)
                .any(|hs| within(ha, hs) && hs.last_word > hs.first_word)
            {
                continue;
            }
            for s in &subjects[from..] {
                let hs = &hits[s.hit as usize];
                if hs.first_word > ha.last_word + compiled.window + 1 {
                    break;
                }
                if s.hit == a.hit || (compiled.ordered && hs.first_word < ha.first_word) {
                    continue;
                }
                if gap(ha, hs) <= compiled.window && !excused(ha) && !excused(hs) {
                    return Some((ha.first_word.min(hs.first_word), *a, Some(*s)));
                }
            }
        }
        None
    }

    /// Whether a word of `list` stands within `window` words of `hit`.
    fn near(&self, hits: &[Hit], list: &[Occurrence], hit: &Hit, window: u32) -> bool {
        let reach = window + self.longest_words;
        let from =
            list.partition_point(|o| hits[o.hit as usize].first_word + reach < hit.first_word);
        list[from..]
            .iter()
            .map(|o| &hits[o.hit as usize])
            .take_while(|h| h.first_word <= hit.last_word + window + 1)
            .any(|h| gap(h, hit) <= window)
    }
}

/// Whether `inner` covers no word outside `outer`.
fn within(inner: &Hit, outer: &Hit) -> bool {
    outer.first_word <= inner.first_word && inner.last_word <= outer.last_word
}

/// How many words stand between two hits (0 when they touch or overlap).
fn gap(a: &Hit, b: &Hit) -> u32 {
    if a.last_word < b.first_word {
        b.first_word - a.last_word - 1
    } else if b.last_word < a.first_word {
        a.first_word - b.last_word - 1
    } else {
        0
    }
}

/// One pattern found in the normalized text: the words it covers, counted from the start.
#[derive(Debug, Clone, Copy)]
struct Hit {
    first_word: u32,
    last_word: u32,
    pattern: u32,
}

/// A list word found: which hit, and which word of the list.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    hit: u32,
    word: u32,
}

/// A term or an intent found in one string, before it becomes a [`Match`].
struct Found {
    at: u32,
    term: Option<u32>,
    name: Option<usize>,
    because: Option<Because>,
    category: super::Category,
    severity: super::Severity,
    learned: Option<Learned>,
}

/// Buffers reused across the strings of one call.
#[derive(Default)]
struct Scratch {
    canon: Canon,
    /// The words of the normalized text.
    words: Vec<Word>,
    /// A compound word's neighbourhood, with its pieces as words.
    local: Vec<Word>,
    hits: Vec<Hit>,
    /// List index → its words found in the current string.
    by_list: Vec<Vec<Occurrence>>,
    /// The lists with words in `by_list`.
    touched: Vec<u32>,
    found: Vec<Found>,
    /// Rule index → already found in the current string.
    seen: Vec<bool>,
    learn: LearnScratch,
}

/// The learned stage over one string's findings (in text order): the model reads the words
/// around the first finding of the worst severity and may refuse it, or lower every hold to a
/// warning; the finding keeps what the rule gave in its [`Learned`].
fn learn_from(learner: &Learner, words: &[Word], found: &mut [Found], scratch: &mut LearnScratch) {
    let Some(worst) = found.iter().map(|f| f.severity).max() else {
        return;
    };
    let Some(decider) = found.iter().position(|f| f.severity == worst) else {
        return;
    };
    let at = found[decider].at as usize;
    let reach = learner.window as usize;
    let window = (at.saturating_sub(reach), (at + reach + 1).min(words.len()));
    let Some(change) = learner.decide(words, window, worst, scratch) else {
        return;
    };
    let learned = |from| {
        Some(Learned {
            from,
            score: change.score,
            words: change.words.clone(),
        })
    };
    if change.to == Severity::Critical {
        let f = &mut found[decider];
        f.learned = learned(f.severity);
        f.severity = Severity::Critical;
    } else {
        for f in found.iter_mut().filter(|f| f.severity == Severity::High) {
            f.learned = learned(Severity::High);
            f.severity = change.to;
        }
    }
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

/// The patterns for one rule's term, its own form first: `" term "`, plus its words run
/// together, its joiners read as spaces ("self-harm" → "self harm"), and the plurals of each.
fn term_patterns(canon: &mut Canon, term: &str) -> Vec<Vec<u8>> {
    patterns(canon, term, true)
}

/// The patterns for a list word: as for a term, but a phrase is not also tried with its words
/// run together: lists hold thousands of phrases, and every form is a pattern of the automaton.
fn word_patterns(canon: &mut Canon, term: &str) -> Vec<Vec<u8>> {
    patterns(canon, term, false)
}

fn patterns(canon: &mut Canon, term: &str, run_together: bool) -> Vec<Vec<u8>> {
    let mut bases = vec![canon.normalize_term(term, false)];
    let split = canon.normalize_term(term, true);
    if !bases.contains(&split) {
        bases.push(split);
    }
    if run_together {
        for i in 0..bases.len() {
            if bases[i].contains(&b' ') {
                let joined: Vec<u8> = bases[i].iter().copied().filter(|&b| b != b' ').collect();
                if !bases.contains(&joined) {
                    bases.push(joined);
                }
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
