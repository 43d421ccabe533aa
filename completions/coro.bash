# bash completion for coro(1).
#
# Subcommands and their long options are read from `coro --help` and
# `coro SUB --help` at completion time, so a new subcommand or option
# completes without editing this file. Only option *values* are listed
# here, in _coro_values: add a case when an option takes a fixed set of
# words or a file.

# Print the words that complete the value of option $2 of subcommand $1;
# return 1 when the option's value is free text (nothing to offer).
_coro_values()
{
    case "$1:$2" in
    limit:--algorithm | limit:-a) echo "token-bucket sliding-window" ;;
    retry:--jitter | retry:-J) echo "full equal none" ;;
    retry:--breaker | retry:-B) return 2 ;;   # a file
    buffer:--memory | buffer:-m | buffer:--block | buffer:-s) echo "64k 1M 16M 64M 256M 1G" ;;
    pipeline:--buffer | pipeline:-b) echo "64 1024 10000" ;;
    parallel:--jobs | parallel:-j) echo "1 2 4 8 16 0 2..8" ;;
    parallel:--halt) echo "never now,fail=1 soon,fail=1 now,success=1 soon,fail=10%" ;;
    parallel:--timeout) echo "500ms 1s 10s 1m" ;;
    parallel:--retries) echo "2 3 5" ;;
    parallel:--backoff) echo "100ms..10s 10ms..1s" ;;
    parallel:--arg-file | parallel:-a) return 2 ;;
    *:--rate | *:-r) echo "10/s 100/s 1000/s 60/min" ;;
    *:--joblog | *:--results | *:--breaker) return 2 ;;
    *) return 1 ;;
    esac
}

_coro()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion -s || return
    else # works without the bash-completion package too
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi

    local coro=${words[0]}
    if [ "$cword" -eq 1 ]; then
        local subs
        subs=$("$coro" --help 2>/dev/null | awk '/^commands:/ { on = 1; next } on && NF { print $1 }')
        COMPREPLY=($(compgen -W "$subs --help --version" -- "$cur"))
        return
    fi

    local sub=${words[1]} i
    # After `--` (retry, parallel...) complete the command and its files.
    for ((i = 2; i < cword; i++)); do
        if [ "${words[i]}" = "--" ]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset $((i + 1))
            elif [ "$cword" -eq $((i + 1)) ]; then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
    done

    if [ "$sub" = bench ] && [ "$cword" -eq 2 ]; then
        COMPREPLY=($(compgen -W "$("$coro" bench --help 2>/dev/null |
            awk '/^commands:/ { on = 1; next } on && NF { print $1 }')" -- "$cur"))
        return
    fi

    local vals rc
    vals=$(_coro_values "$sub" "$prev")
    rc=$?
    if [ $rc -eq 0 ]; then
        COMPREPLY=($(compgen -W "$vals" -- "$cur"))
        return
    elif [ $rc -eq 2 ]; then
        _coro_files
        return
    fi

    # parallel: the first word that is not an option (or its value) is the
    # command; after it, files (and ::: values).
    if [ "$sub" = parallel ] && [[ "$cur" != -* ]]; then
        local seen=0
        for ((i = 2; i < cword; i++)); do
            case "${words[i]}" in
            -j | --jobs | -a | --arg-file | --timeout | --retries | --backoff | --halt | \
                --joblog | --results) ((i++)) ;;
            -*) ;;
            *) seen=1 ;;
            esac
        done
        if [ $seen -eq 0 ]; then
            COMPREPLY=($(compgen -c -- "$cur"))
            return
        fi
    fi

    if [[ "$cur" == -* ]]; then
        local opts
        opts=$("$coro" "$sub" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    _coro_files
}

_coro_files()
{
    if declare -F _filedir >/dev/null; then
        _filedir
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _coro coro
