#!/usr/bin/env bash
# Adds a schedule the way the README's "Write your own scheduler" says — the example file
# docs/examples/bold_driver.rs and one registration line — in a scratch copy of the repository,
# then: the conformance tests pass for it, and it is tuned with the other arms, trains as an arm
# of the tuned smoke protocol and is analysed. Two deliberately broken copies (a rate that turns
# NaN; a state field serde skips) must fail the conformance tests with their property named.
# Also checks that the README shows the example file verbatim.
#
#   scripts/new-schedule-test.sh      (HF_HOME defaults to ../shared/hf-cache, read only)
#
# Builds into this checkout's target/ (dependencies are reused; the scratch copy's own crates
# get their own artifacts) and re-links this checkout's binaries afterwards.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export HF_HOME="${HF_HOME:-$repo/../shared/hf-cache}" HF_HUB_OFFLINE=1
export CARGO_TARGET_DIR="$repo/target"
example="$repo/docs/examples/bold_driver.rs"
line='    mod bold_driver { "bold_driver" => BoldDriver(BoldDriverConfig, BoldDriver), }'
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"; (cd "$repo" && cargo build --quiet -p xtask)' EXIT

step() { printf '\n== %s\n' "$*"; }

step "the README shows the example file and its registration line verbatim"
python3 - "$repo/README.md" "$example" "$line" <<'PY'
import sys
readme, example, line = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
assert "```rust\n" + example + "```" in readme, "README: the example differs from " + sys.argv[2]
assert line.strip() in readme, "README: the registration line differs"
PY

# A copy of the repository as committed (and any new files not ignored), without target/.
copy() {
    rm -rf "$scratch/repo" && mkdir -p "$scratch/repo"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 cp --parents -t "$scratch/repo")
    local schedules="$scratch/repo/crates/schedulers/src/schedules"
    cp "$1" "$schedules/bold_driver.rs"
    # The one registration line, as the last entry of `registry!`.
    python3 - "$schedules/mod.rs" "$line" <<'PY'
import sys
path, line = sys.argv[1], sys.argv[2]
text = open(path).read().rstrip()
assert text.endswith("}"), path
open(path, "w").write(text[:-1] + line + "\n}\n")
PY
}

# Runs the conformance tests of the scratch copy; prints their output.
conformance() {
    (cd "$scratch/repo" && cargo test --quiet -p lrlab-schedulers --test conformance 2>&1)
}

step "a broken copy whose rate turns NaN fails, naming the property"
sed 's/self.lr \*= self.config.cut/self.lr = f64::NAN/' "$example" >"$scratch/nan.rs"
copy "$scratch/nan.rs"
if output="$(conformance)"; then echo "passed, but must fail" >&2; exit 1; fi
grep -q 'property `rate is finite and within bounds` broken' <<<"$output" ||
    { echo "$output" >&2; echo "the property is not named" >&2; exit 1; }
grep -A3 'minimal failing input' <<<"$output" | head -4

step "a broken copy whose state does not restore fails, naming the property"
sed 's/^    last: Option<Float>,/    #[serde(skip)]\n    last: Option<Float>,/' "$example" >"$scratch/skip.rs"
grep -q 'serde(skip)' "$scratch/skip.rs"
copy "$scratch/skip.rs"
if output="$(conformance)"; then echo "passed, but must fail" >&2; exit 1; fi
grep -q 'property `a save restores and continues bit for bit` broken' <<<"$output" ||
    { echo "$output" >&2; echo "the property is not named" >&2; exit 1; }

step "the example passes the conformance tests"
copy "$example"
conformance | tail -3

step "it is tuned with the others, trains as an arm of the tuned smoke protocol, is analysed"
cd "$scratch/repo"
cat >>configs/cifar10.toml <<'TOML'

[arms.bold_driver]
kind = "bold_driver"
grow = 1.05
cut = 0.5
max_factor = 10.0

[tune.bold_driver]
grow = [1.02, 1.1]
cut = { low = 0.3, high = 0.7 }
TOML
cargo run --quiet -p xtask -- tune cifar10 --preset smoke --out "$scratch/tune" >/dev/null
grep -q '^\[arms.bold_driver\]' "$scratch/tune/cifar10/tuned.toml"
cargo run --quiet -p xtask -- experiment cifar10 --config "$scratch/tune/cifar10/tuned.toml" \
    --preset tuned --arms constant,bold_driver --seeds 0 --out "$scratch/runs"
cargo run --quiet -p xtask -- analyze --runs "$scratch/runs" --out "$scratch/reports"
grep -q bold_driver "$scratch/reports/cifar10/report.md"
test -f "$scratch/runs/cifar10/bold_driver/seed-0/run.json"
echo "new-schedule test: passed"
