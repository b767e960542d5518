#!/bin/bash
# The harness itself: a test that fails half-way still kills what it
# started (by PID) and removes its temp dir.
. "$HP_TEST_LIB/harness.sh"
ht_begin "harness"

out=$HT_TMP/inner.out
# An inner test that spawns two sleepers, then dies on a failing command.
bash -c '
	. "$HP_TEST_LIB/harness.sh"
	ht_begin inner
	ht_spawn sleep 300; p1=$HT_LAST_PID
	ht_spawn sleep 300; p2=$HT_LAST_PID
	echo "$p1 $p2 $HT_TMP"
	false || exit 3
' >"$out" 2>&1
rc=$?
read -r p1 p2 tmp <"$out"
ht_eq "inner test exit status kept" 3 "$rc"
ht_expect_fail "first spawned PID killed" ESRCH "kill: .*$p1" kill -0 "$p1"
ht_expect_fail "second spawned PID killed" ESRCH "kill: .*$p2" kill -0 "$p2"
ht_expect_fail "inner temp dir removed" ENOENT "stat: .*$tmp" stat "$tmp"

# A process the inner test did not start survives its teardown.
sleep 300 &
bystander=$!
ht_track_pid "$bystander"
bash -c '. "$HP_TEST_LIB/harness.sh"; ht_begin inner2; ht_spawn sleep 300; exit 0'
ht_check "a process the test did not start is left alone" kill -0 "$bystander"

# ht_expect_fail takes only the failure it is told: the errno's words or the
# exact status, and the message. Each case runs in an inner test; its "ok" or
# "not ok" line is the verdict.
verdict() {
	bash -c '. "$HP_TEST_LIB/harness.sh"; ht_begin inner; '"$1"'; ht_end' 2>/dev/null |
		sed -n 's/^\(ok\|not ok\) 1 - .*/\1/p'
}
ht_eq "expect_fail: the errno and message expected" ok \
	"$(verdict "ht_expect_fail d ENOENT 'cat: .*nope' cat \$HT_TMP/nope")"
ht_eq "expect_fail: another errno is not taken" "not ok" \
	"$(verdict "ht_expect_fail d EACCES 'cat: .*nope' cat \$HT_TMP/nope")"
ht_eq "expect_fail: the right errno, another message, is not taken" "not ok" \
	"$(verdict "ht_expect_fail d ENOENT 'other' cat \$HT_TMP/nope")"
ht_eq "expect_fail: a dead mount (ENOTCONN) is not taken for a refusal" "not ok" \
	"$(verdict "ht_expect_fail d 1 'x' sh -c 'echo x: Transport endpoint is not connected >&2; exit 1'")"
ht_eq "expect_fail: the exact exit status" ok "$(verdict "ht_expect_fail d 3 '' sh -c 'exit 3'")"
ht_eq "expect_fail: another exit status is not taken" "not ok" \
	"$(verdict "ht_expect_fail d 1 '' sh -c 'exit 2'")"
ht_eq "expect_fail: '' means no output" "not ok" \
	"$(verdict "ht_expect_fail d 1 '' sh -c 'echo noise; exit 1'")"
ht_eq "expect_fail: success is not taken" "not ok" "$(verdict "ht_expect_fail d 1 '' true")"

ht_end
