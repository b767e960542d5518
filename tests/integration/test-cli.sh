#!/bin/bash
# hp's own surface: version, help, unknown commands and global options.
. "$HP_TEST_LIB/harness.sh"
ht_begin "cli"

ht_match "hp version prints the version" '^hp [0-9]+\.[0-9]+' "$("$HP_BIN" version)"
ht_check "hp help exits 0" "$HP_BIN" help
ht_match "hp help lists usage" 'usage: hp' "$("$HP_BIN" help)"
"$HP_BIN" >/dev/null 2>&1
ht_eq "hp without a command exits 2" 2 "$?"
err=$("$HP_BIN" frobnicate 2>&1 >/dev/null)
ht_eq "unknown command: exit 2" 2 "$("$HP_BIN" frobnicate >/dev/null 2>&1; echo $?)"
ht_match "unknown command: one line naming it" "^hp: unknown command 'frobnicate'" "$err"
ht_eq "unknown command: exactly one line" 1 "$(printf '%s\n' "$err" | wc -l)"
"$HP_BIN" version --store 2>/dev/null
ht_eq "--store without a value exits 2" 2 "$?"

ht_end
