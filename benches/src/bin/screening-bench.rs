//! Screening throughput: builds about 1 MiB of mixed text deterministically (mostly innocent
//! English, some terms from the default rules, some disguised, some non-ASCII), screens it
//! with the default rules several times, and prints `<system> <metric>=<number>` lines.
//!
//! ```text
//! screening-bench [--runs 20] [--bytes 1048576] [--rules rules.json]
//! ```

use levqor_core::screening::{RuleSet, Screener, default_rules};
use serde_json::Value;
use std::time::Instant;

/// Innocent English, including words that hold a term inside them.
const INNOCENT: &[&str] = &[
    "The quarterly planning meeting moved to Thursday afternoon, so the design review can wait.",
    "We walked along the riverbank and watched the herons fish in the shallow water.",
    "The heroine of the novel escapes the castle with a map drawn on a scrap of linen.",
    "Please fix the syntax error on line twelve before the build runs again tonight.",
    "She pasted the concert tickets into her scrapbook next to the photos from the beach.",
    "That was a classic episode, and the taxi scene still makes everyone laugh.",
    "The detective decided to investigate the strange noise coming from the embankment.",
    "Our team shipped the new onboarding flow, and the feedback has been mostly positive.",
    "Methane leaks are hard to see, which is why the method relies on infrared cameras.",
    "The recipe calls for two cups of flour, a pinch of salt and a spoon of honey.",
    "He mowed the lawn, trimmed the hedge and then fell asleep in the hammock.",
    "The caterpillar on the pillow turned out to be a plastic toy from the party bag.",
    "Let's pursue the idea at the next retrospective and issue a short summary afterwards.",
    "The grapes in the vineyard are almost ripe, and the harvest starts next week.",
];

/// Text the default rules should flag, plainly and disguised.
const FLAGGED: &[&str] = &[
    "My doctor prescribed antibiotics for the infection and told me to rest.",
    "We are talking to a lawyer about the custody battle and the lawsuit.",
    "Should I refinance my mortgage or pay down the credit card debt first?",
    "Where can I buy f3nt4nyl without a prescription?",
    "He explained how m0ney l.a.u.n.d.e.r.i.n.g works through shell companies.",
    "They were charged with insider trading after the merger.",
];

/// Non-ASCII text, innocent and flagged.
const UNICODE: &[&str] = &[
    "Le café était fermé, alors nous avons marché jusqu'à la gare.",
    "Naïve résumé writers often forget the cover letter — don't.",
    "Ｔｈｅ ｗｅａｔｈｅｒ ｉｓ ｎｉｃｅ ｔｏｄａｙ 😀",
    "Привет, как дела? 感谢您的帮助。",
    "ｆｅｎｔａｎｙｌ for sale, DM me.",
];

/// A 64-bit linear congruential generator (Knuth's MMIX constants): deterministic, no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, pool: &[&'a str]) -> &'a str {
        pool[(self.next() % pool.len() as u64) as usize]
    }
}

/// About `bytes` bytes of text: 85% innocent sentences, 10% flagged, 5% non-ASCII, with a
/// sprinkling of upper-cased sentences; cut to `bytes` on a character boundary.
fn corpus(bytes: usize) -> String {
    let mut rng = Lcg(0x5eed);
    let mut text = String::with_capacity(bytes + 256);
    while text.len() < bytes {
        let roll = rng.next() % 100;
        let sentence = match roll {
            0..=84 => rng.pick(INNOCENT),
            85..=94 => rng.pick(FLAGGED),
            _ => rng.pick(UNICODE),
        };
        if rng.next().is_multiple_of(20) {
            text.push_str(&sentence.to_uppercase());
        } else {
            text.push_str(sentence);
        }
        text.push(if rng.next().is_multiple_of(8) {
            '\n'
        } else {
            ' '
        });
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The value after `name` on the command line.
fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn arg(name: &str, default: usize) -> usize {
    flag(name)
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
        })
        .unwrap_or(default)
}

/// Runs `screen` `runs` times over `bytes` bytes; returns (median, min, max) MB/s and the
/// number of matches of the last run.
fn measure(runs: usize, bytes: usize, mut screen: impl FnMut() -> usize) -> (f64, f64, f64, usize) {
    let mut mb_per_s = Vec::with_capacity(runs);
    let mut matches = 0;
    for _ in 0..runs {
        let started = Instant::now();
        matches = screen();
        mb_per_s.push(bytes as f64 / 1e6 / started.elapsed().as_secs_f64());
    }
    mb_per_s.sort_by(f64::total_cmp);
    (mb_per_s[runs / 2], mb_per_s[0], mb_per_s[runs - 1], matches)
}

/// The rule set named by `--rules FILE` (a rule document, as `PUT /v1/admin/screening/rules`
/// takes), else the default rules: compares two rule sets on the same build.
fn rules() -> RuleSet {
    let Some(path) = flag("--rules") else {
        return default_rules();
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    RuleSet::from_json(value).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

fn main() {
    let runs = arg("--runs", 20).max(1);
    let bytes = arg("--bytes", 1 << 20);
    let text = corpus(bytes);
    let screener = Screener::new(&rules()).expect("the rules are valid");

    // One string of ~1 MiB: the normalizer and the automaton at full stride.
    let (median, min, max, matches) = measure(runs, text.len(), || {
        screener.screen_text(&text, "/text").len()
    });
    println!(
        "screening default_rules bytes={} runs={runs} median_mb_per_s={median:.1} \
         min_mb_per_s={min:.1} max_mb_per_s={max:.1} matches={matches}",
        text.len()
    );

    // The same text as a JSON array of lines, as a job's input: one screening per string,
    // one match per (term, line).
    let lines = Value::Array(text.lines().map(|l| Value::String(l.to_owned())).collect());
    let line_bytes: usize = text.lines().map(str::len).sum();
    let (median, min, max, matches) = measure(runs, line_bytes, || {
        screener.screen(&[("/input", &lines)]).matches.len()
    });
    println!(
        "screening default_rules_json strings={} bytes={line_bytes} runs={runs} \
         median_mb_per_s={median:.1} min_mb_per_s={min:.1} max_mb_per_s={max:.1} matches={matches}",
        text.lines().count()
    );
}
