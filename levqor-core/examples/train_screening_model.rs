//! Trains the learned stage of the default screening rules (`model` in
//! `src/screening/default_rules.json`) from the labelled corpus's tuned part and the sentences
//! written after the first rules, never from its held-out part:
//!
//! ```sh
//! cargo run -p levqor-core --example train_screening_model
//! ```
//!
//! `-- --written-after N` trains on the first `N` sentences written after the rules only, and
//! `-- --into FILE` writes the model into another rule document: together they measure the
//! stage on batches it was not trained on (BENCHMARKS.md).
//!
//! Two L2-regularised logistic regressions (C = 1, classes weighted to balance) over the
//! binary features that [`features`] reads (normalized words and pairs of adjacent words, each
//! in at least two sentences): one for `block`, one for `block` or `hold`. Weights are kept in
//! thousandths of a logit; features whose weights both round below `PRUNE` are dropped. The
//! optimiser is L-BFGS with a backtracking line search, run to a gradient norm of 1e-4, so the
//! same corpus always gives the same weights.

use levqor_core::screening::features;
use std::collections::{BTreeMap, HashMap};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/screening/");
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/screening/default_rules.json"
);

/// Inverse regularisation strength.
const C: f64 = 1.0;
/// A feature must be in at least this many sentences.
const MIN_SENTENCES: usize = 2;
/// Weights below this many thousandths (both heads) are dropped.
const PRUNE: i32 = 20;
/// The thresholds and window the stage ships with (see `Model`).
const ESCALATE_AT: u8 = 80;
const CLEAR_BELOW: u8 = 20;
const WINDOW: u32 = 32;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter().position(|a| a == name).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| panic!("{name} needs a value"))
                .clone()
        })
    };
    let written_after: usize = option("--written-after").map_or(usize::MAX, |n| {
        n.parse()
            .expect("--written-after takes a number of sentences")
    });
    let into = option("--into").unwrap_or_else(|| RULES.to_owned());
    let mut sentences: Vec<(String, String)> = Vec::new();
    for (file, most) in [
        ("tune.tsv", usize::MAX),
        ("written-after.tsv", written_after),
    ] {
        let text = std::fs::read_to_string(format!("{DATA}{file}")).expect("the corpus");
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .take(most)
        {
            let cols: Vec<&str> = line.split('\t').collect();
            sentences.push((cols[0].to_owned(), cols[cols.len() - 1].to_owned()));
        }
    }
    let read: Vec<Vec<String>> = sentences.iter().map(|(_, t)| features(t)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for f in read.iter().flatten() {
        *counts.entry(f.as_str()).or_default() += 1;
    }
    let mut names: Vec<&str> = counts
        .iter()
        .filter(|&(_, &n)| n >= MIN_SENTENCES)
        .map(|(&f, _)| f)
        .collect();
    names.sort_unstable();
    let index: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, &f)| (f, i as u32))
        .collect();
    let rows: Vec<Vec<u32>> = read
        .iter()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| index.get(f.as_str()).copied())
                .collect()
        })
        .collect();
    let heads: [&dyn Fn(&str) -> bool; 2] = [&|v| v == "block", &|v| v == "block" || v == "hold"];
    let mut bias = [0i32; 2];
    let mut weights: BTreeMap<String, [i32; 2]> = BTreeMap::new();
    for (h, positive) in heads.iter().enumerate() {
        let labels: Vec<bool> = sentences.iter().map(|(v, _)| positive(v)).collect();
        let theta = fit(&rows, &labels, names.len());
        bias[h] = milli(theta[names.len()]);
        for (name, &w) in names.iter().zip(&theta) {
            weights.entry((*name).to_owned()).or_default()[h] = milli(w);
        }
        eprintln!(
            "head {h}: {} positive of {} sentences, {} features",
            labels.iter().filter(|&&y| y).count(),
            labels.len(),
            names.len()
        );
    }
    weights.retain(|_, w| w.iter().any(|w| w.abs() >= PRUNE));
    eprintln!("{} features kept", weights.len());
    let readable = readable_words(&sentences);
    let weights: BTreeMap<String, [i32; 2]> = weights
        .into_iter()
        .map(|(feature, w)| {
            let words: Vec<&str> = feature
                .split(' ')
                .map(|word| readable.get(word).map_or(word, String::as_str))
                .collect();
            (words.join(" "), w)
        })
        .collect();
    write_model(&into, bias, &weights);
}

/// Normalized word → the lowercase spelling that reads as it most often in the corpus
/// ("caiier" → "caller"), so that explanations quote words as people write them. Any spelling
/// that normalizes to a feature's words stands for it.
fn readable_words(sentences: &[(String, String)]) -> HashMap<String, String> {
    let mut spellings: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for (_, text) in sentences {
        for token in text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
        {
            let token = token.to_ascii_lowercase();
            if let [word] = features(&token).as_slice() {
                *spellings
                    .entry(word.clone())
                    .or_default()
                    .entry(token)
                    .or_default() += 1;
            }
        }
    }
    spellings
        .into_iter()
        .filter_map(|(word, counts)| {
            let (best, _) = counts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
            Some((word, best))
        })
        .collect()
}

/// Thousandths, rounded.
fn milli(x: f64) -> i32 {
    (x * 1000.0).round() as i32
}

/// The weights (then the intercept) minimising ½‖w‖² + C·Σ sᵢ·log(1 + e^(−yᵢ·zᵢ)), where sᵢ
/// balances the classes.
fn fit(rows: &[Vec<u32>], labels: &[bool], d: usize) -> Vec<f64> {
    let n = labels.len() as f64;
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let scale = |y: bool| {
        if y {
            n / (2.0 * pos)
        } else {
            n / (2.0 * (n - pos))
        }
    };
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut f = 0.0;
        for (j, &w) in theta[..d].iter().enumerate() {
            f += 0.5 * w * w;
            grad[j] = w;
        }
        for (row, &y) in rows.iter().zip(labels) {
            let z = theta[d] + row.iter().map(|&j| theta[j as usize]).sum::<f64>();
            let sign = if y { 1.0 } else { -1.0 };
            let m = sign * z;
            // log(1 + e^(−m)), and its derivative −1/(1 + e^m), computed without overflow.
            let loss = if m > 0.0 {
                (-m).exp().ln_1p()
            } else {
                -m + m.exp().ln_1p()
            };
            let s = C * scale(y);
            f += s * loss;
            let dz = -s * sign / (1.0 + m.exp());
            for &j in row {
                grad[j as usize] += dz;
            }
            grad[d] += dz;
        }
        f
    };
    lbfgs(d + 1, objective)
}

/// Minimises `f` from zero with L-BFGS (ten corrections, Armijo backtracking).
fn lbfgs(dim: usize, f: impl Fn(&[f64], &mut [f64]) -> f64) -> Vec<f64> {
    const MEMORY: usize = 10;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0.0; dim];
    let mut g = vec![0.0; dim];
    let mut fx = f(&x, &mut g);
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    for _ in 0..5_000 {
        if dot(&g, &g).sqrt() < 1e-4 {
            break;
        }
        // Two-loop recursion: the direction −H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        if let Some((s, y, _)) = history.last() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|q| *q *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let direction: Vec<f64> = q.iter().map(|q| -q).collect();
        let slope = dot(&g, &direction);
        let mut step = if history.is_empty() {
            1.0 / dot(&g, &g).sqrt()
        } else {
            1.0
        };
        let mut next = vec![0.0; dim];
        let mut g_next = vec![0.0; dim];
        let f_next = loop {
            next.iter_mut()
                .zip(&x)
                .zip(&direction)
                .for_each(|((n, x), d)| *n = x + step * d);
            let f_next = f(&next, &mut g_next);
            if f_next <= fx + 1e-4 * step * slope || step < 1e-12 {
                break f_next;
            }
            step *= 0.5;
        };
        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_next.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            history.push((s, y, 1.0 / sy));
            if history.len() > MEMORY {
                history.remove(0);
            }
        }
        x = next;
        g = g_next;
        fx = f_next;
    }
    x
}

/// Writes the model as the last member of the rule document at `path` (the default rules'
/// layout: two-space indent), one feature per line, replacing the model there.
fn write_model(path: &str, bias: [i32; 2], weights: &BTreeMap<String, [i32; 2]>) {
    let rules = std::fs::read_to_string(path).expect("the rule document");
    let body = match rules.find(",\n  \"model\": {") {
        Some(at) => rules[..at].to_owned(),
        None => rules
            .trim_end()
            .strip_suffix('}')
            .expect("a JSON object")
            .trim_end()
            .to_owned(),
    };
    let mut out = body;
    out.push_str(",\n  \"model\": {\n");
    out.push_str(&format!(
        "    \"window\": {WINDOW}, \"escalate_at\": {ESCALATE_AT}, \"clear_below\": {CLEAR_BELOW},\n"
    ));
    out.push_str(&format!("    \"bias\": [{}, {}],\n", bias[0], bias[1]));
    out.push_str("    \"weights\": {\n");
    let lines: Vec<String> = weights
        .iter()
        .map(|(f, w)| {
            format!(
                "      {}: [{}, {}]",
                serde_json::to_string(f).expect("a string"),
                w[0],
                w[1]
            )
        })
        .collect();
    out.push_str(&lines.join(",\n"));
    out.push_str("\n    }\n  }\n}\n");
    std::fs::write(path, out).expect("the rule document is written");
}
