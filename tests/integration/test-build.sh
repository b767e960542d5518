#!/bin/bash
# hp build through the real CLI: bundles in every format, the manifest as a
# shell user reads it, offsets as nm sees them, stripped BIN + --debug, a
# prebuilt .so, and every refusal as one line on stderr with no bundle left.
. "$HP_TEST_LIB/harness.sh"
ht_begin "build"

FIX=$HP_SOURCE_ROOT/tests/fixtures/author
BIN=$HP_BUILD_ROOT/tests/fixtures/author/author-target
NOPIE=$HP_BUILD_ROOT/tests/fixtures/author/author-target-nopie
NOBID=$HP_BUILD_ROOT/tests/fixtures/author/author-target-nobid
OUT=$HT_TMP/out
mkdir -p "$OUT" "$HT_TMP/tmp"
# hp build's private temp dirs land here, so the test can see they go.
export TMPDIR=$HT_TMP/tmp

# hp build with the usual set options; extra arguments follow.
build() {
	"$HP_BIN" build --target "$BIN" --baseline 2026.01 --month 2026-02 --name fix-1 "$@"
}

# nm's address of a defined symbol, as 0x-hex without leading zeros.
nm_addr() {
	local v
	v=$(nm --defined-only "$1" | awk -v s="$2" '$3 == s { print $1; exit }')
	printf '0x%x' "$((16#$v))"
}
nm_size() {
	local v
	v=$(nm -S --defined-only "$1" | awk -v s="$2" '$4 == s { print $2; exit }')
	printf '0x%x' "$((16#$v))"
}

# refuse DESCRIPTION EXPECTED-STDERR-REGEX ARGS...: exit 1, exactly one line
# on stderr matching, nothing at the output path.
refuse() {
	local desc=$1 re=$2 out=$OUT/refused.tar.gz err st
	shift 2
	err=$(build -o "$out" "$@" 2>&1 >/dev/null)
	st=$?
	ht_eq "$desc: exit 1" 1 "$st"
	ht_match "$desc: message" "^hp build: $re\$" "$err"
	ht_eq "$desc: one line on stderr" 1 "$(printf '%s\n' "$err" | wc -l)"
	ht_eq "$desc: nothing left in the output directory" "" "$(ls -A "$OUT")"
}

# ---- a good patch, every bundle format --------------------------------------
ht_check "build .tar.gz" build -o "$OUT/set.tar.gz" "$FIX/patch-good.c"
ht_eq "tar lists manifest and patch.so" "manifest patch.so" \
	"$(tar tzf "$OUT/set.tar.gz" | sort | tr '\n' ' ' | sed 's/ $//')"
tar xzf "$OUT/set.tar.gz" -C "$OUT" manifest
ht_match "manifest readable with cat" '^hotpatch-manifest 1$' "$(head -1 "$OUT/manifest")"
ht_match "manifest names the set" '^name fix-1$' "$(cat "$OUT/manifest")"
ht_eq "manifest target is BIN's file name" "target author-target" \
	"$(grep '^target ' "$OUT/manifest")"
bid=$(readelf -n "$BIN" | awk '/Build ID/ { print $3 }')
ht_eq "manifest build-id is BIN's (readelf)" "build-id $bid" "$(grep '^build-id ' "$OUT/manifest")"
ht_eq "func compute at nm's address and size" \
	"func compute $(nm_addr "$BIN" compute) $(nm_size "$BIN" compute)" \
	"$(grep '^func compute ' "$OUT/manifest")"
ht_eq "func greet at nm's address and size" \
	"func greet $(nm_addr "$BIN" greet) $(nm_size "$BIN" greet)" \
	"$(grep '^func greet ' "$OUT/manifest")"
ht_eq "libc symbols are not recorded" "" "$(grep '^sym ' "$OUT/manifest" || true)"
tar xzf "$OUT/set.tar.gz" -C "$OUT" patch.so
ht_eq "patch-sha256 is patch.so's" "patch-sha256 $(sha256sum "$OUT/patch.so" | cut -d' ' -f1)" \
	"$(grep '^patch-sha256 ' "$OUT/manifest")"
rm -f "$OUT/manifest" "$OUT/patch.so" "$OUT/set.tar.gz"

ht_check "build .tar" build -o "$OUT/set.tar" "$FIX/patch-good.c"
ht_eq ".tar lists its members" "manifest patch.so" "$(tar tf "$OUT/set.tar" | sort | tr '\n' ' ' | sed 's/ $//')"
ht_check "build .tar.xz" build -o "$OUT/set.tar.xz" "$FIX/patch-good.c"
ht_eq ".tar.xz lists its members" "manifest patch.so" "$(tar tJf "$OUT/set.tar.xz" | sort | tr '\n' ' ' | sed 's/ $//')"
ht_check "build .tgz" build -o "$OUT/set.tgz" "$FIX/patch-good.c"
ht_check "tar reads the .tgz" tar tzf "$OUT/set.tgz"
ht_check "build .zip" build -o "$OUT/set.zip" "$FIX/patch-good.c"
ht_match "unzip lists the .zip's manifest" 'manifest' "$(unzip -l "$OUT/set.zip")"
rm -f "$OUT"/set.*

ln -s "$BIN" "$HT_TMP/a-link"
ht_check "BIN through a symlink" build --target "$HT_TMP/a-link" -o "$OUT/l.tar" "$FIX/patch-good.c"
ht_eq "target is the file's own name, not the link's" "target author-target" \
	"$(tar xOf "$OUT/l.tar" manifest | grep '^target ')"
rm -f "$OUT/l.tar"

# ---- statics, non-PIE, pick, description --------------------------------------
ht_check "patch using a static helper and variable" \
	build -o "$OUT/s.tar" --description "fix compute" --author "Sec <sec@example.com>" \
	--cve CVE-2026-0001 --active-ok compute "$FIX/patch-static.c"
m=$(tar xOf "$OUT/s.tar" manifest)
ht_eq "static helper recorded at nm's address" "sym bump $(nm_addr "$BIN" bump)" \
	"$(printf '%s\n' "$m" | grep '^sym bump ')"
ht_eq "static variable recorded at nm's address" "sym counter $(nm_addr "$BIN" counter)" \
	"$(printf '%s\n' "$m" | grep '^sym counter ')"
ht_match "active-ok flag" '^func compute 0x[0-9a-f]+ 0x[0-9a-f]+ active-ok$' \
	"$(printf '%s\n' "$m" | grep '^func compute')"
ht_match "description, author, cve" 'description fix compute.*author Sec <sec@example.com>.*cve CVE-2026-0001' \
	"$(printf '%s\n' "$m" | tr '\n' ' ')"
ht_match "created is UTC ISO 8601" '^created [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' \
	"$(printf '%s\n' "$m" | grep '^created')"
rm -f "$OUT/s.tar"

ht_check "non-PIE target" "$HP_BIN" build --target "$NOPIE" --baseline 2026.01 --month 2026-02 \
	--name fix-1 -o "$OUT/np.tar" "$FIX/patch-static.c"
ht_eq "non-PIE: absolute address of counter" "sym counter $(nm_addr "$NOPIE" counter)" \
	"$(tar xOf "$OUT/np.tar" manifest | grep '^sym counter ')"
rm -f "$OUT/np.tar"

ht_check "ambiguous helper with --pick" build -o "$OUT/p.tar" --pick helper@target-b.c "$FIX/patch-ambig.c"
helper_b=$(nm -a -p --defined-only "$BIN" | awk '$3 == "target-b.c" { f = 1; next } f && $3 == "helper" { print $1; exit }')
ht_eq "--pick records name@file at that file's helper" "func helper@target-b.c $(printf '0x%x' "$((16#$helper_b))") 0x5" \
	"$(tar xOf "$OUT/p.tar" manifest | grep '^func helper')"
rm -f "$OUT/p.tar"

# ---- human and JSON output ------------------------------------------------------
ht_match "human output says what was written" "^wrote $OUT/h.tar: 2026.01/2026-02/fix-1 for author-target" \
	"$(build -o "$OUT/h.tar" "$FIX/patch-good.c" 2>/dev/null)"
json=$(build --json -o "$OUT/j.tar" "$FIX/patch-static.c" 2>/dev/null)
ht_eq "--json: functions" "compute" "$(printf '%s' "$json" | jq -r '.functions[].name')"
ht_eq "--json: symbol offset" "$(( $(nm_addr "$BIN" counter) ))" \
	"$(printf '%s' "$json" | jq -r '.symbols[] | select(.name == "counter") | .offset')"
rm -f "$OUT/h.tar" "$OUT/j.tar"

# ---- stripped BIN + debug file ----------------------------------------------------
objcopy --only-keep-debug "$BIN" "$HT_TMP/author-target.debug"
strip -o "$HT_TMP/author-target" "$BIN"
ht_eq "the stripped copy has no static symbols" "" "$(nm "$HT_TMP/author-target" 2>/dev/null | grep -w counter || true)"
ht_check "stripped BIN + --debug" "$HP_BIN" build --target "$HT_TMP/author-target" \
	--debug "$HT_TMP/author-target.debug" --baseline 2026.01 --month 2026-02 --name fix-1 \
	-o "$OUT/d.tar" "$FIX/patch-static.c"
ht_eq "stripped + debug: same build-id" "build-id $bid" "$(tar xOf "$OUT/d.tar" manifest | grep '^build-id')"
ht_eq "stripped + debug: static variable found" "sym counter $(nm_addr "$BIN" counter)" \
	"$(tar xOf "$OUT/d.tar" manifest | grep '^sym counter ')"
rm -f "$OUT/d.tar"

# ---- prebuilt .so -------------------------------------------------------------------
${CC:-cc} -fPIC -shared -O2 -o "$HT_TMP/prebuilt.so" "$FIX/patch-static.c"
ht_check "prebuilt .so accepted" build -o "$OUT/pre.tar" "$HT_TMP/prebuilt.so"
ht_eq "prebuilt .so is the bundle's patch.so" "$(sha256sum <"$HT_TMP/prebuilt.so")" \
	"$(tar xOf "$OUT/pre.tar" patch.so | sha256sum)"
rm -f "$OUT/pre.tar"

# ---- signed ---------------------------------------------------------------------------
"$HP_BIN" key generate "$HT_TMP/keys" >/dev/null
ht_check "signed build" build --sign "$HT_TMP/keys/hotpatch.key" -o "$OUT/sig.tar.gz" "$FIX/patch-good.c"
ht_eq "signed bundle lists manifest, patch.so, signature" "manifest patch.so signature" \
	"$(tar tzf "$OUT/sig.tar.gz" | sort | tr '\n' ' ' | sed 's/ $//')"
ht_match "signature format" '^hotpatch-signature 1 ed25519 [0-9a-f]{16} [0-9a-f]{128}$' \
	"$(tar xzOf "$OUT/sig.tar.gz" signature)"
# The store takes it: a store that trusts the key imports it and verifies the signature.
ST=$HT_TMP/store.git
"$HP_BIN" store init --store "$ST" >/dev/null
"$HP_BIN" key trust --store "$ST" "$HT_TMP/keys/hotpatch.pub" >/dev/null
ht_eq "hp import takes the signed bundle" "imported 2026.01/2026-02/fix-1" \
	"$("$HP_BIN" import --store "$ST" "$OUT/sig.tar.gz" 2>&1)"
ht_match "hp show: signature verified" '^signer +[0-9a-f]{16} \(verified\)$' \
	"$("$HP_BIN" show --store "$ST" 2026.01/2026-02/fix-1 | grep '^signer')"
rm -f "$OUT/sig.tar.gz"

# ---- refusals -------------------------------------------------------------------------
refuse "missing function" 'function no_such_function: not in BIN' "$FIX/patch-missing.c"
refuse "too small" 'function nothing: 1 byte, too small for the 5-byte jump' "$FIX/patch-tiny.c"
refuse "ambiguous function" 'function helper: ambiguous in BIN \(target-a\.c, target-b\.c\): pick one with --pick helper@FILE' \
	"$FIX/patch-ambig.c"
refuse "ambiguous symbol" 'symbol helper: ambiguous in BIN \(target-a\.c, target-b\.c\): pick one with --pick helper@FILE' \
	"$FIX/patch-ambig-use.c"
refuse "undefined symbol" 'symbol mystery_helper needed by the patch: neither BIN nor its libraries provide it' \
	"$FIX/patch-undef.c"
refuse "compiler-made variant only" 'symbol scaled needed by the patch: neither BIN nor its libraries provide it \(BIN has only scaled\.part\.0, a compiler-made variant with another calling convention\)' \
	"$FIX/patch-variant.c"
refuse "thread-local storage" 'the patch defines thread-local variables: not supported' "$FIX/patch-tls.c"
refuse "bad baseline" "invalid baseline '2026-01' .*" --baseline 2026-01 "$FIX/patch-good.c"
refuse "bad month" "invalid month '2026-13' .*" --month 2026-13 "$FIX/patch-good.c"
refuse "bad name" "invalid patch-set name 'a/b' .*" --name a/b "$FIX/patch-good.c"
refuse "stripped BIN without --debug" 'function compute: not in BIN \(BIN is stripped: give its debug file with --debug\)' \
	--target "$HT_TMP/author-target" "$FIX/patch-static.c"
objcopy --only-keep-debug "$NOPIE" "$HT_TMP/nopie.debug"
refuse "debug file of another build" 'debug file .* is of another build .*' \
	--target "$HT_TMP/author-target" --debug "$HT_TMP/nopie.debug" "$FIX/patch-static.c"
refuse "no build-id" "BIN has no build-id: .*" --target "$NOBID" "$FIX/patch-good.c"
refuse "prebuilt .so with sources" 'a prebuilt patch object must be given alone' \
	"$HT_TMP/prebuilt.so" "$FIX/patch-good.c"

# A compile error: the compiler's diagnostics, then hp's one line last.
err=$(build -o "$OUT/refused.tar" "$FIX/patch-broken.c" 2>&1 >/dev/null)
ht_eq "compile error: exit 1" 1 "$(build -o "$OUT/refused.tar" "$FIX/patch-broken.c" >/dev/null 2>&1; echo $?)"
ht_match "compile error: last line says so" '^hp build: compiling the patch failed: .*patch-broken\.c:4:[0-9]+: error: ' \
	"$(printf '%s\n' "$err" | tail -1)"
ht_eq "compile error: no bundle" "" "$(ls -A "$OUT")"

# Usage errors: exit 2.
err=$("$HP_BIN" build --baseline 2026.01 --month 2026-02 --name x -o "$OUT/u.tar" "$FIX/patch-good.c" 2>&1)
ht_eq "no --target: exit 2" 2 "$("$HP_BIN" build --baseline 2026.01 --month 2026-02 --name x \
	-o "$OUT/u.tar" "$FIX/patch-good.c" >/dev/null 2>&1; echo $?)"
ht_eq "no --target: one line" "hp build: missing --target BIN (see hp build --help)" "$err"
ht_eq "no sources: one line" "hp build: missing SRC.c... or PATCH.so (or --diff) (see hp build --help)" \
	"$(build -o "$OUT/u.tar" 2>&1)"
ht_eq "--diff without --source: exit 2" 2 "$(build --diff "$FIX/patch-good.c" -o "$OUT/u.tar" >/dev/null 2>&1; echo $?)"
ht_eq "--diff without --source: one line" "hp build: missing --source DIR (see hp build --help)" \
	"$(build --diff "$FIX/patch-good.c" -o "$OUT/u.tar" 2>&1)"
refuse "--source without --diff" '--source and --compile-commands go with --diff' \
	--source "$FIX" "$FIX/patch-good.c"
refuse "sources and --diff" 'give either sources or --diff, not both' \
	--source "$FIX" --diff "$FIX/patch-good.c" "$FIX/patch-good.c"
refuse "a --diff that is not there" "$HT_TMP/none.patch: No such file or directory" \
	--source "$FIX" --diff "$HT_TMP/none.patch"
refuse "a --compile-commands that is not there" "--compile-commands $HT_TMP/cc.json: No such file or directory" \
	--source "$FIX" --diff "$FIX/patch-good.c" --compile-commands "$HT_TMP/cc.json"
refuse "a --diff that is no diff" "diff $FIX/patch-good.c: not a unified diff \\(no \\+\\+\\+ line\\)" \
	--source "$FIX" --diff "$FIX/patch-good.c"
ht_match "hp build --help shows every option" '--debug DEBUGFILE.*--pick NAME@FILE' \
	"$("$HP_BIN" build --help | tr '\n' ' ')"
err=$(build --frobnicate -o "$OUT/u.tar" "$FIX/patch-good.c" 2>&1)
ht_eq "unknown option: exit 2" 2 "$(build --frobnicate -o "$OUT/u.tar" "$FIX/patch-good.c" >/dev/null 2>&1; echo $?)"
ht_eq "unknown option: one line" "hp build: unknown option --frobnicate" "$err"
ht_eq "usage errors leave nothing" "" "$(ls -A "$OUT")"

# An existing bundle survives a failed rebuild untouched.
build -o "$OUT/keep.tar" "$FIX/patch-good.c" >/dev/null 2>&1
before=$(sha256sum <"$OUT/keep.tar")
build -o "$OUT/keep.tar" "$FIX/patch-missing.c" >/dev/null 2>&1
ht_eq "failed rebuild leaves the old bundle as it was" "$before" "$(sha256sum <"$OUT/keep.tar")"
ht_eq "failed rebuild leaves no temporary" "keep.tar" "$(ls -A "$OUT")"

# ---- end to end: what hp build writes, the engine applies -------------------------
# The engine's fixture target and its month-2026-02 patch source (a static
# helper and static data of the target used): built here by hp build instead
# of the engine tests' own set maker, then applied to the running target.
. "$(dirname "$0")/test-engine-lib.sh"
for v in pie nopie lib; do
	et_start "$v"
	set_dir=$HT_TMP/e2e-$v
	mkdir -p "$set_dir"
	ht_check "end to end ($v): hp build" "$HP_BIN" build --target "$(et_target_file "$v")" \
		--baseline 2026.01 --month 2026-02 --name fix -o "$HT_TMP/e2e-$v.tar" \
		"$HP_SOURCE_ROOT/tests/fixtures/engine/patch-a.c"
	tar xf "$HT_TMP/e2e-$v.tar" -C "$set_dir"
	ht_eq "end to end ($v): original behaviour" "14 107" "$(et_query 7)"
	ht_match "end to end ($v): the engine applies the bundle" '^applied changed=1 ' \
		"$(et_driver apply "$ET_PID" "$set_dir" 2>&1)"
	ht_eq "end to end ($v): patched behaviour (static helper and data)" "100 207" \
		"$(et_query 7)"
	bid=$(sed -n 's/^build-id //p' "$set_dir/manifest")
	ht_match "end to end ($v): revert" '^reverted changed=1 ' \
		"$(et_driver revert "$ET_PID" "$bid" 2>&1)"
	ht_eq "end to end ($v): original behaviour again" "14 107" "$(et_query 7)"
	ht_check "end to end ($v): target still running, no EINTR" et_clean
	kill "$ET_PID"
done

# Killed while compiling: hp waits for its compiler, cleans up, then dies of
# the signal; no bundle, no temporary directory. The compiler here waits for
# a go file that the test creates after the signal.
printf '#!/bin/sh\nwhile [ ! -e "%s" ]; do sleep 0.05; done\nexec %s "$@"\n' \
	"$HT_TMP/go" "${CC:-cc}" >"$HT_TMP/slow-cc"
chmod +x "$HT_TMP/slow-cc"
ht_spawn "$HP_BIN" build --target "$BIN" --baseline 2026.01 --month 2026-02 --name fix-1 \
	--cc "$HT_TMP/slow-cc" -o "$OUT/killed.tar" "$FIX/patch-good.c"
hp_pid=$HT_LAST_PID
ht_check "killed build: its temporary directory exists while compiling" \
	ht_wait_for 10 sh -c "ls -A '$HT_TMP/tmp' | grep -q hp-build"
kill -TERM "$hp_pid"
sleep 0.2
touch "$HT_TMP/go"
wait "$hp_pid"
ht_eq "killed build: hp dies of SIGTERM" 143 "$?"
ht_eq "killed build: no bundle" "keep.tar" "$(ls -A "$OUT")"
ht_eq "killed build: temporary directory removed" "" "$(ls -A "$HT_TMP/tmp")"

# No temporary directory of ours left behind.
ht_eq "no hp-build temp dirs left in TMPDIR" "" "$(ls -A "$HT_TMP/tmp")"

# IPA-RA: a replacement that may write call-clobbered registers its original
# never writes gets one note (the bundle is still made); none when BIN's
# DWARF says it was built with -fno-ipa-ra. Direct calls to local functions
# are followed (mid's original writes only rax, through its helper).
cc -O2 -g -o "$HT_TMP/ipa" "$FIX/ipa-target.c"
cc -O2 -g -fno-ipa-ra -o "$HT_TMP/ipa-off" "$FIX/ipa-target.c"
ipa_note() { "$HP_BIN" build --target "$1" --baseline 2026.01 --month 2026-02 --name fix-1 \
	-o "$OUT/ipa.tar" "$FIX/ipa-patch-$2.c" 2>&1 >/dev/null; }
tail_ipa='; a caller built with gcc -fipa-ra \(on at -O2\) may keep values (there|in the others) across the call \(see IPA-RA in docs/authoring.md\)$'
err=$(ipa_note "$HT_TMP/ipa" calls)
if [ "$err" = "hp build: IPA-RA check skipped: hp build was built without Capstone" ]; then
	ht_log "ipa-ra: no Capstone (scripts/install-deps.sh installs libcapstone-dev): skipped"
else
ht_match "ipa-ra: a replacement that calls out: one note" \
	"^hp build: function leaf: the original writes only rax of the call-clobbered registers, the replacement calls other code and may write any$tail_ipa" "$err"
ht_eq "ipa-ra: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
ht_check "ipa-ra: the bundle is made" test -s "$OUT/ipa.tar"
ht_match "ipa-ra: a wider leaf replacement names the registers" \
	"^hp build: function leaf: the replacement may write rdx, rdi, which the original never writes$tail_ipa" \
	"$(ipa_note "$HT_TMP/ipa" wider)"
ht_match "ipa-ra: the call to a local helper is followed" \
	"^hp build: function mid: the replacement may write rdi, which the original never writes$tail_ipa" \
	"$(ipa_note "$HT_TMP/ipa" mid)"
ht_eq "ipa-ra: a replacement that writes what the original writes: no note" "" \
	"$(ipa_note "$HT_TMP/ipa" same)"
for p in calls wider mid; do
	ht_eq "ipa-ra: BIN built with -fno-ipa-ra: no note ($p)" "" "$(ipa_note "$HT_TMP/ipa-off" $p)"
done
fi

ht_end
