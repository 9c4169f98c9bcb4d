#!/usr/bin/env bash
# False flags on ordinary technical text: draws up to 20,000 sentences of 8-40 words from the
# changelogs, NEWS and README files under /usr/share/doc (what a Debian machine has installed;
# the draw is seeded, so one machine gives the same sentences each time), labels them all
# `allow`, and screens them with the default rules. Every sentence it prints was flagged, with
# the words that decided it; the last line counts them.
#
#   benches/screening_docs.sh [SENTENCES]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "${1:-20000}" > "$tmp/docs.tsv" <<'PY'
import glob, gzip, random, re, sys
random.seed(7)
files = sorted(glob.glob('/usr/share/doc/*/changelog*.gz') + glob.glob('/usr/share/doc/*/NEWS*.gz')
               + glob.glob('/usr/share/doc/*/README*'))
sentences = []
for f in files:
    try:
        data = gzip.open(f, 'rt', errors='ignore').read() if f.endswith('.gz') else open(f, errors='ignore').read()
    except OSError:
        continue
    for s in re.split(r'(?<=[.!?])\s+', re.sub(r'\s+', ' ', data)):
        s = s.strip(' *-')
        if 8 <= len(s.split()) <= 40 and re.match(r'^[A-Za-z]', s) and not re.search(r'[<>@]|https?:', s):
            sentences.append(s)
sentences = list(dict.fromkeys(sentences))
random.shuffle(sentences)
for s in sentences[: int(sys.argv[1])]:
    print('allow\t' + s)
PY
LEVQOR_SCREENING_CORPUS="$tmp/docs.tsv" cargo test -q -p levqor-core --test screening_intent_corpus \
  -- --ignored --nocapture your_own 2>/dev/null | grep -E ' -> |sentences differ'
