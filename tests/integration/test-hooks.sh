#!/bin/bash
# The meson option test_hooks decides whether the test-only switches are in
# the programs at all: a build that ships (the default, test_hooks=false)
# must not read HP_ENGINE_TEST_* or HP_SAFETY_MAPS_TEXT from the environment
# of a daemon that runs as root. The names are looked for in the binaries:
# present in a test build, absent otherwise.
. "$HP_TEST_LIB/harness.sh"
ht_begin "hooks"

for bin in "$HP_BIN" "$HP_FS_BIN"; do
	for name in HP_ENGINE_TEST_STALL HP_ENGINE_TEST_SEIZE_D HP_SAFETY_MAPS_TEXT; do
		if ht_have_test_hooks; then
			ht_check "test build: $(basename "$bin") reads $name" grep -qa "$name" "$bin"
		else
			ht_expect_fail "$(basename "$bin") does not read $name" 1 '' grep -qa "$name" "$bin"
		fi
	done
done

ht_end
