#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Usage: scripts/test.sh   (CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install rustup (https://rustup.rs) first" >&2
  exit 1
fi
# rust-toolchain.toml pins the toolchain and lists the wasm32-wasip2 target; make sure both
# are installed before cargo needs them (rustup does nothing when they already are).
rustup show active-toolchain >/dev/null
rustup target add wasm32-wasip2 >/dev/null

# kcat: the independent Kafka client the Kafka tests produce and consume with.
if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null
  else
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q kcat >/dev/null
  fi
fi

# stunnel: the Kafka TLS test puts it, with a test certificate, in front of the broker.
if ! command -v stunnel >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && apt-get install -y -q stunnel4 >/dev/null
  else
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q stunnel4 >/dev/null
  fi
fi

# PostgreSQL (server and psql): the postgres sink's tests start a server of their own.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null
  else
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q postgresql >/dev/null
  fi
fi

# Chromium and playwright-core: the dashboard test drives the page in a real browser.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
  else
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null
  fi
fi
# moto's S3-compatible server: the object storage tests start one (tests/common/s3.rs).
if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi

# noida-db: the Elasticsearch-compatible server the Elasticsearch sink's tests write to
# (pinned: 0.2.3 needs a newer glibc).
if ! command -v noida-db >/dev/null 2>&1 || ! noida-db version 2>/dev/null | grep -q '0\.2\.2'; then
  python3 -m pip install --quiet --disable-pip-version-check 'noida-db==0.2.2'
fi

# cassandra-driver (DataStax's Python driver): the independent client the Cassandra tests
# create tables and read rows back with. The CQL server itself (tests/servers/cassandra) is
# built from source by the tests.
if ! python3 -c "import cassandra.cluster" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'cassandra-driver==3.30.1'
fi

# schemathesis: walks `sluice serve`'s API from its own /openapi.json (tests/serve.rs).
if ! command -v schemathesis >/dev/null 2>&1 || ! schemathesis --version 2>/dev/null | grep -q '4\.32\.5'; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

npm ci --prefix tests/dashboard --no-audit --no-fund --silent

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The end-to-end and crash tests again with one worker and with four (on however many cores
# this machine has): a query's output must not depend on its parallelism (issue 14). The
# default shufflePartitions follows parallelism, so this also runs 1 and 4 state partitions.
for p in 1 4; do
  echo "== end-to-end tests at parallelism $p"
  SLUICE_PARALLELISM=$p cargo test -p sluice --locked \
    --test engine --test event_time --test crash_recovery --test multi_input --test joins \
    --test nexmark --test wasm --test processor --test object_storage
done

# Hardening (issue 34): every fuzz target for 30 seconds on its corpus and past crashes
# (scripts/fuzz.sh builds them with cargo-fuzz on this toolchain), then a 2-minute soak of
# one `sluice serve` (Kafka → Wasm → windows → Kafka and files → join → PostgreSQL, module
# swaps and a restart): exact outputs, nothing growing after warm-up.
bash scripts/fuzz.sh 30
cargo run -q -p sluice-bench --locked -- soak --minutes 2 --swap-every 30 --restart-every 60
