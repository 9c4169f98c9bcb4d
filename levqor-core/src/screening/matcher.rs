//! The word matcher: finds every pattern (one or more whole words of the normalized stream) in
//! a text, overlaps included.
//!
//! Every pattern starts and ends on a word boundary, so matching works on words rather than
//! bytes: one hash lookup per word of the text gives its id (most words are in no pattern), and
//! a trie over word ids finds the phrases that start there. Its cost per word does not grow with
//! the vocabulary. A byte automaton (Aho-Corasick) was used while the rules were a few hundred
//! terms; with thousands of list words its tables no longer fit the cache and it ran at less
//! than half the speed.

use rustc_hash::FxHashMap;

/// No word, no node.
const NONE: u32 = u32::MAX;

/// A word of the normalized text: where it is, and its id (`NONE`: in no pattern).
#[derive(Debug, Clone, Copy)]
pub(super) struct Word {
    pub(super) start: u32,
    pub(super) id: u32,
}

/// The compiled patterns.
#[derive(Debug, Clone, Default)]
pub(super) struct Matcher {
    /// Word → id.
    ids: FxHashMap<Box<[u8]>, u32>,
    /// Word id → the trie node of the patterns that start with it.
    root: Vec<u32>,
    /// (node, next word id) → node.
    next: FxHashMap<(u32, u32), u32>,
    /// Node → the range of `outputs` holding the patterns that end there.
    ends: Vec<(u32, u32)>,
    outputs: Vec<u32>,
}

impl Matcher {
    /// Compiles `patterns`, each its words between single spaces (`" lethal dose "`); a match
    /// reports the pattern's index.
    pub(super) fn new(patterns: &[Vec<u8>]) -> Matcher {
        let mut m = Matcher::default();
        let mut ends: Vec<Vec<u32>> = Vec::new();
        for (p, pattern) in patterns.iter().enumerate() {
            let mut node = NONE;
            for (k, word) in pattern
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .enumerate()
            {
                let fresh = m.ids.len() as u32;
                let id = *m.ids.entry(word.into()).or_insert(fresh);
                if id as usize >= m.root.len() {
                    m.root.resize(id as usize + 1, NONE);
                }
                let slot = if k == 0 {
                    &mut m.root[id as usize]
                } else {
                    m.next.entry((node, id)).or_insert(NONE)
                };
                if *slot == NONE {
                    *slot = ends.len() as u32;
                    ends.push(Vec::new());
                }
                node = *slot;
            }
            if node != NONE {
                ends[node as usize].push(p as u32);
            }
        }
        for patterns in ends {
            let from = m.outputs.len() as u32;
            m.outputs.extend(patterns);
            m.ends.push((from, m.outputs.len() as u32));
        }
        m
    }

    /// Splits the normalized `buf` (`" w w w "`) into `words`, each with its id.
    pub(super) fn words(&self, buf: &[u8], words: &mut Vec<Word>) {
        words.clear();
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if b == b' ' {
                if i > start {
                    let id = self.ids.get(&buf[start..i]).copied().unwrap_or(NONE);
                    words.push(Word {
                        start: start as u32,
                        id,
                    });
                }
                start = i + 1;
            }
        }
        if start < buf.len() {
            let id = self.ids.get(&buf[start..]).copied().unwrap_or(NONE);
            words.push(Word {
                start: start as u32,
                id,
            });
        }
    }

    /// Every pattern in `words`: `found(first word, last word, pattern)`, by first word, then
    /// by last.
    pub(super) fn find(&self, words: &[Word], mut found: impl FnMut(u32, u32, u32)) {
        for (w, word) in words.iter().enumerate() {
            if word.id == NONE {
                continue;
            }
            let mut node = self.root[word.id as usize];
            let mut k = w;
            while node != NONE {
                let (from, to) = self.ends[node as usize];
                for &p in &self.outputs[from as usize..to as usize] {
                    found(w as u32, k as u32, p);
                }
                k += 1;
                let Some(next) = words.get(k).filter(|n| n.id != NONE) else {
                    break;
                };
                node = self.next.get(&(node, next.id)).copied().unwrap_or(NONE);
            }
        }
    }

    /// `word` (one word of a normalized stream) with its id, placed nowhere.
    pub(super) fn word(&self, word: &[u8]) -> Word {
        Word {
            start: 0,
            id: self.ids.get(word).copied().unwrap_or(NONE),
        }
    }

    /// The one-word patterns that `word` is.
    pub(super) fn single(&self, word: &[u8]) -> &[u32] {
        let Some(&id) = self.ids.get(word) else {
            return &[];
        };
        match self.root[id as usize] {
            NONE => &[],
            node => {
                let (from, to) = self.ends[node as usize];
                &self.outputs[from as usize..to as usize]
            }
        }
    }
}
