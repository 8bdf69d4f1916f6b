# tools/deps.sh: sourced by tools/test and tools/bench. Installs the Debian
# packages named by the caller that are missing (apt-get; root or sudo).
# Usage: tel_install_missing PKG...
tel_install_missing() {
    if ! command -v dpkg-query >/dev/null; then
        echo "deps: not a Debian system: not checking packages ($*)" >&2
        return 0
    fi
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || { echo "deps: missing packages: ${missing[*]} (run as root or install them)" >&2; return 1; }
        sudo=(sudo)
    fi
    echo "deps: installing missing packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q >&2
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# What building and testing Telar needs.
TEL_BUILD_PACKAGES=(cmake make gcc g++ binutils pkg-config libhwloc-dev
                    libjemalloc-dev libcriterion-dev libbenchmark-dev)

# What tools/bench needs on top of the build: GNU time (each run's peak
# RSS), each peer's toolchain (installed only when that peer runs), and
# gnuplot for the charts (optional: without it the charts are skipped).
TEL_BENCH_PACKAGES=(time)
TEL_BENCH_GO_PACKAGES=(golang-go)
TEL_BENCH_ERLANG_PACKAGES=(erlang-nox)
TEL_BENCH_CHART_PACKAGES=(gnuplot-nox)
