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
    /// Word of up to eight bytes, packed into a machine word (see [`packed`]) → id: most words
    /// are short, and a short key is hashed and compared in a few instructions.
    short: FxHashMap<u64, u32>,
    /// Longer word → id.
    long: FxHashMap<Box<[u8]>, u32>,
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
                let fresh = (m.short.len() + m.long.len()) as u32;
                let id = match packed(word) {
                    Some(key) => *m.short.entry(key).or_insert(fresh),
                    None => *m.long.entry(word.into()).or_insert(fresh),
                };
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

    /// The id of `word`, or `NONE`.
    fn id(&self, word: &[u8]) -> u32 {
        match packed(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
        .copied()
        .unwrap_or(NONE)
    }

    /// Splits the normalized `buf` (`" w w w "`) into `words`, each with its id.
    pub(super) fn words(&self, buf: &[u8], words: &mut Vec<Word>) {
        words.clear();
        let mut start = 0;
        while let Some(end) = next_space(buf, start) {
            if end > start {
                // A short word is read as one machine word where eight bytes are there.
                let id = match buf.get(start..start + 8) {
                    Some(eight) if end - start <= 8 => {
                        let all = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
                        let key = all & (u64::MAX >> (8 * (8 - (end - start))));
                        self.short.get(&key).copied().unwrap_or(NONE)
                    }
                    _ => self.id(&buf[start..end]),
                };
                words.push(Word {
                    start: start as u32,
                    id,
                });
            }
            start = end + 1;
        }
        if start < buf.len() {
            words.push(Word {
                start: start as u32,
                id: self.id(&buf[start..]),
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

    /// The id of `word` (one normalized word), given a fresh one if no pattern holds it, so that
    /// its occurrences in a text carry an id too (the learned stage reads them).
    pub(super) fn add_word(&mut self, word: &[u8]) -> u32 {
        let fresh = self.vocabulary() as u32;
        let id = match packed(word) {
            Some(key) => *self.short.entry(key).or_insert(fresh),
            None => *self.long.entry(word.into()).or_insert(fresh),
        };
        if id as usize >= self.root.len() {
            self.root.resize(id as usize + 1, NONE);
        }
        id
    }

    /// How many words have ids (ids run from zero).
    pub(super) fn vocabulary(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// `word` (one word of a normalized stream) with its id, placed nowhere.
    pub(super) fn word(&self, word: &[u8]) -> Word {
        Word {
            start: 0,
            id: self.id(word),
        }
    }

    /// The one-word patterns that `word` is.
    pub(super) fn single(&self, word: &[u8]) -> &[u32] {
        let id = self.id(word);
        if id == NONE {
            return &[];
        }
        match self.root[id as usize] {
            NONE => &[],
            node => {
                let (from, to) = self.ends[node as usize];
                &self.outputs[from as usize..to as usize]
            }
        }
    }
}

/// Where the first space at or after `from` in `buf` is: eight bytes at a time (a zero byte of
/// the bytes xor spaces, found by the carry of subtracting one from each), then byte by byte.
#[inline]
fn next_space(buf: &[u8], from: usize) -> Option<usize> {
    const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut i = from;
    while let Some(eight) = buf.get(i..i + 8) {
        let x = u64::from_le_bytes(eight.try_into().expect("eight bytes")) ^ SPACES;
        // The lowest set bit is exact; bits above it may be borrows and are not read.
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    buf.get(i..)?.iter().position(|&b| b == b' ').map(|p| i + p)
}

/// A word of one to eight bytes as a machine word, its bytes in order from the low end and zeros
/// after them (a normalized word holds no zero byte, so no two words share a key); `None` for
/// longer words.
fn packed(word: &[u8]) -> Option<u64> {
    if word.len() > 8 {
        return None;
    }
    let mut bytes = [0u8; 8];
    bytes[..word.len()].copy_from_slice(word);
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A word read in place as a machine word has the id of the same word looked up alone,
        /// wherever it stands in the stream and whatever its length.
        #[test]
        fn words_read_in_place_have_the_ids_of_the_words_alone(
            vocabulary in prop::collection::vec("[a-z]{1,12}", 1..20),
            picks in prop::collection::vec((0usize..40, any::<bool>()), 0..30),
        ) {
            let patterns: Vec<Vec<u8>> =
                vocabulary.iter().map(|w| format!(" {w} ").into_bytes()).collect();
            let m = Matcher::new(&patterns);
            // Words of the vocabulary and others, each with and without a letter more.
            let text: Vec<String> = picks
                .iter()
                .map(|&(k, longer)| {
                    let w = vocabulary.get(k).cloned().unwrap_or_else(|| "zq".repeat(k % 7 + 1));
                    if longer { format!("{w}s") } else { w }
                })
                .collect();
            let buf = format!(" {} ", text.join(" ")).into_bytes();
            let mut words = Vec::new();
            m.words(&buf, &mut words);
            prop_assert_eq!(words.len(), text.len());
            for (word, expected) in words.iter().zip(&text) {
                prop_assert_eq!(word.id, m.word(expected.as_bytes()).id, "{}", expected);
                let known = vocabulary.contains(expected);
                prop_assert_eq!(word.id != NONE, known, "{}", expected);
            }
        }
    }
}
