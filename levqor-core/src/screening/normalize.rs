//! The normalizer: text to the canonical stream of words that the screener searches (the
//! rules are in the parent module's docs). One pass, no allocation once its buffers are warm.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

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

/// Of eight bytes of text (the first in the lowest byte): how many at the start are ASCII
/// letters, and the eight bytes as `MAP` gives letters (lowercase, "l" read as "i"), computed
/// a machine word at a time. Only the first `letters` mapped bytes mean anything.
#[inline]
fn letters8(chunk: u64) -> (usize, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let lower = chunk | (0x20 * ONES);
    // Seven bits per byte, so the sums below never carry into the next byte.
    let seven = lower & !HIGH;
    let at_least_a = (seven + (0x80 - u64::from(b'a')) * ONES) & HIGH;
    let at_most_z = !(seven + (0x7f - u64::from(b'z')) * ONES) & HIGH;
    let letters = at_least_a & at_most_z & !chunk;
    let count = ((!letters & HIGH).trailing_zeros() / 8) as usize;
    // Bytes equal to "l": their seven bits are zero after the xor.
    let t = seven ^ (u64::from(b'l') * ONES);
    let nonzero = ((t & !HIGH) + (!HIGH)) | t;
    let is_l = (!nonzero & HIGH) >> 7;
    (count, lower - is_l * u64::from(b'l' - b'i'))
}

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

/// Cyrillic and Greek capitals that look like a Latin capital, read before lowercasing: the
/// Greek capital eta "Η" is an "h" to the eye, while its lowercase "η" looks like an "n".
fn latin_capital_look_alike(c: char) -> Option<u8> {
    Some(match c {
        'Α' | 'А' => b'a',
        'Β' | 'В' => b'b',
        'Ϲ' | 'С' => b'c',
        'Ε' | 'Е' => b'e',
        'Η' | 'Н' => b'h',
        'Ι' | 'І' | 'Ӏ' => b'i',
        'Ј' => b'j',
        'Κ' | 'К' => b'k',
        'Μ' | 'М' => b'm',
        'Ν' => b'n',
        'Ο' | 'О' => b'o',
        'Ρ' | 'Р' => b'p',
        'Ѕ' => b's',
        'Τ' | 'Т' => b't',
        'Υ' | 'Ү' => b'y',
        'Χ' | 'Х' => b'x',
        'Ζ' => b'z',
        _ => return None,
    })
}

/// Cyrillic, Greek and Latin-extension lowercase letters that look like a Latin one
/// ("раураl").
fn latin_look_alike(c: char) -> Option<u8> {
    Some(match c {
        'а' | 'α' | 'ɑ' => b'a',
        'в' | 'β' => b'b',
        'с' | 'ϲ' => b'c',
        'ԁ' => b'd',
        'е' | 'ε' => b'e',
        'һ' | 'н' => b'h',
        'і' | 'ι' | 'ӏ' | 'ı' | 'ɩ' | 'ɪ' => b'i',
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
        'у' | 'γ' | 'ү' | 'ʏ' => b'y',
        'ɡ' | 'ց' => b'g',
        'ԛ' => b'q',
        'ѵ' => b'v',
        'ɴ' => b'n',
        _ => return None,
    })
}

/// The normalizer: turns text into the canonical stream of words (see the module docs) in one
/// pass, reusing its buffers between calls.
#[derive(Default)]
pub(super) struct Canon {
    /// The stream: `" word word word "`.
    pub(super) buf: Vec<u8>,
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
    pub(super) runs: Vec<(usize, usize)>,
    /// Read joiners as separators (for the "self harm" form of the term "self-harm").
    split_joiners: bool,
    /// Scratch for re-searching a run.
    pub(super) probe: Vec<u8>,
    /// Two words with one space between them, at least one of them spelled with a joiner inside
    /// ("p-r.e s_c-ription", "g-u_a.r-a n"): where the first starts, the space, and where the
    /// second ends.
    pub(super) splits: Vec<(usize, usize, usize)>,
    /// The pieces of compound words ("repeat-prescription", "dose_adjustment"): where each
    /// piece starts and ends, with where its word starts, in text order. A word spelled with
    /// joiners is searched joined; one with two or more pieces of two or more letters between
    /// its hyphens and underscores is also searched as those words (not between dots:
    /// "the.rapist" is one word).
    pub(super) pieces: Vec<(usize, usize, usize)>,
    /// The bytes of the pieces (`pieces` indexes here).
    pub(super) piece_bytes: Vec<u8>,
    /// Where the open word's pieces after the first start (a hyphen or an underscore stood
    /// before each).
    piece_starts: Vec<usize>,
    /// A hyphen or an underscore was among the joiners pending in the open word.
    hyphen_pending: bool,
    /// Whether the open word has a joiner between two of its letters.
    joined: bool,
    /// A joiner was seen in the open word and no letter since.
    join_pending: bool,
    /// The last closed word that can be a split's piece: start, end, and whether it was joined.
    last_piece: Option<(usize, usize, bool)>,
    /// Whether the open word follows the last closed word after exactly one space.
    one_space_before: bool,
    /// White space characters, and whether anything else, seen since the last word closed.
    gap_spaces: u8,
    gap_other: bool,
    /// Direct-mapped cache: non-ASCII character → what it contributes.
    folds: Vec<(char, Fold)>,
}

impl Canon {
    /// The normalized form of a term: the stream without its outer spaces.
    pub(super) fn normalize_term(&mut self, term: &str, split_joiners: bool) -> Vec<u8> {
        self.split_joiners = split_joiners;
        self.normalize(term);
        self.split_joiners = false;
        let inner = self.buf.strip_prefix(b" ").unwrap_or(&self.buf);
        inner.strip_suffix(b" ").unwrap_or(inner).to_vec()
    }

    pub(super) fn normalize(&mut self, text: &str) {
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
        self.splits.clear();
        self.pieces.clear();
        self.piece_bytes.clear();
        self.piece_starts.clear();
        self.hyphen_pending = false;
        self.joined = false;
        self.join_pending = false;
        self.last_piece = None;
        self.one_space_before = false;
        self.gap_spaces = 0;
        self.gap_other = false;
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
                    self.inner_letter();
                    let start = i;
                    // Eight bytes at a time while they are letters (most words)...
                    while let Some(chunk) = bytes.get(i..i + 8) {
                        let chunk = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                        let (letters, mapped) = letters8(chunk);
                        let len = self.buf.len();
                        self.buf.extend_from_slice(&mapped.to_le_bytes());
                        self.buf.truncate(len + letters);
                        i += letters;
                        if letters < 8 {
                            break;
                        }
                    }
                    // ...then byte by byte: digits, and the last bytes of the text.
                    let rest = i;
                    while i < bytes.len() && CLASS[usize::from(bytes[i])] == WORD {
                        i += 1;
                    }
                    self.buf
                        .extend(bytes[rest..i].iter().map(|&b| MAP[usize::from(b)]));
                    self.word_chars += i - start;
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
                    if b == b'{'
                        && let Some(len) = self.placeholder(&bytes[i..])
                    {
                        i += len;
                        continue;
                    }
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
            JOIN if !self.split_joiners => self.joiner(b == b'-' || b == b'_'),
            LEET => {
                self.spaces = 0;
                self.pending.push(MAP[i]);
            }
            _ => {
                self.spaces = 0;
                self.separator();
                self.gap_other = true;
            }
        }
    }

    /// Punctuation dropped inside words.
    #[inline]
    fn joiner(&mut self, hyphen: bool) {
        self.spaces = 0;
        self.pending.clear();
        if self.in_word {
            self.join_pending = true;
            self.hyphen_pending |= hyphen;
        } else {
            self.gap_other = true;
        }
    }

    /// A letter is added to the open word: a joiner before it was inside the word.
    #[inline]
    fn inner_letter(&mut self) {
        if self.join_pending {
            self.joined = true;
            self.join_pending = false;
            if self.hyphen_pending {
                self.hyphen_pending = false;
                self.piece_starts.push(self.buf.len());
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
        self.gap_spaces = self.gap_spaces.saturating_add(1);
    }

    #[inline]
    fn letter(&mut self, b: u8) {
        if !self.pending.is_empty() {
            self.flush_pending();
        }
        if !self.in_word {
            self.open_word();
        }
        self.inner_letter();
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
        self.inner_letter();
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
        self.inner_letter();
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
        self.joined = false;
        self.join_pending = false;
        self.hyphen_pending = false;
        self.piece_starts.clear();
        self.one_space_before = self.gap_spaces == 1 && !self.gap_other;
    }

    fn separator(&mut self) {
        let dropped = !self.pending.is_empty();
        self.pending.clear();
        if self.in_word {
            self.close_word();
        }
        if dropped {
            self.gap_other = true;
        }
    }

    fn close_word(&mut self) {
        self.in_word = false;
        self.gap_spaces = 0;
        self.gap_other = false;
        // The word before this one, when one space stands between them.
        let before = self.last_piece.take().filter(|_| self.one_space_before);
        if !self.piece_starts.is_empty() {
            self.compound_pieces();
        }
        // A letter standing alone between spelled-out pieces ("g-u_a.r-a n t.e-e-d") is a piece
        // too, unless it continues a run of one-letter words (whose spaces are removed below).
        if self.word_chars >= 2 || (self.word_chars == 1 && !self.run_open) {
            let end = self.buf.len();
            if let Some((start, middle, joined)) = before
                && middle + 1 == self.word_start
                && (joined || self.joined)
            {
                self.splits.push((start, middle, end));
            }
            self.last_piece = Some((self.word_start, end, self.joined));
        }
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

    /// Records the pieces of the word just closed when two or more of them have two or more
    /// letters: "dose-adjustment" gives "dose" and "adjustment", while a word spelled letter
    /// by letter ("d-o-s-e", "p-r.e s_c-ription") gives none.
    #[cold]
    fn compound_pieces(&mut self) {
        let end = self.buf.len();
        let bounds = std::iter::once(self.word_start)
            .chain(self.piece_starts.iter().copied())
            .chain(std::iter::once(end));
        let mut from = None;
        let first = self.pieces.len();
        let mut long = 0;
        for at in bounds {
            if let Some(start) = from {
                let len = at - start;
                if len >= 2 {
                    long += 1;
                }
                let from = self.piece_bytes.len();
                self.piece_bytes.extend_from_slice(&self.buf[start..at]);
                self.pieces
                    .push((self.word_start, from, self.piece_bytes.len()));
            }
            from = Some(at);
        }
        if long < 2 {
            self.pieces.truncate(first);
        }
    }

    /// A template placeholder at the start of `rest` (`{{patient.name}}`: two braces, up to
    /// 64 letters, digits, dots, underscores, hyphens and spaces, two braces) is one word, its
    /// letters and digits run together ("patientname"), that also reads as "them": a
    /// placeholder stands for someone, so "start {{patient.name}} on" is "start them on".
    /// Returns how many bytes it took, or `None` when `rest` holds no placeholder.
    #[cold]
    fn placeholder(&mut self, rest: &[u8]) -> Option<usize> {
        const MOST: usize = 64;
        let inner_end = rest
            .get(2..)?
            .iter()
            .take(MOST + 1)
            .position(|&b| b == b'}')?
            + 2;
        if rest.get(1) != Some(&b'{') || rest.get(inner_end + 1) != Some(&b'}') {
            return None;
        }
        let inner = &rest[2..inner_end];
        let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b' ');
        if !inner.iter().all(plain)
            || inner.iter().filter(|b| b.is_ascii_alphanumeric()).count() < 2
        {
            return None;
        }
        self.separator();
        self.open_word();
        for &b in inner.iter().filter(|b| b.is_ascii_alphanumeric()) {
            self.buf.push(MAP[usize::from(b)]);
            self.word_chars += 1;
        }
        self.spaces = 0;
        self.close_word();
        let from = self.piece_bytes.len();
        self.piece_bytes.extend_from_slice(b"them");
        self.pieces
            .push((self.word_start, from, self.piece_bytes.len()));
        Some(inner_end + 2)
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
            Fold::Joiner => self.joiner(false),
            Fold::Ascii(b) => self.ascii(b),
            Fold::Letter(e) => self.unicode_letter(e),
            Fold::Separator => {
                self.spaces = 0;
                self.separator();
                self.gap_other = true;
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
                self.gap_other = true;
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
        if let Some(latin) = latin_capital_look_alike(d) {
            return Fold::Ascii(latin);
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

/// The one-letter English words, as normalized ("a", and "I" which is also "l" and "1").
pub(super) fn is_one_letter_word(b: u8) -> bool {
    b == b'a' || b == b'i'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time reading of eight bytes: how many start with letters, and their map.
    fn letters8_slowly(bytes: [u8; 8]) -> (usize, Vec<u8>) {
        let count = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let mapped = bytes[..count]
            .iter()
            .map(|&b| MAP[usize::from(b)])
            .collect();
        (count, mapped)
    }

    fn agrees(bytes: [u8; 8]) {
        let (count, mapped) = letters8(u64::from_le_bytes(bytes));
        let (want_count, want) = letters8_slowly(bytes);
        assert_eq!(count, want_count, "{bytes:?}");
        assert_eq!(&mapped.to_le_bytes()[..count], &want[..], "{bytes:?}");
    }

    #[test]
    fn every_byte_in_every_place_reads_as_the_table_says() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut bytes = *b"LlzAaZlQ";
                bytes[at] = b;
                agrees(bytes);
            }
        }
    }

    proptest! {
        #[test]
        fn eight_bytes_at_a_time_read_as_one_at_a_time(bytes in any::<[u8; 8]>()) {
            agrees(bytes);
        }

        #[test]
        fn letters_and_their_neighbours_read_as_one_at_a_time(
            bytes in prop::array::uniform8(prop::sample::select(
                b"aAzZlLiI09@[`{ -\x80\xff".to_vec()
            ))
        ) {
            agrees(bytes);
        }
    }
}
