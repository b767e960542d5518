#!/bin/bash
# The store through hp: init, keys, import of every bundle format, list,
# show, log, hostile and refused bundles (HEAD must not move), concurrent
# imports from several processes, pull/push against a local bare repo.
. "$HP_TEST_LIB/harness.sh"
ht_begin "store"

MK=${HP_MKBUNDLE:-$HP_BUILD_ROOT/tests/lib/hp-mkbundle}
S=$HT_TMP/store.git
export HP_STORE=$S
hp() { "$HP_BIN" "$@"; }
head_of() { git --git-dir="$1" rev-parse -q --verify HEAD 2>/dev/null || echo none; }
ncommits() { git --git-dir="$1" rev-list --count HEAD 2>/dev/null || echo 0; }
# A test bundle for sample-server build aa01 unless -t/-i say otherwise (the last one wins).
mk() { "$MK" -t sample-server -i aa01 "$@"; }

# ---- init and keys ---------------------------------------------------------
ht_check "store init" hp store init
ht_check "log of an empty store" hp log
ht_eq "an empty store lists nothing" "[]" "$(hp list --json)"
ht_expect_fail "store init twice fails" 1 "^hp store init: .*already a store" hp store init
ht_match "init twice: one clear line" '^hp store init: store .* already a store$' \
	"$(hp store init 2>&1)"
ht_check "key generate" hp key generate "$HT_TMP/k"
ht_eq "secret key is 0600" 600 "$(stat -c %a "$HT_TMP/k/hotpatch.key")"
ht_expect_fail "key generate does not overwrite" 1 "^hp key generate: .*a key is already there \\(not overwritten\\)" hp key generate "$HT_TMP/k"
ht_check "key generate (second, untrusted)" hp key generate "$HT_TMP/k2"
ht_check "key trust" hp key trust "$HT_TMP/k/hotpatch.pub"
ht_expect_fail "key trust of a non-key fails" 1 "^hp key trust: .*not a hotpatch public key" hp key trust "$HT_TMP/k/hotpatch.key"
ht_eq "trust made one commit" 1 "$(ncommits "$S")"
K=$HT_TMP/k/hotpatch.key
K2=$HT_TMP/k2/hotpatch.key

# ---- usage errors, global options, help ---------------------------------------
# usage DESCRIPTION ARGS...: exit 2 and one "hp: usage:" line on stderr, nothing on stdout.
usage() {
	local desc=$1 out err st
	shift
	out=$(hp "$@" 2>"$HT_TMP/usage.err")
	st=$?
	err=$(cat "$HT_TMP/usage.err")
	if [ "$st" -eq 2 ] && [ -z "$out" ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] &&
		printf '%s' "$err" | grep -Eq '^hp: usage: hp '; then
		ht_ok "usage error: $desc"
	else
		ht_not_ok "usage error: $desc"
		printf '#   status %s, stdout: %s\n#   stderr: %s\n' "$st" "$out" "$err" >&2
	fi
}
usage "import without a bundle" import
usage "import with an unknown option" import --frob x.tar
usage "list with two arguments" list 2026.01 2026.04
usage "show without a set" show
usage "log with an argument" log 2026.01
usage "store without a subcommand" store
usage "store init with an unknown option" store init --frob
usage "store init --baseline-months without a value" store init --baseline-months
usage "store pull without a remote" store pull
usage "key without a subcommand" key
usage "key with an unknown subcommand" key frob x
ht_eq "unknown command: exit 2" 2 "$(hp frobnicate >/dev/null 2>&1; echo $?)"
ht_match "hp help shows --baseline-months" \
	'hp store init \[--allow-unsigned\] \[--baseline-months M,M,...\]' "$(hp help)"
ht_check "hp --store DIR before the command" hp --store "$S" log
ht_check "hp CMD --store DIR after it" hp log --store "$S"
ht_check "hp CMD --store=DIR" hp log --store="$S"
ht_check "--store beats HP_STORE" env HP_STORE="$HT_TMP/nowhere" "$HP_BIN" log --store "$S"
err=$(HP_STORE=$HT_TMP/nowhere "$HP_BIN" log 2>&1 >/dev/null)
ht_eq "HP_STORE names the store: a missing one is one line, exit 1" \
	"hp log: store $HT_TMP/nowhere: not a hotpatch store (run hp store init)|1" \
	"$err|$(HP_STORE=$HT_TMP/nowhere "$HP_BIN" log >/dev/null 2>&1; echo $?)"
ht_expect_fail "store init --baseline-months 13 fails" 1 "^hp store init: baseline months .13.: expected month numbers 1-12" hp store init --store "$HT_TMP/m13.git" --baseline-months 13
ht_eq "store init --baseline-months 13: one clear line, nothing created" \
	"hp store init: baseline months '13': expected month numbers 1-12, comma-separated|no" \
	"$(hp store init --store "$HT_TMP/m13.git" --baseline-months 13 2>&1)|$([ -e "$HT_TMP/m13.git" ] && echo yes || echo no)"

# ---- import every format ---------------------------------------------------
B=$HT_TMP/b
mkdir -p "$B"
mk -b 2026.01 -m 2026-02 -n fix-tar -k "$K" -t sample-server -i aa01 -c CVE-2026-0001 -o "$B/a.tar"
mk -b 2026.01 -m 2026-02 -n fix-gz -k "$K" -t other-server -i bb01 -o "$B/b.tar.gz"
mk -b 2026.01 -m 2026-03 -n fix-xz -k "$K" -t sample-server -i aa01 -o "$B/c.tar.xz"
mk -b 2026.04 -m 2026-05 -n fix-zip -k "$K" -t sample-server -i aa02 -o "$B/d.zip"
for f in a.tar b.tar.gz c.tar.xz d.zip; do
	ht_check "import $f" hp import "$B/$f"
done
ht_eq "one commit per import" 5 "$(ncommits "$S")"
ht_eq "git log names each set" "import 2026.04/2026-05/fix-zip" \
	"$(git --git-dir="$S" log -1 --format=%s)"
ht_match "commit body has target, build-id, cve, signer" \
	'target sample-server.*build-id aa01.*cve CVE-2026-0001.*signer [0-9a-f]{16}' \
	"$(git --git-dir="$S" log --format=%B --grep='fix-tar' | tr '\n' ' ')"
ht_match "tree layout" '^2026\.01/2026-02/fix-tar/manifest$' \
	"$(git --git-dir="$S" ls-tree -r --name-only HEAD | grep fix-tar/manifest)"
ht_match "BASELINE lists both targets" 'target sample-server aa01.*target other-server bb01' \
	"$(git --git-dir="$S" show HEAD:2026.01/BASELINE | tr '\n' ' ')"
ht_match "BASELINE says planned" 'kind planned' "$(git --git-dir="$S" show HEAD:2026.01/BASELINE)"

# A bundle around a real fixture target and a real patch object.
FT=$HP_BUILD_ROOT/tests/fixtures/engine/engine-target-pie
FP=$HP_BUILD_ROOT/tests/fixtures/engine/engine-patch-a.so
bid=$(readelf -n "$FT" 2>/dev/null | awk '/Build ID/ {print $3}')
ht_match "fixture target has a build-id" '^[0-9a-f]{16,}$' "$bid"
F=$HT_TMP/fixture.git
hp store init --store "$F" >/dev/null
hp key trust --store "$F" "$HT_TMP/k/hotpatch.pub" >/dev/null
mk -b 2026.04 -m 2026-06 -n fixture -t engine-target-pie -i "$bid" -p "$FP" -k "$K" -o "$B/fixture.tar.xz"
ht_check "import a bundle of a fixture target" hp import --store "$F" "$B/fixture.tar.xz"
ht_match "show: the fixture's build-id" "build-id +$bid" "$(hp show --store "$F" 2026.04/2026-06/fixture)"
ht_check "stored patch.so is the fixture's patch object" \
	cmp <(git --git-dir="$F" show HEAD:2026.04/2026-06/fixture/patch.so) "$FP"

# ---- the author's flow: hp build, import, list, show, log ---------------------
# A fixture target whose compute() the patch replaces, calling BIN's static
# helper bump() and reading its static variable counter.
AT=$HP_BUILD_ROOT/tests/fixtures/author/author-target
APATCH=$HP_SOURCE_ROOT/tests/fixtures/author/patch-static.c
abid=$(readelf -n "$AT" 2>/dev/null | awk '/Build ID/ {print $3}')
A=$HT_TMP/author.git
ht_check "author: key generate" hp key generate "$HT_TMP/ak"
ht_check "author: store init" hp store init --store "$A"
ht_check "author: key trust" hp --store "$A" key trust "$HT_TMP/ak/hotpatch.pub"
for month in 2026-02 2026-03; do
	ht_check "author: hp build $month (static helper and data)" hp build --target "$AT" \
		--baseline 2026.01 --month "$month" --name fix-compute --sign "$HT_TMP/ak/hotpatch.key" \
		--cve CVE-2026-0042 --description "compute overflow" -o "$B/author-$month.tar.xz" "$APATCH"
	ht_eq "author: hp import $month" "imported 2026.01/$month/fix-compute" \
		"$(hp import "$B/author-$month.tar.xz" --store "$A")"
done
ht_eq "author: hp list" "2026.01/2026-02/fix-compute 2026.01/2026-03/fix-compute" \
	"$(hp list --store "$A" | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')"
ht_match "author: hp list BASELINE" "^2026.01/2026-02/fix-compute +author-target +$abid
2026.01/2026-03/fix-compute +author-target +$abid$" "$(hp --store "$A" list 2026.01)"
ht_match "author: hp list BASELINE/MONTH" "^2026.01/2026-03/fix-compute +author-target +$abid$" \
	"$(hp list 2026.01/2026-03 --store "$A")"
show=$(hp show --store "$A" 2026.01/2026-02/fix-compute)
ht_match "author: show: target and build-id" "target +author-target.*build-id +$abid" "$(printf '%s' "$show" | tr '\n' ' ')"
ht_match "author: show: the replaced function" \
	"^func +compute 0x$(nm "$AT" | awk '$3 == "compute" {sub(/^0+/, "", $1); print $1}') [0-9]+$" \
	"$(printf '%s\n' "$show" | grep '^func')"
ht_match "author: show: cve, description, signer" 'description +compute overflow.*cve +CVE-2026-0042.*signer +[0-9a-f]{16} \(verified\)' \
	"$(printf '%s' "$show" | tr '\n' ' ')"
json=$(hp show 2026.01/2026-02/fix-compute --json --store "$A")
ht_eq "author: show --json" "fix-compute|author-target|$abid|compute|2|true|CVE-2026-0042" \
	"$(printf '%s' "$json" | jq -r '[.name, .target, .build_id, .funcs[0].name, .syms, .signed, .cves[0]] | join("|")')"
ht_eq "author: hp log: trust, then one line per import, newest first" \
	"trust key import 2026.01/2026-02/fix-compute import 2026.01/2026-03/fix-compute" \
	"$(hp log --store "$A" | tac | cut -d' ' -f3- | sed 's/ [0-9a-f]*$//' | tr '\n' ' ' | sed 's/ $//')"
ht_eq "author: git log: one commit per import" "2 imports, 3 commits" \
	"$(git --git-dir="$A" log --format=%s | grep -c '^import ') imports, $(ncommits "$A") commits"
ht_eq "author: BASELINE lists the target" "target author-target $abid" \
	"$(git --git-dir="$A" show HEAD:2026.01/BASELINE | grep '^target ')"

out=$(hp import "$B/a.tar")
ht_match "re-import of the same bytes: success, says so" '^already imported 2026.01/2026-02/fix-tar$' "$out"
ht_eq "re-import made no commit" 5 "$(ncommits "$S")"

# ---- list, show, log --------------------------------------------------------
ht_eq "list shows 4 sets" 4 "$(hp list | wc -l)"
ht_eq "list BASELINE" 3 "$(hp list 2026.01 | wc -l)"
ht_match "list BASELINE/MONTH" '^2026.01/2026-03/fix-xz +sample-server +aa01$' "$(hp list 2026.01/2026-03)"
ht_expect_fail "list of an unknown baseline fails" 1 "^hp list: .*2030.01" hp list 2030.01
ht_eq "list --json of an unknown baseline: a JSON error on stdout, one line on stderr" \
	'{"command":"list","result":"ENOENT","error":"no baseline 2030.01 in the store"}|hp list: no baseline 2030.01 in the store' \
	"$(hp list --json 2030.01 2>"$HT_TMP/l.err")|$(cat "$HT_TMP/l.err")"
ht_match "list --json" '"set": "2026.04/2026-05/fix-zip".*"build_id": "aa02"' "$(hp list --json)"
show=$(hp show 2026.01/2026-02/fix-tar)
ht_match "show: target" 'target +sample-server' "$show"
ht_match "show: build-id" 'build-id +aa01' "$show"
ht_match "show: cve" 'cve +CVE-2026-0001' "$show"
ht_match "show: files" 'files +manifest [0-9]+, patch.so [0-9]+, signature [0-9]+ bytes' "$show"
ht_match "show: signer verified" 'signer +[0-9a-f]{16} \(verified\)' "$show"
ht_match "show --json (store after the args)" '"signed": true, "signer": "[0-9a-f]{16}"' \
	"$(hp show 2026.01/2026-02/fix-tar --json --store "$S")"
ht_expect_fail "show of a missing set fails" 1 "^hp show: .*nope" hp show 2026.01/2026-02/nope
ht_eq "log: one line per commit" 5 "$(hp log | wc -l)"
ht_match "log line: date id message" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z [0-9a-f]{12} import 2026.04/2026-05/fix-zip$' \
	"$(hp log | head -1)"
ht_match "log --json" '"summary": "trust key [0-9a-f]{16}"' "$(hp log --json)"

# ---- refused bundles: a clear line, HEAD does not move ----------------------
# refuse DESCRIPTION PATTERN BUNDLE [hp import options]
# The store is $RS when set, else $S.
refuse() {
	local desc=$1 pat=$2 bundle=$3; shift 3
	local before after err status st=${RS:-$S}
	before=$(head_of "$st")
	err=$(hp import --store "$st" "$@" "$bundle" 2>&1 >/dev/null)
	status=$?
	after=$(head_of "$st")
	if [ "$status" -ne 0 ] && [ "$before" = "$after" ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] &&
		printf '%s' "$err" | grep -Eq -- "$pat"; then
		ht_ok "refused: $desc"
	else
		ht_not_ok "refused: $desc"
		printf '#   status %s, head %s -> %s\n#   stderr: %s\n' "$status" "$before" "$after" "$err" >&2
	fi
}
for kind in traversal absolute symlink hardlink device fifo dir duplicate unknown; do
	mk -b 2026.01 -m 2026-02 -n "h-$kind" -k "$K" -H "$kind" -o "$B/h-$kind.tar"
done
mk -b 2026.01 -m 2026-02 -n h-bomb -k "$K" -H bomb -o "$B/h-bomb.tar.gz"
mk -b 2026.01 -m 2026-02 -n h-zbomb -k "$K" -H bomb -o "$B/h-zbomb.zip"
mk -b 2026.01 -m 2026-02 -n h-garbage -H garbage -o "$B/h-garbage.tar"
ht_match "the gzip bomb is small" '^[0-9]{1,6}$' "$(stat -c %s "$B/h-bomb.tar.gz")"
refuse "path traversal" "path traversal" "$B/h-traversal.tar"
refuse "absolute path" "absolute path" "$B/h-absolute.tar"
refuse "symlink" "symbolic link" "$B/h-symlink.tar"
refuse "hardlink" "hard link" "$B/h-hardlink.tar"
refuse "device node" "character device" "$B/h-device.tar"
refuse "fifo" "fifo" "$B/h-fifo.tar"
refuse "directory member" "directory" "$B/h-dir.tar"
refuse "duplicate member" "appears twice" "$B/h-duplicate.tar"
refuse "unknown member" "unknown member 'README'" "$B/h-unknown.tar"
refuse "gzip bomb" "declares [0-9]+ bytes, over the limit" "$B/h-bomb.tar.gz"
refuse "zip bomb without sizes" "larger than 33554432 bytes" "$B/h-zbomb.zip"
refuse "garbage bytes" "not a (valid )?bundle archive" "$B/h-garbage.tar"
refuse "missing file" "No such file" "$B/nonexistent.tar"
: >"$B/empty.tar"
refuse "empty file" "empty.tar: empty bundle$" "$B/empty.tar"
mk -b 2026.01 -m 2026-02 -n trunc -k "$K" -o "$B/whole.tar"
mk -b 2026.01 -m 2026-02 -n trunc -k "$K" -o "$B/whole.tar.gz"
head -c 1536 "$B/whole.tar" >"$B/trunc.tar"
head -c $(($(stat -c %s "$B/whole.tar.gz") / 2)) "$B/whole.tar.gz" >"$B/trunc.tar.gz"
refuse "truncated tar" "member '[a-z.]+': Truncated tar archive" "$B/trunc.tar"
refuse "truncated tar.gz" "truncated gzip input" "$B/trunc.tar.gz"
# A signed bundle whose manifest was edited after signing.
mkdir -p "$B/tm"
tar xf "$B/whole.tar" -C "$B/tm"
sed -i 's/^description .*/description harmless, trust me/' "$B/tm/manifest"
tar cf "$B/tampered-manifest.tar" -C "$B/tm" manifest patch.so signature
refuse "tampered manifest" "bad signature by key [0-9a-f]{16}" "$B/tampered-manifest.tar"
# ... and one whose patch.so and patch-sha256 were both replaced.
printf 'evil code\n' >"$B/tm/patch.so"
sed -i "s/^patch-sha256 .*/patch-sha256 $(sha256sum "$B/tm/patch.so" | cut -d' ' -f1)/" "$B/tm/manifest"
tar cf "$B/tampered-both.tar" -C "$B/tm" manifest patch.so signature
refuse "tampered patch.so with a matching patch-sha256" "bad signature" "$B/tampered-both.tar"
for b in 2026-01 2026.13 2026.00 26.01 2026.1; do
	mk -b "$b" -m 2026-02 -n badbase -k "$K" -o "$B/badbase-$b.tar"
	refuse "baseline '$b' is not YYYY.MM" "baseline: invalid value '$b'" "$B/badbase-$b.tar"
done

# Bundles refused for their signature write no object into the repository.
objects() { git --git-dir="$1" count-objects -v | awk '/^(count|in-pack):/ { n += $2 } END { print n }'; }
mk -b 2026.01 -m 2026-02 -n noobj-unsigned -o "$B/noobj-unsigned.tar"
mk -b 2026.01 -m 2026-02 -n noobj-untrusted -k "$K2" -o "$B/noobj-untrusted.tar"
mkdir -p "$B/noobj"
mk -b 2026.01 -m 2026-02 -n noobj-tampered -k "$K" -o "$B/noobj-signed.tar"
tar xf "$B/noobj-signed.tar" -C "$B/noobj"
sed -i 's/^description .*/description edited after signing/' "$B/noobj/manifest"
tar cf "$B/noobj-tampered.tar" -C "$B/noobj" manifest patch.so signature
n0=$(objects "$S")
for f in noobj-unsigned noobj-untrusted noobj-tampered; do
	refuse "$f" "unsigned|untrusted key|bad signature" "$B/$f.tar"
done
ht_eq "refused for the signature: no object written" "$n0" "$(objects "$S")"

mk -b 2026.01 -m 2026-02 -n unsigned -o "$B/unsigned.tar"
mk -b 2026.01 -m 2026-02 -n untrusted -k "$K2" -o "$B/untrusted.tar"
mk -b 2026.01 -m 2026-02 -n tampered -k "$K" --tamper -o "$B/tampered.tar"
mk -b 2026.01 -m 2026-04 -n late -k "$K" -o "$B/late.tar"
mk -b 2026.01 -m 2025-12 -n before -k "$K" -o "$B/before.tar"
mk -b 2026.01 -m 2026-03 -n rebuilt -k "$K" -t sample-server -i cc99 -o "$B/rebuilt.tar"
mk -b 2026.01 -m 2026-02 -n fix-tar -k "$K" -t sample-server -i aa01 -c CVE-2026-9999 -o "$B/same-id.tar"
refuse "unsigned" "unsigned" "$B/unsigned.tar"
refuse "untrusted key" "untrusted key [0-9a-f]{16}" "$B/untrusted.tar"
refuse "tampered patch.so" "patch-sha256" "$B/tampered.tar"
refuse "month outside the window" "outside baseline 2026.01's window \(2026-02..2026-03\); use --force" "$B/late.tar"
refuse "month before the baseline" "outside baseline" "$B/before.tar"
mk -b 2026.01 -m 2026-13 -n badmonth -k "$K" -o "$B/badmonth.tar"
refuse "malformed month" "month: invalid value '2026-13'" "$B/badmonth.tar"
refuse "target rebuilt within a baseline" "has target sample-server with build-id aa01, not cc99" "$B/rebuilt.tar"
refuse "same set id, other contents" "already in the store with different contents" "$B/same-id.tar"
ht_check "--force takes a month outside the window" hp import --force "$B/late.tar"

# Several bundles at once: one line each, non-zero if any failed.
mk -b 2026.01 -m 2026-03 -n multi -t multi-t -i dd01 -k "$K" -o "$B/multi.tar"
n0=$(ncommits "$S")
out=$(hp import "$B/multi.tar" "$B/unsigned.tar" 2>&1)
ht_eq "mixed import exits 1" 1 "$?"
ht_eq "mixed import: one line each" 2 "$(printf '%s\n' "$out" | wc -l)"
ht_eq "mixed import: the good one committed" $((n0 + 1)) "$(ncommits "$S")"

# An unplanned baseline, and a store that allows unsigned sets.
mk -b 2026.02 -m 2026-04 -n unpl -k "$K" -o "$B/unpl.tar"
ht_check "unplanned baseline imports" hp import "$B/unpl.tar"
ht_match "BASELINE says unplanned" 'kind unplanned' "$(git --git-dir="$S" show HEAD:2026.02/BASELINE)"
U=$HT_TMP/unsigned.git
ht_check "init --allow-unsigned --baseline-months" hp store init --store "$U" --allow-unsigned --baseline-months 1,7
ht_check "unsigned import into an allow-unsigned store" hp import --store "$U" "$B/unsigned.tar"
mk -b 2026.01 -m 2026-06 -n june -o "$B/june.tar"
ht_check "baseline months 1,7: June is in January's window" hp import --store "$U" "$B/june.tar"
ht_match "show says unsigned" 'signer +none' "$(hp show --store "$U" 2026.01/2026-02/unsigned)"
ht_expect_fail "untrusted signature still refused" 1 "^hp import: .*signed by untrusted key [0-9a-f]+ \\(see hp key trust\\)" hp import --store "$U" "$B/untrusted.tar"
ht_eq "the configured baseline months are in the store's config" "1,7" \
	"$(git --git-dir="$U" config hotpatch.baselinemonths)"
# The cycle, both stores: planned baselines' windows end before the next
# baseline month; unplanned ones (marked) have the next two months.
mk -b 2026.02 -m 2026-05 -n unpl-late -k "$K" -o "$B/unpl-late.tar"
refuse "unplanned baseline: third month" "month 2026-05 is outside baseline 2026.02's window \(unplanned, 2026-03..2026-04\); use --force" \
	"$B/unpl-late.tar"
mk -b 2026.01 -m 2026-07 -n july -o "$B/july.tar"
RS=$U refuse "baseline months 1,7: July is the next baseline's" "outside baseline 2026.01's window \(2026-02..2026-06\)" "$B/july.tar"
ht_check "baseline months 1,7: --force takes July" hp import --store "$U" --force "$B/july.tar"
mk -b 2026.04 -m 2026-06 -n april -o "$B/april.tar"
mk -b 2026.04 -m 2026-07 -n april-late -o "$B/april-late.tar"
ht_check "baseline months 1,7: 2026.04 is unplanned, imports" hp import --store "$U" "$B/april.tar"
ht_match "baseline months 1,7: 2026.04's BASELINE says unplanned" 'kind unplanned' \
	"$(git --git-dir="$U" show HEAD:2026.04/BASELINE)"
RS=$U refuse "baseline months 1,7: unplanned 2026.04, third month" "\(unplanned, 2026-05..2026-06\)" "$B/april-late.tar"
mk -b 2026.07 -m 2026-12 -n dec -o "$B/dec.tar"
ht_check "baseline months 1,7: 2026.07 is planned, December in its window" hp import --store "$U" "$B/dec.tar"
ht_match "baseline months 1,7: 2026.07's BASELINE says planned" 'kind planned' \
	"$(git --git-dir="$U" show HEAD:2026.07/BASELINE)"

# ---- concurrency: 4 processes x 25 bundles ----------------------------------
C=$HT_TMP/conc.git
hp store init --store "$C" >/dev/null
hp key trust --store "$C" "$HT_TMP/k/hotpatch.pub" >/dev/null
for p in 0 1 2 3; do
	mkdir -p "$B/p$p"
	mk -b 2026.01 -m 2026-02 -n "p$p" -t "t$p" -i "c$p" -k "$K" -N 25 -o "$B/p$p"
done
pids=()
for p in 0 1 2 3; do
	ht_spawn "$HP_BIN" import --store "$C" "$B"/p$p/*.tar
	pids+=("$HT_LAST_PID")
done
fails=0
for pid in "${pids[@]}"; do
	wait "$pid" || fails=$((fails + 1))
done
ht_eq "4 concurrent importers all succeed" 0 "$fails"
ht_eq "exactly 100 new commits" 101 "$(ncommits "$C")"
ht_eq "100 sets listed" 100 "$(hp list --store "$C" | wc -l)"
ht_check "repository is consistent (git fsck)" git --git-dir="$C" fsck --no-progress

# ---- pull and push against a local bare repository --------------------------
R=$HT_TMP/remote.git
git init -q --bare "$R"
ht_check "push to an empty bare remote" hp store push "$R"
ht_eq "remote has our HEAD" "$(head_of "$S")" "$(git --git-dir="$R" rev-parse refs/heads/main)"
O=$HT_TMP/other.git
hp store init --store "$O" >/dev/null
ht_check "pull into an empty store" hp store pull --store "$O" "$R"
ht_eq "pulled store has the same HEAD" "$(head_of "$S")" "$(head_of "$O")"
ht_eq "pulled store lists the same sets" "$(hp list)" "$(hp list --store "$O")"
mk -b 2026.01 -m 2026-03 -n after-push -t after-t -i dd02 -k "$K" -o "$B/after.tar"
hp import "$B/after.tar" >/dev/null
ht_check "push a fast-forward" hp store push "$R"
ht_check "pull a fast-forward" hp store pull --store "$O" "$R"
ht_eq "fast-forwarded" "$(head_of "$S")" "$(head_of "$O")"
ht_match "pull again: up to date" 'already up to date' "$(hp store pull --store "$O" "$R")"
# Diverge: a commit only in O, another only in the remote.
hp key trust --store "$O" "$HT_TMP/k2/hotpatch.pub" >/dev/null
mk -b 2026.01 -m 2026-03 -n diverge -t diverge-t -i dd03 -k "$K" -o "$B/diverge.tar"
hp import "$B/diverge.tar" >/dev/null
hp store push "$R" >/dev/null
before=$(head_of "$O")
err=$(hp store pull --store "$O" "$R" 2>&1)
ht_eq "diverged pull exits 1" 1 "$?"
ht_match "diverged pull: clear line" '^hp store pull: .* have diverged: refusing \(fast-forward only\)$' "$err"
ht_eq "diverged pull: HEAD unchanged" "$before" "$(head_of "$O")"
ht_expect_fail "diverged push refused" 1 "^hp store push: .*has commits this store lacks: refusing \\(pull first\\)" hp store push --store "$O" "$R"
ht_expect_fail "pull from a non-repository fails" 1 "^hp store pull: .*nothing: no such repository" hp store pull "$HT_TMP/nothing"
# The other direction: a host that pulled imports and pushes; the first pulls it.
P=$HT_TMP/third.git
hp store init --store "$P" >/dev/null
ht_check "third store pulls the remote" hp store pull --store "$P" "$R"
mk -b 2026.01 -m 2026-03 -n from-third -t third-t -i dd04 -k "$K" -o "$B/third.tar"
ht_check "third store imports (it trusts what it pulled)" hp import --store "$P" "$B/third.tar"
ht_check "third store pushes" hp store push --store "$P" "$R"
ht_check "first store pulls the third's import" hp store pull "$R"
ht_eq "both at the same HEAD" "$(head_of "$P")" "$(head_of "$S")"
ht_match "first store lists the third's set" '^2026.01/2026-03/from-third ' "$(hp list 2026.01/2026-03 | grep from-third)"
before=$(git --git-dir="$R" rev-parse refs/heads/main)
err=$(hp store push --store "$O" "$R" 2>&1 >/dev/null)
ht_match "diverged push: one clear line" '^hp store push: .* has commits this store lacks: refusing \(pull first\)$' "$err"
ht_eq "diverged push: the remote did not move" "$before" "$(git --git-dir="$R" rev-parse refs/heads/main)"
ht_match "pull from a missing path: clear line" "no such repository" "$(hp store pull "$HT_TMP/nothing" 2>&1)"

ht_end
