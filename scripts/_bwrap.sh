# Sourced by scripts/dev and scripts/test: make sure bubblewrap (bwrap) is installed; the sandbox
# (keel.sandbox, the `sandbox` section of examples/keel.json, tests/sandbox) runs commands under it.
keel_need_bwrap() {
    # $1: the calling script's name, for the error message.
    if ! command -v bwrap >/dev/null; then
        echo "bubblewrap missing; installing bubblewrap" >&2
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap; } >/dev/null; then
            echo "$1: could not install bubblewrap (apt-get install bubblewrap, needs root);" \
                "the sandbox needs bwrap" >&2
            exit 1
        fi
    fi
}

# Sourced by scripts/test: make sure Chromium is installed; the console's browser tests
# (tests/console, tests/support/browser.py) drive the system's binary through Playwright.
keel_need_chromium() {
    # $1: the calling script's name, for the error message.
    if ! command -v chromium >/dev/null; then
        echo "chromium missing; installing chromium" >&2
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >/dev/null; then
            echo "$1: could not install chromium (apt-get install chromium, needs root);" \
                "the console's browser tests need it" >&2
            exit 1
        fi
    fi
}
