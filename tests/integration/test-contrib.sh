#!/bin/bash
# contrib/ checked: man pages render without groff warnings and name every
# command and option `hp help` and `hotpatchfs --help` print; the systemd
# unit passes systemd-analyze verify; the shell is shellcheck-clean; the
# examples refuse bad usage with exit 2 and one line.
. "$HP_TEST_LIB/harness.sh"
ht_begin "contrib"

src=$HP_SOURCE_ROOT/contrib

# --- man pages --------------------------------------------------------------
for page in man/hp.1 man/hotpatchfs.8; do
	warn=$(groff -man -Tutf8 -ww -z "$src/$page" 2>&1)
	ht_eq "$page: no groff warning" "" "$warn"
	out=$(MANWIDTH=80 man -l "$src/$page" 2>&1)
	ht_match "$page: man -l renders NAME and SYNOPSIS" 'NAME.*SYNOPSIS' "$(printf '%s' "$out" | tr '\n' ' ')"
done

# A page's source as plain text: \- as -, no font changes, one line.
man_text() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$1" | tr -s ' \n' '  '; }

hp_man=$(man_text "$src/man/hp.1")
missing=""
while read -r -a w; do
	[ "${w[0]:-}" = hp ] || continue
	line=${w[*]}
	# "hp store init [--allow-unsigned] | pull REMOTE | push REMOTE": each
	# alternative is a synopsis line of its own.
	cmd=${w[1]}
	alts=$(printf '%s\n' "$line" | sed "s/^hp $cmd //; s/ | /\n/g")
	case $line in *" | "*) ;; *) alts="" ;; esac
	if [ -n "$alts" ]; then
		while read -r alt; do
			sub=${alt%% *}
			case $hp_man in *"hp $cmd $sub"*) ;; *) missing="$missing 'hp $cmd $sub'" ;; esac
		done <<<"$alts"
	else
		case $hp_man in *"hp $cmd"*) ;; *) missing="$missing 'hp $cmd'" ;; esac
	fi
	for opt in $(printf '%s\n' "$line" | grep -oE -- '--?[a-z][a-z-]*'); do
		case $hp_man in *"$opt"*) ;; *) missing="$missing $opt" ;; esac
	done
done < <("$HP_BIN" help | sed 's/^ *//')
for opt in $("$HP_BIN" help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
	case $hp_man in *"$opt"*) ;; *) missing="$missing $opt" ;; esac
done
ht_eq "hp.1 names every command, subcommand and option of hp help" "" "$missing"
missing=""
for opt in $("$HP_BIN" build --help | grep -oE -- '--?[a-z][a-z-]*' | sort -u); do
	case $hp_man in *"$opt"*) ;; *) missing="$missing $opt" ;; esac
done
ht_eq "hp.1 names every option of hp build --help" "" "$missing"
missing=""
for cmd in $("$HP_BIN" help | sed -n 's/^ *hp \([a-z]*\).*/\1/p' | sort -u); do
	for opt in $("$HP_BIN" "$cmd" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		case $hp_man in *"$opt"*) ;; *) missing="$missing $cmd:$opt" ;; esac
	done
done
ht_eq "hp.1 names every option of every hp COMMAND --help" "" "$missing"

if [ -x "$HP_FS_BIN" ]; then
	fs_man=$(man_text "$src/man/hotpatchfs.8")
	missing=""
	for opt in $("$HP_FS_BIN" --help 2>&1 | grep -oE -- '(^|[ [])--?[a-zA-Z][a-z-]*' |
		sed 's/^[ [ ]*//' | sort -u) \
		$("$HP_FS_BIN" --help 2>&1 | grep -oE -- '-o [a-z_]+' | sed 's/^-o //' | sort -u); do
		case $fs_man in *"$opt"*) ;; *) missing="$missing $opt" ;; esac
	done
	ht_eq "hotpatchfs.8 names every option and -o option of hotpatchfs --help" "" "$missing"
	# And back: every -o option of the page's OPTIONS is in --help.
	fs_help=$("$HP_FS_BIN" --help 2>&1)
	missing=""
	for opt in $(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$src/man/hotpatchfs.8" |
		sed -n '/^\.RS/,/^\.RE/p' | awk 'tp && /^\.BI? [a-z_]/ { sub(/=.*/, "", $2); print $2 }
			{ tp = $0 == ".TP" }'); do
		case $fs_help in *"-o $opt"*) ;; *) missing="$missing $opt" ;; esac
	done
	ht_eq "hotpatchfs --help names every -o option of hotpatchfs.8" "" "$missing"
fi

# --- systemd unit -------------------------------------------------------------
# The unit as meson configures it, pointed at the built daemon (verify
# checks that the executables exist).
unit=$HP_BUILD_ROOT/contrib/hotpatchfs.service
ht_check "configured unit exists" test -f "$unit"
mkdir -p "$HT_TMP/unit"
daemon=$HP_FS_BIN
if [ ! -x "$daemon" ]; then
	ht_log "hotpatchfs not built: verifying the unit with $(command -v true) in its place"
	daemon=$(command -v true)
fi
sed "s|^ExecStart=[^ ]*hotpatchfs |ExecStart=$daemon |" "$unit" >"$HT_TMP/unit/hotpatchfs.service"
ht_match "unit runs hotpatchfs -f -o seal on the default store and /hp" \
	'^ExecStart=/[^ ]*/hotpatchfs -f -o seal --store /var/lib/hotpatch/store.git /hp$' "$(grep '^ExecStart=' "$unit")"
ht_match "unit may seal /hp (CAP_LINUX_IMMUTABLE)" '^CapabilityBoundingSet=.* CAP_LINUX_IMMUTABLE' \
	"$(grep '^CapabilityBoundingSet=' "$unit")"
ht_match "unit cleans the mount when stopped" '^ExecStopPost=-fusermount3 -u' "$(grep '^ExecStopPost=' "$unit")"
# systemd-analyze comes with systemd, which containers often lack.
if command -v systemd-analyze >/dev/null; then
	ht_check "systemd-analyze verify accepts the unit" \
		systemd-analyze verify --man=no "$HT_TMP/unit/hotpatchfs.service"
else
	ht_log "systemd-analyze not installed: unit not verified"
fi

# --- shell ----------------------------------------------------------------------
ht_check "shellcheck: examples and completion" \
	shellcheck "$src/examples/apply-all.sh" "$src/examples/monthly-rollout.sh" "$src/completion/hp.bash"

# --- examples: bad usage ------------------------------------------------------
"$src/examples/apply-all.sh" -m "$HT_TMP/nomount" 2>"$HT_TMP/err" >/dev/null
ht_eq "apply-all.sh without processes: exit 2" 2 "$?"
ht_eq "apply-all.sh without processes: one line" "apply-all.sh: no process to patch" "$(cat "$HT_TMP/err")"
"$src/examples/apply-all.sh" -m "$HT_TMP/nomount" 12x 2>"$HT_TMP/err" >/dev/null
ht_eq "apply-all.sh with a bad PID: exit 2" 2 "$?"
ht_eq "apply-all.sh with a bad PID: one line" "apply-all.sh: not a PID: 12x" "$(cat "$HT_TMP/err")"
"$src/examples/apply-all.sh" -m "$HT_TMP/nomount" $$ 2>"$HT_TMP/err" >/dev/null
ht_eq "apply-all.sh without a mount: exit 2" 2 "$?"
ht_match "apply-all.sh without a mount: says so" "^apply-all.sh: $HT_TMP/nomount/apply: not there" "$(cat "$HT_TMP/err")"
"$src/examples/monthly-rollout.sh" 2>"$HT_TMP/err" >/dev/null
ht_eq "monthly-rollout.sh without a remote: exit 2" 2 "$?"
ht_match "monthly-rollout.sh without a remote: usage" "^usage: monthly-rollout.sh" "$(cat "$HT_TMP/err")"

ht_end
