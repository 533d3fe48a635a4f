#!/usr/bin/env bash
# The whole test suite: what README tells users to run and what CI runs.
# Unit, property, recovery and crash tests of every crate. No timing assertions anywhere:
# speed is measured by benches/ and reported in results/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
