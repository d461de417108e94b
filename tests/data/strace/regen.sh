#!/bin/sh
# Regenerate the strace test data: re-record every real log in cases.tsv (pids, libraries
# and temp names differ per machine and run), then rewrite every golden *.parsed.json from
# its log. `regen.sh --golden` only rewrites the goldens (after editing tricky.log).
# Goldens are never edited by hand.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
if [ "${1:-}" != "--golden" ]; then
    data=/tmp/closure-strace-data      # fixed, so the recorded paths stay the same
    rm -rf "$data"
    mkdir -p "$data/names"
    gcc -O1 -pthread -o "$data/threads" "$repo/tests/data/trace_fixtures/threads.c"
    gcc -O1 -o "$data/forkserver" "$repo/tests/data/trace_fixtures/forkserver.c"
    # File names strace has to escape: quote, backslash, newline, tab, UTF-8, '<' '>',
    # comma, ") = 3", a control byte and a byte that is not UTF-8.
    ( cd "$data/names"
      for n in 'quote"q' 'back\\slash' 'tab	x' 'caf\303\251' 'lt<gt>' 'comma,x' 'paren) = 3' 'ctl\001x' 'latin\351'; do
          printf 'x\n' > "$(printf "$n")"
      done
      printf 'x\n' > "$(printf 'new\nline')" )
    python3 "$here/regen.py" record
    rm -rf "$data"
fi
python3 "$here/regen.py" golden
