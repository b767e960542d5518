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

# Every command's errors under --json: the exit status, the one line on
# stderr, and on stdout one JSON object naming the command, the result
# ("usage" for a bad argument, else the errno's name) and the message (the
# stderr line without its "hp CMD: "; a usage error says the usage).
# ARGS | EXIT | JSON command | result | the line on stderr
export HP_STORE=$HT_TMP/no-store
printf 'int f(void) { return 1; }\n' >"$HT_TMP/fix.c"
cases=$(sed "s|@T|$HT_TMP|g" <<'TABLE'
build                                  | 2 | build      | usage  | hp build: missing --target BIN (see hp build --help)
build --target                         | 2 | build      | usage  | hp build: option --target needs a value
build --frob                           | 2 | build      | usage  | hp build: unknown option --frob
build -x                               | 2 | build      | usage  | hp build: unknown option -x
build --target @T/none --baseline 2026.01 --month 2026-02 --name x -o @T/o.tar.gz @T/fix.c | 1 | build | ENOENT | hp build: @T/none: No such file or directory
import                                 | 2 | import     | usage  | hp: usage: hp import [--force] [--replace] BUNDLE...
import --frob x.tar.gz                 | 2 | import     | usage  | hp: usage: hp import [--force] [--replace] BUNDLE...
import x.tar.gz                        | 1 | import     | ENOENT | hp import: store @T/no-store: not a hotpatch store (run hp store init)
list a b                               | 2 | list       | usage  | hp: usage: hp list [BASELINE[/MONTH]]
list                                   | 1 | list       | ENOENT | hp list: store @T/no-store: not a hotpatch store (run hp store init)
show                                   | 2 | show       | usage  | hp: usage: hp show BASELINE/MONTH/SET
log x                                  | 2 | log        | usage  | hp: usage: hp log
withdraw                               | 2 | withdraw   | usage  | hp: usage: hp withdraw [--reason TEXT] BASELINE/MONTH/SET
withdraw 2026.01/2026-02/x             | 1 | withdraw   | ENOENT | hp withdraw: store @T/no-store: not a hotpatch store (run hp store init)
store frob                             | 2 | store      | usage  | hp: usage: hp store init [--allow-unsigned] [--baseline-months M,M,...] | pull REMOTE | push REMOTE
store pull @T/none                     | 1 | store pull | ENOENT | hp store pull: store @T/no-store: not a hotpatch store (run hp store init)
key generate                           | 2 | key        | usage  | hp: usage: hp key generate DIR | trust PUBKEY | revoke [--reason TEXT] KEYID|PUBKEY
key revoke abc                         | 1 | key revoke | ENOENT | hp key revoke: store @T/no-store: not a hotpatch store (run hp store init)
apply                                  | 2 | apply      | usage  | hp: usage: hp apply [--retries N] PID [MONTH] | all [TARGET]
apply --retries x 1                    | 2 | apply      | usage  | hp apply: --retries takes a count from 0 to 100, not 'x'
revert 1 2                             | 2 | revert     | usage  | hp: usage: hp revert PID | all
status                                 | 2 | status     | usage  | hp: usage: hp status PID
status nope                            | 1 | status     | EINVAL | hp status: 'nope' is not a process id
report --bogus                         | 2 | report     | usage  | hp: usage: hp report [--check] [--state STATE]... [--target NAME] [--name COMM]
report --state happy                   | 2 | report     | usage  | hp report: 'happy' is not a state (up-to-date, hotpatched, not-up-to-date, needs-restart, withdrawn, failed, in-progress)
frobnicate                             | 2 | frobnicate | usage  | hp: unknown command 'frobnicate' (see hp help)
version --store                        | 2 | null       | usage  | hp: --store needs a directory
                                       | 2 | null       | usage  | hp: no command (see hp help)
TABLE
)
n=0
while IFS='|' read -r args want cmd result line; do
	read -r -a argv <<<"$args"
	want=${want// /} cmd=${cmd## } cmd=${cmd%% *} result=${result// /}
	line=${line# }
	[ "$cmd" = store ] && [ "${argv[1]:-}" = pull ] && cmd="store pull"
	[ "$cmd" = key ] && [ "${argv[1]:-}" = revoke ] && cmd="key revoke"
	n=$((n + 1))
	"$HP_BIN" --json "${argv[@]}" >"$HT_TMP/json.$n" 2>"$HT_TMP/err"
	rc=$?
	ht_eq "hp --json $args: exit $want" "$want" "$rc"
	ht_eq "hp --json $args: one line on stderr" "$line" "$(cat "$HT_TMP/err")"
	printf '%s\t%s\t%s\t%s\n' "$args" "$cmd" "$result" "$line" >>"$HT_TMP/json.want"
done <<<"$cases"
# judge: lines "ok DESC" or "bad DESC" on stdin, each a check; their count in judged
judge() {
	local verdict
	judged=0
	while IFS= read -r verdict; do
		judged=$((judged + 1))
		case $verdict in
		ok*) ht_ok "${verdict#ok }" ;;
		*) ht_not_ok "${verdict#bad }" ;;
		esac
	done
}
# One python3 for every case: its stdout, one JSON object, and what it says.
judge < <(python3 - "$HT_TMP" <<'PY'
import json, sys
d = sys.argv[1]
for i, row in enumerate(open(f"{d}/json.want"), 1):
    args, cmd, result, line = row.rstrip("\n").split("\t")
    if line.startswith("hp: usage: "): msg = line[len("hp: "):]
    elif line.startswith("hp: unknown command"): msg = "unknown command (see hp help)"
    else: msg = line.split(": ", 1)[1]
    want = {"command": None if cmd == "null" else cmd, "result": result, "error": msg}
    desc = f"hp --json {args.strip()}: stdout is one JSON object: command, result, message"
    try:
        got = json.loads(open(f"{d}/json.{i}").read())
    except ValueError as e:
        print(f"bad {desc} (not JSON: {e})"); continue
    print(("ok " if got == want else "bad ") + desc + ("" if got == want else f" (got {got}, want {want})"))
PY
)
ht_eq "every case's JSON was judged" "$n" "$judged"

# --help under --json: exit 0, nothing on stderr, and on stdout one JSON
# object {"command": CMD or null, "result": "help", "usage": TEXT} whose
# TEXT is what the same command prints without --json.
help_cases=("help" "--help" "-h" "apply --help" "help apply" "store -h" "build --help" "report --state x --help")
for i in "${!help_cases[@]}"; do
	read -r -a argv <<<"${help_cases[i]}"
	"$HP_BIN" "${argv[@]}" >"$HT_TMP/help.plain.$i" 2>&1
	"$HP_BIN" --json "${argv[@]}" >"$HT_TMP/help.json.$i" 2>"$HT_TMP/err"
	ht_eq "hp --json ${help_cases[i]}: exit 0" 0 "$?"
	ht_eq "hp --json ${help_cases[i]}: nothing on stderr" "" "$(cat "$HT_TMP/err")"
done
judge < <(python3 - "$HT_TMP" "${help_cases[@]}" <<'PY'
import json, sys
d, cases = sys.argv[1], sys.argv[2:]
for i, args in enumerate(cases):
    words = args.split()
    cmd = None if words[0] in ("help", "--help", "-h") and len(words) == 1 else \
        (words[1] if words[0] == "help" else words[0])
    plain = open(f"{d}/help.plain.{i}").read()
    desc = f"hp --json {args}: one JSON object holding the usage text of hp {args}"
    try:
        got = json.loads(open(f"{d}/help.json.{i}").read())
    except ValueError as e:
        print(f"bad {desc} (not JSON: {e})"); continue
    want = {"command": cmd, "result": "help", "usage": plain}
    ok = got == want and plain.startswith("usage: hp")
    print(("ok " if ok else "bad ") + desc + ("" if ok else f" (got {got}, want {want})"))
PY
)
ht_eq "every --help case's JSON was judged" "${#help_cases[@]}" "$judged"

ht_end
