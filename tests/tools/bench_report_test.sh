#!/usr/bin/env bash
# tests/tools/bench_report_test.sh: tools/bench_report.awk on fixture raw
# lines, without running a benchmark: parsing, medians (odd and even
# counts), min/max, the best peer and Telar's ratio in both directions,
# malformed-line rejection, the run filter, JSON validity, the gnuplot
# script, and compare's noise rule. Also the cheap paths of tools/bench
# itself (argument errors, compare) that need no build.
#
# Runs every check under each awk found (awk, mawk, gawk, busybox awk):
# the report must work with Debian's default mawk and with gawk alike.
# Prints each failure and exits 1 if there was any.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
report_awk=$repo/tools/bench_report.awk
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fails=0
checks=0
impl=awk
fail() { echo "FAIL [$impl]: $*"; fails=$((fails + 1)); }
# expect_has NAME FILE TEXT: FILE contains TEXT (a fixed string).
expect_has() {
    checks=$((checks + 1))
    grep -qF -- "$3" "$2" || { fail "$1: expected to find: $3"; sed 's/^/    | /' "$2" | head -n 60; }
}
expect_lacks() {
    checks=$((checks + 1))
    ! grep -qF -- "$3" "$2" || fail "$1: did not expect: $3"
}
expect_eq() {
    checks=$((checks + 1))
    [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"
}
rep() { "${awk_cmd[@]}" -f "$report_awk" "$@"; }

# ---------------------------------------------------------------- fixtures
cat >"$tmp/a.txt" <<'EOF'
# tools/bench 20260101-000000 mode=quick reps=3 peers=telar,go,erlang sched=1,2
# meta stamp 20260101-000000
# meta mode quick
# meta reps 3
# meta peers telar,go,erlang
# meta schedulers 1,2
# meta git abc1234
# meta cpus 2
# meta host Test "CPU" \ 2 GHz
# meta noise_pct 5
# meta retries 2
# meta size skynet 100000
# meta size fairness 1000,200,1000
# meta size fairness/h0 0,200,1000
peer=telar workload=skynet schedulers=1 metric=wall_ms value=12
peer=telar workload=skynet schedulers=1 metric=peak_rss_kb value=5000
# run peer=telar workload=skynet schedulers=1 rep=1 attempts=1 quiet_before=1 wall_ms=20 others_cpu_ms=0 disturbed=0
peer=go workload=skynet schedulers=1 metric=wall_ms value=20
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=80
# run peer=erlang workload=skynet schedulers=1 rep=1 attempts=3 quiet_before=1 wall_ms=90 others_cpu_ms=400 disturbed=1
peer=telar workload=skynet schedulers=1 metric=wall_ms value=10
peer=go workload=skynet schedulers=1 metric=wall_ms value=22
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=70
peer=telar workload=skynet schedulers=1 metric=wall_ms value=11
peer=go workload=skynet schedulers=1 metric=wall_ms value=21
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=75
peer=telar workload=skynet schedulers=2 metric=wall_ms value=40
peer=telar workload=skynet schedulers=2 metric=wall_ms value=3
peer=telar workload=skynet schedulers=2 metric=wall_ms value=1
peer=telar workload=skynet schedulers=2 metric=wall_ms value=2
peer=go workload=skynet schedulers=2 metric=wall_ms value=20
peer=erlang workload=skynet schedulers=2 metric=wall_ms value=5
peer=telar workload=fanin schedulers=2 metric=msgs_per_sec value=1.5e+07
peer=go workload=fanin schedulers=2 metric=msgs_per_sec value=30000000.5
peer=erlang workload=fanin schedulers=2 metric=msgs_per_sec value=6000000
peer=telar workload=fairness_h1000 schedulers=1 metric=ticks value=200
peer=go workload=fairness_h1000 schedulers=1 metric=ticks value=50
peer=erlang workload=fairness_h1000 schedulers=1 metric=ticks value=100
peer=telar workload=fairness_h1000 schedulers=1 metric=p50_us value=40
peer=go workload=fairness_h1000 schedulers=1 metric=p50_us value=20
peer=erlang workload=fairness_h1000 schedulers=1 metric=p50_us value=30
# failed peer=go workload=fairness_h0 schedulers=1 rep=1 exit=1
EOF
# Each of these must be rejected; each carries value=4242 for telar skynet
# s=1 wall_ms where it parses at all, so a leak would move the median.
cat >"$tmp/bad.txt" <<'EOF'
peer=telar workload=skynet schedulers=1 metric=wall_ms
peer=telar workload=skynet schedulers=1 metric=wall_ms value=4242 extra=1
peer=telar workload=skynet schedulers=1 metric=wall_ms value=abc
peer=telar workload=skynet schedulers=1 metric=wall_ms value=9.9.9
peer=telar workload=skynet schedulers=1 metric=wall_ms value=nan
peer=telar workload=skynet schedulers=1 metric=wall_ms value=
peer=telar workload=skynet schedulers=0 metric=wall_ms value=4242
peer=telar workload=skynet schedulers=x1 metric=wall_ms value=4242
workload=skynet peer=telar schedulers=1 metric=wall_ms value=4242
peer=telar workload=sky-net schedulers=1 metric=wall_ms value=4242
peer= workload=skynet schedulers=1 metric=wall_ms value=4242
PEER=telar workload=skynet schedulers=1 metric=wall_ms value=4242
garbage
EOF
nbad=$(grep -c . "$tmp/bad.txt")
cat "$tmp/a.txt" "$tmp/bad.txt" >"$tmp/a_bad.txt"

# B: A after a change. telar skynet s=1 clearly slower (disjoint, +>5%);
# go skynet s=1 moved 10% but its range overlaps A's (noise); erlang
# skynet s=1 moved 2% with disjoint ranges (noise); go fanin msgs_per_sec
# higher with disjoint ranges (better, the direction is "higher"); telar
# fanin lower (worse). fork_join is only in B.
cat >"$tmp/b.txt" <<'EOF'
# meta stamp 20260102-000000
# meta mode quick
# meta reps 3
# meta peers telar,go,erlang
# meta git def5678
peer=telar workload=skynet schedulers=1 metric=wall_ms value=20
peer=telar workload=skynet schedulers=1 metric=wall_ms value=21
peer=telar workload=skynet schedulers=1 metric=wall_ms value=22
peer=go workload=skynet schedulers=1 metric=wall_ms value=21.5
peer=go workload=skynet schedulers=1 metric=wall_ms value=23.1
peer=go workload=skynet schedulers=1 metric=wall_ms value=30
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=76.5
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=81
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=82
peer=telar workload=fanin schedulers=2 metric=msgs_per_sec value=1.0e+07
peer=go workload=fanin schedulers=2 metric=msgs_per_sec value=40000000
peer=telar workload=fork_join schedulers=1 metric=create_ns_per_proc value=300
EOF
# A copy of A's three skynet s=1 reps for the compare rows with ranges.
cat >"$tmp/a_cmp.txt" <<'EOF'
# meta stamp 20260101-000000
# meta mode quick
# meta reps 3
# meta peers telar,go,erlang
# meta git abc1234
peer=telar workload=skynet schedulers=1 metric=wall_ms value=12
peer=telar workload=skynet schedulers=1 metric=wall_ms value=10
peer=telar workload=skynet schedulers=1 metric=wall_ms value=11
peer=go workload=skynet schedulers=1 metric=wall_ms value=20
peer=go workload=skynet schedulers=1 metric=wall_ms value=22
peer=go workload=skynet schedulers=1 metric=wall_ms value=21
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=80
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=70
peer=erlang workload=skynet schedulers=1 metric=wall_ms value=75
peer=telar workload=fanin schedulers=2 metric=msgs_per_sec value=1.5e+07
peer=go workload=fanin schedulers=2 metric=msgs_per_sec value=30000000
EOF

# json_ok FILE: valid JSON, by jq or python3 if present, else by a
# structural check (balanced brackets outside strings, no trailing comma).
json_ok() {
    if command -v jq >/dev/null; then
        jq empty "$1" 2>&1
    elif command -v python3 >/dev/null; then
        python3 -m json.tool "$1" >/dev/null 2>&1 || echo "python3 json.tool rejects it"
    else
        "${awk_cmd[@]}" '
            { line = $0; gsub(/\\./, "", line); gsub(/"[^"]*"/, "\"\"", line); all = all line "\n" }
            END {
                d = 0
                for (i = 1; i <= length(all); i++) {
                    c = substr(all, i, 1)
                    if (c == "{" || c == "[") d++
                    if (c == "}" || c == "]") d--
                    if (d < 0) { print "unbalanced"; exit }
                }
                if (d != 0) print "unbalanced"
                if (all ~ /,[ \n]*[]}]/) print "trailing comma"
            }' "$1"
    fi
}

run_checks() {
    # --- table, json, gnuplot on A plus malformed lines ---------------------
    rep -v mode=json "$tmp/a_bad.txt" >"$tmp/a.json" 2>"$tmp/a.json.err"
    expect_eq "json exit status" "$?" 0
    rep -v mode=table "$tmp/a_bad.txt" >"$tmp/a.md" 2>"$tmp/a.md.err"
    expect_eq "table exit status" "$?" 0
    local j=$tmp/a.json t=$tmp/a.md

    # Parsing, odd count: median is the middle value; min and max; values
    # in run order.
    expect_has "odd median" "$j" '"telar": {"median": 11, "min": 10, "max": 12, "n": 3, "values": [12, 10, 11]}'
    expect_has "odd median erlang" "$j" '"erlang": {"median": 75, "min": 70, "max": 80, "n": 3, "values": [80, 70, 75]}'
    # Even count: the mean of the middle two (of 1 2 3 40: 2.5, not 2 or 3).
    expect_has "even median" "$j" '"telar": {"median": 2.5, "min": 1, "max": 40, "n": 4, "values": [40, 3, 1, 2]}'
    # Numbers keep their digits (no %.6g rounding) and stay valid JSON.
    expect_has "number digits" "$j" '"go": {"median": 30000000.5'
    expect_has "exponent input" "$j" '"telar": {"median": 15000000,'

    # Lower is better: best peer is go (21 < 75); telar 11 -> ratio 11/21.
    expect_has "best lower" "$j" '"best_peer": "go", "ratio": 0.5238095238, "telar_advantage": 1.909090909, "ratio_to": {"go": 0.5238095238, "erlang": 0.1466666667}'
    expect_has "table lower better" "$t" '| skynet | wall_ms | 1 | 11.0 (10.0–12.0) | 21.0 (20.0–22.0) | 75.0 (70.0–80.0) | go | 1.91× better | 1.91× better | 6.82× better |'
    # Lower, Telar worse: s=2, erlang 5 is best; telar 2.5 beats it 2×;
    # p50_us: go 20 best, telar 40 -> 2× worse.
    expect_has "table lower s2" "$t" '| skynet | wall_ms | 2 | 2.50 (1.00–40.0) | 20.0 | 5.00 | erlang | 2.00× better |'
    expect_has "table lower worse" "$t" '| fairness_h1000 | p50_us | 1 | 40.0 | 20.0 | 30.0 | go | 2.00× worse | 2.00× worse | 1.33× worse |'
    # Higher is better: msgs_per_sec best is go (the highest), and Telar's
    # half of it is "worse"; ticks: erlang's 100 beats go's 50, Telar's 200
    # is 2× better.
    expect_has "best higher" "$j" '"best_peer": "go", "ratio": 0.4999999917, "telar_advantage": 0.4999999917'
    expect_has "table higher worse" "$t" '| fanin | msgs_per_sec | 2 | 15.00M | 30.00M | 6.00M | go | 2.00× worse | 2.00× worse | 2.50× better |'
    expect_has "table higher better" "$t" '| fairness_h1000 | ticks | 1 | 200 | 50.0 | 100 | erlang | 2.00× better | 4.00× better | 2.00× better |'
    expect_has "json direction" "$j" '"metric": "msgs_per_sec", "schedulers": 2, "direction": "higher"'
    expect_has "json direction lower" "$j" '"metric": "p50_us", "schedulers": 1, "direction": "lower"'
    # A row only Telar has: no best peer, no ratio.
    expect_has "no peer" "$j" '"best_peer": null, "ratio": null, "telar_advantage": null, "ratio_to": {}}'
    expect_has "table header explains" "$t" '"N× better" means Telar is N times'
    # Row order: workload as first seen, its metrics as first seen
    # (peak_rss_kb of skynet after wall_ms), then s.
    order=$(grep '^| [a-z]' "$t" | grep -v '^| workload |' | cut -d'|' -f2-4 | tr -d ' ' | tr '\n' ' ')
    expect_eq "row order" "$order" "skynet|wall_ms|1 skynet|wall_ms|2 skynet|peak_rss_kb|1 fanin|msgs_per_sec|2 fairness_h1000|ticks|1 fairness_h1000|p50_us|1 "

    # Malformed lines: every one reported, counted, and kept out of the
    # figures (a leaked 4242 would move telar skynet s=1 off 11).
    expect_eq "malformed count on stderr" "$(grep -c 'malformed line ignored' "$tmp/a.json.err")" "$nbad"
    expect_has "malformed count in json" "$j" "\"lines_malformed\": $nbad,"
    expect_has "malformed noted in table" "$t" "$nbad malformed line(s) in raw.txt were ignored."
    expect_lacks "no 4242" "$j" "4242"
    expect_has "malformed named" "$tmp/a.json.err" "value=9.9.9"

    # Metadata, and the "# run"/"# failed" counts.
    expect_has "meta stamp" "$j" '"stamp": "20260101-000000",'
    expect_has "meta reps" "$j" '"reps": 3,'
    expect_has "meta cpus" "$j" '"cpus": 2,'
    expect_has "meta host escaped" "$j" '"host": "Test \"CPU\" \\ 2 GHz",'
    expect_has "meta schedulers" "$j" '"schedulers": [1, 2],'
    expect_has "meta sizes" "$j" '"sizes": {"skynet": [100000], "fairness": [1000, 200, 1000], "fairness/h0": [0, 200, 1000]},'
    expect_has "disturbed counted" "$j" '"runs_disturbed": 1,'
    expect_has "failed counted" "$j" '"runs_failed": 1,'
    expect_has "disturbed in table" "$t" "1 run(s) kept although"
    expect_has "failed in table" "$t" "1 run(s) failed"

    # JSON validity.
    checks=$((checks + 1))
    local why
    why=$(json_ok "$j")
    [[ -z $why ]] || fail "results.json is not valid JSON: $why"
    if command -v jq >/dev/null; then
        expect_eq "jq rows" "$(jq '.rows | length' "$j")" 6
        expect_eq "jq n" "$(jq '[.rows[] | select(.workload == "skynet" and .metric == "wall_ms" and .schedulers == 1)][0].peers.go.n' "$j")" 3
    fi
    # Nothing at all still gives valid JSON and a table.
    : >"$tmp/empty.txt"
    rep -v mode=json "$tmp/empty.txt" >"$tmp/empty.json"
    why=$(json_ok "$tmp/empty.json")
    checks=$((checks + 1))
    [[ -z $why ]] || fail "empty results.json is not valid JSON: $why"

    # --- filter: the runner's check of one run's output ---------------------
    printf '%s\n' \
        "peer=go workload=fairness_h0 schedulers=2 metric=p50_us value=80.5" \
        "peer=go workload=fairness_h0 schedulers=1 metric=p50_us value=1" \
        "peer=telar workload=fairness_h0 schedulers=2 metric=p50_us value=1" \
        "peer=go workload=fairness schedulers=2 metric=p50_us value=1" \
        "" \
        "warming up" \
        "peer=go workload=fairness_h0 schedulers=2 metric=ticks value=200.00" >"$tmp/out.txt"
    rep -v mode=filter -v peer=go -v workload=fairness_h0 -v sched=2 \
        -v rejects="$tmp/rej.txt" <"$tmp/out.txt" >"$tmp/good.txt"
    expect_eq "filter keeps" "$(tr '\n' '|' <"$tmp/good.txt")" \
        "peer=go workload=fairness_h0 schedulers=2 metric=p50_us value=80.5|peer=go workload=fairness_h0 schedulers=2 metric=ticks value=200.00|"
    expect_eq "filter rejects" "$(grep -c . "$tmp/rej.txt")" 4
    expect_eq "filter invert" "$(rep -v mode=filter -v invert=1 -v peer=go -v workload=fairness_h0 -v sched=2 <"$tmp/out.txt" | grep -c .)" 4
    rep -v mode=filter -v peer=go </dev/null >/dev/null 2>&1
    expect_eq "filter without arguments fails" "$?" 2
    rep -v mode=nosuch "$tmp/a.txt" >/dev/null 2>&1
    expect_eq "unknown mode fails" "$?" 2

    # --- gnuplot script -----------------------------------------------------
    mkdir -p "$tmp/charts"
    rep -v mode=gnuplot -v chartdir="$tmp/charts" "$tmp/a.txt" >"$tmp/plot.gp"
    local g=$tmp/plot.gp
    expect_eq "one chart per workload and metric" "$(grep -c '^set output' "$g")" 5
    expect_has "svg terminal" "$g" "set terminal svg"
    expect_has "chart file" "$g" "set output '$tmp/charts/skynet.wall_ms.svg'"
    # skynet wall_ms spans 1..80 (> 30×): log scale; ticks 50..200: linear.
    expect_eq "log scale when wide" "$(awk '/skynet.wall_ms.svg/ { f = 1 } f && /logscale/ { print; exit }' "$g")" "set logscale y"
    expect_eq "linear when narrow" "$(awk '/ticks.svg/ { f = 1 } f && /logscale/ { print; exit }' "$g")" "unset logscale y"
    # skynet peak_rss_kb: only Telar has data, so only Telar is plotted.
    expect_eq "absent peer not plotted" "$(awk '/peak_rss_kb.svg/ { f = 1 } f && /^plot/ { print; exit }' "$g" | grep -o "title '[a-z]*'" | tr '\n' ' ')" "title 'telar' "
    if command -v gnuplot >/dev/null; then
        checks=$((checks + 1))
        if gnuplot "$g" 2>"$tmp/gnuplot.err"; then
            local n
            n=$(grep -l '<svg' "$tmp/charts"/*.svg 2>/dev/null | wc -l)
            expect_eq "gnuplot drew every chart" "$n" 5
        else
            fail "gnuplot rejected the script: $(head -n 5 "$tmp/gnuplot.err")"
        fi
        rm -f "$tmp/charts"/*.svg
    fi

    # --- compare ------------------------------------------------------------
    rep -v mode=compare "$tmp/a_cmp.txt" "$tmp/b.txt" >"$tmp/cmp.md" 2>"$tmp/cmp.err"
    expect_eq "compare exit status" "$?" 0
    local c=$tmp/cmp.md
    # Disjoint ranges (10–12 vs 20–22) and B/A = 1.909: beyond the noise.
    expect_has "compare worse" "$c" '| skynet | wall_ms | 1 | telar | 11.0 (10.0–12.0) | 21.0 (20.0–22.0) | 1.909 | **worse** |'
    # B/A = 1.10 but the ranges overlap (20–22 vs 21.5–30): noise.
    expect_has "compare overlap is noise" "$c" '| skynet | wall_ms | 1 | go | 21.0 (20.0–22.0) | 23.1 (21.5–30.0) | 1.100 | noise |'
    # B/A = 1.08, but the ranges overlap (70–80 vs 76.5–82): noise.
    expect_has "compare small move is noise" "$c" '| skynet | wall_ms | 1 | erlang | 75.0 (70.0–80.0) | 81.0 (76.5–82.0) | 1.080 | noise |'
    # Higher is better: go fanin 30M -> 40M is better, Telar 15M -> 10M worse.
    expect_has "compare higher better" "$c" '| fanin | msgs_per_sec | 2 | go | 30.00M | 40.00M | 1.333 | **better** |'
    expect_has "compare higher worse" "$c" '| fanin | msgs_per_sec | 2 | telar | 15.00M | 10.00M | 0.667 | **worse** |'
    expect_has "compare summary" "$c" '5 rows in both: 1 better, 2 worse, 2 within the noise. 1 only in B.'
    expect_has "compare states the rule" "$c" 'do not overlap AND B/A is off 1 by more'
    expect_lacks "compare skips one-sided rows" "$c" 'fork_join'
    # Disjoint ranges but only 3% apart: noise (the 5% rule).
    printf '%s\n' "peer=telar workload=ring schedulers=1 metric=ns_per_hop value=100" \
        "peer=telar workload=ring schedulers=1 metric=ns_per_hop value=101" >"$tmp/c1.txt"
    printf '%s\n' "peer=telar workload=ring schedulers=1 metric=ns_per_hop value=103" \
        "peer=telar workload=ring schedulers=1 metric=ns_per_hop value=104" >"$tmp/c2.txt"
    expect_has "compare 5% rule" <(rep -v mode=compare "$tmp/c1.txt" "$tmp/c2.txt") \
        '| ring | ns_per_hop | 1 | telar | 100 (100–101) | 104 (103–104) | 1.030 | noise |'
    printf '%s\n' "peer=telar workload=ring schedulers=1 metric=ns_per_hop value=94" >"$tmp/c3.txt"
    expect_has "compare lower better" <(rep -v mode=compare "$tmp/c1.txt" "$tmp/c3.txt") \
        '| ring | ns_per_hop | 1 | telar | 100 (100–101) | 94.0 | 0.935 | **better** |'
}

# Every awk we can find, each once (awk is usually a link to one of them).
impls=()
declare -A seen_impl=()
for cand in awk mawk gawk original-awk "busybox awk"; do
    read -r -a c <<<"$cand"
    command -v "${c[0]}" >/dev/null || continue
    [[ ${c[0]} == busybox ]] && ! busybox awk 'BEGIN {}' 2>/dev/null && continue
    real=$(readlink -f "$(command -v "${c[0]}")")
    [[ ${c[0]} == busybox ]] && real=busybox
    [[ -n ${seen_impl[$real]:-} ]] && continue
    seen_impl[$real]=1
    impls+=("$cand")
done
for cand in "${impls[@]}"; do
    read -r -a awk_cmd <<<"$cand"
    impl=$cand
    run_checks
done
awk_cmd=(awk)
impl="tools/bench"

# --- tools/bench's own paths that need no build ------------------------------
mkdir -p "$tmp/A" "$tmp/B"
cp "$tmp/a_cmp.txt" "$tmp/A/raw.txt"
cp "$tmp/b.txt" "$tmp/B/raw.txt"
out=$(cd "$tmp" && "$repo/tools/bench" compare A B 2>&1)
expect_eq "bench compare exit status" "$?" 0
printf '%s\n' "$out" >"$tmp/bench_cmp.md"
expect_has "bench compare output" "$tmp/bench_cmp.md" "| skynet | wall_ms | 1 | telar |"
"$repo/tools/bench" compare "$tmp/A" "$tmp/nosuch" >/dev/null 2>&1
expect_eq "bench compare missing folder" "$?" 2
"$repo/tools/bench" --only nosuch >/dev/null 2>&1
expect_eq "bench unknown workload" "$?" 2
"$repo/tools/bench" --peers telar,java >/dev/null 2>&1
expect_eq "bench unknown peer" "$?" 2
"$repo/tools/bench" --help >"$tmp/usage.txt" 2>&1
expect_has "usage documents compare" "$tmp/usage.txt" "tools/bench compare A B"
expect_has "usage documents outputs" "$tmp/usage.txt" "results.json"

echo "bench_report: ${#impls[@]} awk(s): ${impls[*]}"
if ((fails)); then
    echo "$((checks - fails)) passed, $fails failed"
    exit 1
fi
echo "$checks passed, 0 failed"
