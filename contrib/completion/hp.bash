# shellcheck shell=bash disable=SC2207
# (SC2207: COMPREPLY=($(compgen ...)) is the completion idiom; its words hold no blanks.)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bash completion for hp(1): commands and subcommands, the global options
# --store and --json, files for build and import, PIDs (and "all") for
# apply and status (for revert: only the processes that have a set applied,
# from `hp report`), baselines, months, patch sets and target names (from
# `hp list`) for list, show, withdraw, apply and build. Self-contained: it does not need the bash-completion
# package, but is installed where that package looks for it.

# The store the command line names: --store DIR / --store=DIR, else
# $HP_STORE, else the default.
_hp_store() {
	local i store=${HP_STORE:-/var/lib/hotpatch/store.git}
	for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
		case ${COMP_WORDS[i]} in
		--store) [ $((i + 1)) -lt "${#COMP_WORDS[@]}" ] && [ "$i" -ne "$COMP_CWORD" ] &&
			store=${COMP_WORDS[i + 1]} ;;
		--store=*) store=${COMP_WORDS[i]#--store=} ;;
		esac
	done
	printf '%s\n' "$store"
}

# The patch sets of the store, BASELINE/MONTH/NAME, one a line: the first
# column of `hp list`, when the store exists.
_hp_sets() {
	local store
	store=$(_hp_store)
	[ -d "$store" ] || return 0
	"${_hp_cmd:-hp}" list --store "$store" 2>/dev/null |
		awk '$1 ~ /^[^\/]+\/[^\/]+\/[^\/]+$/ { print $1 }'
}

# Catalog words: $1 = baselines, months (BASELINE/MONTH), sets
# (BASELINE/MONTH/NAME) or bare month names (YYYY-MM), sorted, unique.
_hp_catalog() {
	local what=$1
	_hp_sets | awk -F/ -v what="$what" '
		what == "baselines" { print $1 }
		what == "months" { print $1 "/" $2 }
		what == "sets" { print }
		what == "monthnames" { print $2 }' | sort -u
}

# Target names (the second column of `hp list`), for `hp apply all TARGET`.
_hp_target_names() {
	local store
	store=$(_hp_store)
	[ -d "$store" ] || return 0
	"${_hp_cmd:-hp}" list --store "$store" 2>/dev/null | awk 'NF >= 2 { print $2 }' | sort -u
}

_hp_pids() {
	local d
	for d in /proc/[0-9]*; do
		printf '%s\n' "${d#/proc/}"
	done
}

# The processes with a set applied (applied_at is "-" for the others), from
# `hp report`: what `hp revert` can act on.
_hp_patched_pids() {
	local store
	store=$(_hp_store)
	[ -d "$store" ] || return 0
	"${_hp_cmd:-hp}" report --store "$store" 2>/dev/null |
		sed -n 's/^pid=\([0-9]*\) .* applied_at=\([^ -][^ ]*\) .*/\1/p'
}

_hp_files() {
	# $1: an extended glob of the names to offer, besides directories.
	local IFS=$'\n' pat=$1 cur=$2 f
	local -a files=()
	# shellcheck disable=SC2053 # $pat is a pattern on purpose
	while read -r f; do
		[ -n "$f" ] || continue
		if [ -d "$f" ]; then
			files+=("$f/")
		elif [[ $f == $pat ]]; then
			files+=("$f")
		fi
	done < <(compgen -f -- "$cur")
	COMPREPLY=("${files[@]}")
	compopt -o filenames -o nospace 2>/dev/null
	return 0
}

_hp() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local prev=""
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
	local _hp_cmd=${COMP_WORDS[0]}
	local cmd="" sub="" i w
	local -a args=()
	COMPREPLY=()

	# The command, its subcommand and its arguments so far, global options
	# (which may stand anywhere) left out.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--store) i=$((i + 1)) ;;
		--store=* | --json) ;;
		*)
			if [ -z "$cmd" ]; then
				cmd=$w
			else
				args+=("$w")
			fi
			;;
		esac
	done
	[ "${#args[@]}" -gt 0 ] && sub=${args[0]}

	case $prev in
	--store)
		COMPREPLY=($(compgen -d -- "$cur"))
		compopt -o filenames 2>/dev/null
		return 0
		;;
	esac
	if [[ $cur == --store=* ]]; then
		COMPREPLY=($(compgen -P --store= -d -- "${cur#--store=}"))
		compopt -o filenames 2>/dev/null
		return 0
	fi

	local globals="--store --json"
	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$globals --help --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "build import withdraw list show apply revert status report log store key help version" -- "$cur"))
		fi
		return 0
	fi

	case $cmd in
	build)
		case $prev in
		--target | --debug | --sign | -o | --output | --source | --compile-commands)
			_hp_files '*' "$cur"
			return 0
			;;
		--diff)
			_hp_files '*.@(patch|diff)' "$cur"
			return 0
			;;
		--cc)
			COMPREPLY=($(compgen -c -- "$cur"))
			return 0
			;;
		--name | --description | --author | --cve | --active-ok | --pick | --cflag)
			return 0
			;;
		--baseline)
			COMPREPLY=($(compgen -W "$(_hp_catalog baselines)" -- "$cur"))
			return 0
			;;
		--month)
			COMPREPLY=($(compgen -W "$(_hp_catalog monthnames)" -- "$cur"))
			return 0
			;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--target --debug --baseline --month --name --sign
				--description --author --cve --active-ok --pick --cc --cflag --output -o
				--source --diff --compile-commands --force --allow-inlined
				--help $globals" -- "$cur"))
		else
			_hp_files '*.@(c|so)' "$cur"
		fi
		;;
	import)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--force --replace --help $globals" -- "$cur"))
		else
			_hp_files '*.@(tar|tar.gz|tgz|tar.xz|txz|zip)' "$cur"
		fi
		;;
	list)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$globals" -- "$cur"))
		elif [ "${#args[@]}" -eq 0 ]; then
			COMPREPLY=($(compgen -W "$(_hp_catalog baselines) $(_hp_catalog months)" -- "$cur"))
		fi
		;;
	withdraw)
		[ "$prev" = --reason ] && return 0
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--reason --help $globals" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$(_hp_catalog sets)" -- "$cur"))
		fi
		;;
	show)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--help $globals" -- "$cur"))
		elif [ "${#args[@]}" -eq 0 ]; then
			COMPREPLY=($(compgen -W "$(_hp_catalog sets)" -- "$cur"))
		fi
		;;
	apply | revert | status)
		[ "$prev" = --retries ] && return 0
		# --retries N is no argument of its own.
		if [ "${args[0]:-}" = --retries ]; then
			args=("${args[@]:2}")
			sub=${args[0]:-}
		fi
		if [[ $cur == -* ]]; then
			local opts="--help $globals"
			[ "$cmd" = apply ] && opts="--retries $opts"
			COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		elif [ "${#args[@]}" -eq 0 ] && [ "$cmd" = revert ]; then
			COMPREPLY=($(compgen -W "all $(_hp_patched_pids)" -- "$cur"))
		elif [ "${#args[@]}" -eq 0 ]; then
			local all=all
			[ "$cmd" = status ] && all=""
			COMPREPLY=($(compgen -W "$all $(_hp_pids)" -- "$cur"))
		elif [ "$cmd" = apply ] && [ "${#args[@]}" -eq 1 ] && [ "$sub" = all ]; then
			COMPREPLY=($(compgen -W "$(_hp_target_names)" -- "$cur"))
		elif [ "$cmd" = apply ] && [ "${#args[@]}" -eq 1 ]; then
			COMPREPLY=($(compgen -W "$(_hp_catalog monthnames)" -- "$cur"))
		fi
		;;
	report)
		case $prev in
		--state)
			COMPREPLY=($(compgen -W "up-to-date hotpatched not-up-to-date needs-restart withdrawn failed in-progress" -- "$cur"))
			return 0
			;;
		--target)
			COMPREPLY=($(compgen -W "$(_hp_target_names)" -- "$cur"))
			return 0
			;;
		--name) return 0 ;;
		esac
		COMPREPLY=($(compgen -W "--check --state --target --name --help $globals" -- "$cur"))
		;;
	log)
		COMPREPLY=($(compgen -W "--help $globals" -- "$cur"))
		;;
	store)
		if [ -z "$sub" ]; then
			COMPREPLY=($(compgen -W "init pull push" -- "$cur"))
		elif [ "$sub" = init ]; then
			[ "$prev" = --baseline-months ] && return 0
			COMPREPLY=($(compgen -W "--allow-unsigned --baseline-months $globals" -- "$cur"))
		elif [ "${#args[@]}" -eq 1 ] && [[ $cur != -* ]]; then
			# A remote: any git URL, or a local path.
			COMPREPLY=($(compgen -d -- "$cur"))
			compopt -o filenames 2>/dev/null
		fi
		;;
	key)
		if [ -z "$sub" ]; then
			COMPREPLY=($(compgen -W "generate trust revoke" -- "$cur"))
		elif [ "${#args[@]}" -eq 1 ] && [ "$sub" = generate ]; then
			COMPREPLY=($(compgen -d -- "$cur"))
			compopt -o filenames 2>/dev/null
		elif [ "${#args[@]}" -eq 1 ] && [ "$sub" = trust ]; then
			_hp_files '*.pub' "$cur"
		elif [ "$sub" = revoke ] && [ "$prev" != --reason ]; then
			if [[ $cur == -* ]]; then
				COMPREPLY=($(compgen -W "--reason" -- "$cur"))
			else
				_hp_files '*.pub' "$cur"
			fi
		fi
		;;
	esac
	return 0
}

complete -F _hp hp
