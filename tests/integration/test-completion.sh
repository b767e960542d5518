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
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_hp 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

ht_eq "registered for hp" "complete -F _hp hp" "$(complete -p hp)"
ht_eq "commands" "apply build help import key list log report revert show status store version" \
	"$(comp "$HP_BIN" "")"
ht_eq "command prefix" "show status store" "$(comp "$HP_BIN" s)"
ht_eq "global options" "--help --json --store --version" "$(comp "$HP_BIN" --)"
ht_eq "command after a global option" "apply" "$(comp "$HP_BIN" --json ap)"
ht_eq "store subcommands" "init pull push" "$(comp "$HP_BIN" store "")"
ht_eq "store init option" "--allow-unsigned" "$(comp "$HP_BIN" store init --a)"
ht_eq "key subcommands" "generate trust" "$(comp "$HP_BIN" key "")"
ht_eq "import option" "--force" "$(comp "$HP_BIN" import --f)"
ht_eq "build options" "--baseline --json --month --name --sign --store --target" "$(comp "$HP_BIN" build --)"

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
for c in apply revert status; do
	ht_match "$c offers PIDs" "(^| )$pid( |$)" "$(comp "$HP_BIN" "$c" "${pid:0:1}")"
done
ht_eq "status takes one PID" "" "$(comp "$HP_BIN" status "$pid" "")"

ht_end
