#!/bin/bash
# contrib/completion/hp.bash: sourced, its function called the way bash
# calls it (COMP_WORDS, COMP_CWORD), COMPREPLY checked: commands,
# subcommands, global options, bundles, PIDs, and baselines, months and
# patch sets read with `hp list` from a real store.
. "$HP_TEST_LIB/harness.sh"
ht_begin "completion"

# shellcheck source=../../contrib/completion/hp.bash
. "$HP_SOURCE_ROOT/contrib/completion/hp.bash"

# comp WORD...: complete the last word; prints COMPREPLY sorted, one line.
# comp_at N WORD...: complete word N (the command line goes on after it).
comp() { comp_at $(($# - 1)) "$@"; }
comp_at() {
	COMP_CWORD=$1
	shift
	COMP_WORDS=("$@")
	COMPREPLY=()
	_hp 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

ht_eq "registered for hp" "complete -F _hp hp" "$(complete -p hp)"
ht_eq "commands" "apply build help import key list log report revert show status store version withdraw" \
	"$(comp "$HP_BIN" "")"
ht_eq "command prefix" "show status store" "$(comp "$HP_BIN" s)"
ht_eq "global options" "--help --json --store --version" "$(comp "$HP_BIN" --)"
ht_eq "command after a global option" "apply" "$(comp "$HP_BIN" --json ap)"
ht_eq "store subcommands" "init pull push" "$(comp "$HP_BIN" store "")"
ht_eq "store init option" "--allow-unsigned" "$(comp "$HP_BIN" store init --a)"
ht_eq "key subcommands" "generate revoke trust" "$(comp "$HP_BIN" key "")"
ht_eq "import option" "--force" "$(comp "$HP_BIN" import --f)"
ht_eq "import options" "--force --help --json --replace --store" "$(comp "$HP_BIN" import --)"
ht_eq "apply options" "--help --json --retries --store" "$(comp "$HP_BIN" apply --)"
ht_eq "report options" "--check --help --json --name --state --store --target" "$(comp "$HP_BIN" report --)"
ht_eq "report --state: the states" "needs-restart not-up-to-date" "$(comp "$HP_BIN" report --state n)"
ht_eq "build options" "--active-ok --allow-inlined --author --baseline --cc --cflag --compile-commands --cve --debug --description --diff --force --help --json --month --name --output --pick --sign --source --store --target" \
	"$(comp "$HP_BIN" build --)"
ht_eq "build option prefix" "--cc --cflag --compile-commands --cve" "$(comp "$HP_BIN" build --c)"

# Files: bundles for import, C sources for build, directories for --store.
mkdir -p "$HT_TMP/files/sub"
touch "$HT_TMP/files/fix.tar.gz" "$HT_TMP/files/fix.zip" "$HT_TMP/files/notes.txt" "$HT_TMP/files/fix.c"
cd "$HT_TMP/files" || exit 1
ht_eq "import offers bundles and directories" "fix.tar.gz fix.zip sub/" "$(comp "$HP_BIN" import "")"
ht_eq "build offers sources and directories" "fix.c sub/" "$(comp "$HP_BIN" build --name x "")"
ht_eq "--store offers directories" "sub" "$(comp "$HP_BIN" --store "")"
ht_eq "--store= offers directories" "--store=sub" "$(comp "$HP_BIN" --store=s)"

# PIDs: a process the test started is offered for apply, revert and status.
ht_spawn sleep 60
pid=$HT_LAST_PID
for c in apply status; do
	ht_match "$c offers PIDs" "(^| )$pid( |$)" "$(comp "$HP_BIN" "$c" "${pid:0:1}")"
done
ht_expect_fail "revert does not offer a process with nothing applied" 1 '' \
	grep -Eq "(^| )$pid( |$)" <<<"$(comp "$HP_BIN" revert "${pid:0:1}")"
ht_eq "status takes one PID" "" "$(comp "$HP_BIN" status "$pid" "")"
ht_eq "apply and revert offer all" "all all" "$(comp "$HP_BIN" apply a) $(comp "$HP_BIN" revert a)"
ht_eq "status does not offer all" "" "$(comp "$HP_BIN" status a)"

# Baselines, months and sets from `hp list` on a real store (test bundles).
S=$HT_TMP/store.git
ht_check "store for the catalog words" "$HP_BIN" store init --allow-unsigned --store "$S"
for set in 2026.01/2026-02/fix-a 2026.01/2026-03/fix-a 2026.04/2026-05/fix-b; do
	IFS=/ read -r b m n <<<"$set"
	"$HP_MKBUNDLE" -b "$b" -m "$m" -n "$n" -o "$HT_TMP/$n-$m.tar" &&
		"$HP_BIN" import --store "$S" "$HT_TMP/$n-$m.tar" >/dev/null ||
		ht_not_ok "import $set"
done
ht_eq "list: baselines and months (--store before)" \
	"2026.01 2026.01/2026-02 2026.01/2026-03 2026.04 2026.04/2026-05" \
	"$(comp "$HP_BIN" --store "$S" list "")"
ht_eq "list: months of a baseline (--store after)" "2026.01/2026-02 2026.01/2026-03" \
	"$(comp_at 2 "$HP_BIN" list 2026.01/ --store "$S")"
ht_eq "show: sets" "2026.01/2026-02/fix-a 2026.01/2026-03/fix-a" \
	"$(comp "$HP_BIN" --store="$S" show 2026.01/)"
ht_eq "withdraw: sets" "2026.01/2026-02/fix-a 2026.01/2026-03/fix-a" \
	"$(comp "$HP_BIN" --store="$S" withdraw 2026.01/)"
ht_eq "apply PID MONTH: months" "2026-02 2026-03 2026-05" "$(HP_STORE=$S comp "$HP_BIN" apply "$pid" "")"
ht_eq "apply all TARGET: target names" "sample-server" "$(HP_STORE=$S comp "$HP_BIN" apply all "")"
ht_eq "build --baseline: baselines" "2026.01 2026.04" \
	"$(HP_STORE=$S comp "$HP_BIN" build --baseline "")"
ht_eq "no store: no catalog words, no error" "" \
	"$(comp "$HP_BIN" --store "$HT_TMP/nostore" list "" 2>&1)"

ht_end
