#!/usr/bin/env bash
# Runs every check and test of medrelay on a fresh Debian machine with Rust:
# installs what the tests need when it is missing, then fmt, clippy and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a build cache outside the clone when one exists (it is created if not).
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -n "${HOME:-}" ]; then
    export CARGO_TARGET_DIR="$HOME/.cache/medrelay-target"
fi
[ -n "${CARGO_TARGET_DIR:-}" ] && mkdir -p "$CARGO_TARGET_DIR"

# Debian packages the test suite uses.
need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
# Checks docker/compose.yaml without a Docker daemon.
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# The browser tests (tests/browser) drive Debian's chromium through chromedriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

# The calendar tests read feeds back with Python's iCalendar parser.
if ! python3 -c "import icalendar" >/dev/null 2>&1; then
    echo "installing: python icalendar"
    python3 -m pip install --quiet --disable-pip-version-check icalendar \
        || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
             DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-icalendar; }
fi

docker-compose -f docker/compose.yaml config -q
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The production build (docker/Dockerfile) leaves the demo out: it must build.
cargo clippy -p medrelay --bin medrelay --no-default-features --locked -- -D warnings
# Broken or private intra-doc links are errors too: the docs are the map.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
