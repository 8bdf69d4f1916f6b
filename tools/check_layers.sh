#!/usr/bin/env bash
# tools/check_layers.sh: layers depend downward only (core -> sched ->
# alloc), and examples/ use the public header only. Exits 1 on a violation.
set -u
cd "$(dirname "$0")/.."
bad=0
check() { # dir forbidden-regex what
    local hits
    hits=$(grep -rEn "#include *\"($2)/" "$1" 2>/dev/null)
    if [[ -n $hits ]]; then
        echo "layer violation: $1/ includes $3:"
        echo "$hits"
        bad=1
    fi
}
check alloc 'sched|core' 'a higher layer'
check sched 'core' 'a higher layer'
check examples 'core|sched|alloc' 'internal headers'
if ((bad)); then exit 1; fi
echo "layers ok"
