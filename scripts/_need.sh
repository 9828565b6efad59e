# Sourced by scripts/dev and scripts/test: install a Debian package whose command is missing.
# bubblewrap: the sandbox (keel.sandbox, the `sandbox` section of examples/keel.json,
# tests/sandbox) runs commands under `bwrap`. chromium: the console's browser tests
# (tests/console, tests/support/browser.py) drive the system's binary through Playwright.
keel_need() {
    # $1: the command; $2: its Debian package; $3: the calling script's name; $4: who needs it.
    if ! command -v "$1" >/dev/null; then
        echo "$2 missing; installing $2" >&2
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"; } >/dev/null; then
            echo "$3: could not install $2 (apt-get install $2, needs root); $4 needs $1" >&2
            exit 1
        fi
    fi
}
