# tools/bench_report.awk: the part of tools/bench that needs no benchmark.
#
# Owns: reading raw result lines, the statistics (median, min, max), the
# direction of each metric, the best peer and Telar's ratio to it, and every
# output format: the Markdown table, results.json, the gnuplot script for
# the charts, and the before/after comparison. tools/bench only runs
# programs and calls this file, so tests/tools/bench_report_test.sh can
# check all of it on fixture text in a fraction of a second.
#
# Written for POSIX awk: it runs under mawk (Debian's default awk) and gawk
# alike. No gawk extensions (asort, length(array), gensub, ARGIND, regex
# intervals), since a fresh Debian machine has only mawk.
#
#   awk -f tools/bench_report.awk -v mode=table RAW           table.md
#   awk -f tools/bench_report.awk -v mode=json RAW            results.json
#   awk -f tools/bench_report.awk -v mode=gnuplot -v chartdir=DIR RAW
#                                                             gnuplot script
#   awk -f tools/bench_report.awk -v mode=compare RAW_A RAW_B Markdown
#   awk -f tools/bench_report.awk -v mode=filter -v peer=P -v workload=W \
#       -v sched=S [-v rejects=FILE] [-v invert=1]
#                                     (a program's stdout on stdin)
#
# Input (raw.txt), one record per line:
#   peer=P workload=W schedulers=S metric=M value=V    a result
#   # meta KEY VALUE...          run metadata (stamp, mode, reps, git, cpus,
#                                host, peers, schedulers, noise_pct,
#                                retries; "size ENTRY A,B" once per entry)
#   # run ... disturbed=0|1      one per kept run (counted, else ignored)
#   # failed ...                 one per failed run (counted)
#   # anything else, blank       ignored
# A result line must have exactly those five fields in that order, names
# made of [A-Za-z0-9_], a positive integer scheduler count and a decimal
# value; anything else is malformed: it is reported on stderr, counted in
# results.json, and kept out of every figure. A wrong line must never
# become a number in the table.
#
# Direction: every metric is lower-is-better except the ones in HIGHER
# below. "Best peer" is the best median among the peers other than Telar,
# in that direction. ratio = Telar's median / the best peer's median (the
# raw quotient, in results.json); the table shows it as "N× better" or
# "N× worse" for Telar, so a reader never has to recall the direction.

BEGIN {
    # Higher-is-better metrics. Keep this list small and explicit: a new
    # metric is lower-is-better (a time, a size) unless it is added here.
    HIGHER["msgs_per_sec"] = 1
    HIGHER["ticks"] = 1
    HIGHER["restarts_per_sec"] = 1
    HIGHER_LIST = "msgs_per_sec,ticks,restarts_per_sec"
    HIGHER_TEXT = "`msgs_per_sec`, `ticks` and `restarts_per_sec`"

    if (mode == "") mode = "table"
    if (mode !~ /^(table|json|gnuplot|compare|filter)$/) {
        print "bench_report: unknown mode '" mode "'" > "/dev/stderr"
        exit_code = 2
        exit 2
    }
    if (mode == "filter" && (peer == "" || workload == "" || sched == "")) {
        print "bench_report: filter needs -v peer= -v workload= -v sched=" > "/dev/stderr"
        exit_code = 2
        exit 2
    }
    nfile = 0
    PTRN_NAME = "^[A-Za-z0-9_]+$"
}

# parse(line): 1 if line is a well-formed result; sets P W S M V.
function parse(line,   f, n) {
    n = split(line, f, " ")
    if (n != 5) return 0
    if (f[1] !~ /^peer=[A-Za-z0-9_]+$/) return 0
    if (f[2] !~ /^workload=[A-Za-z0-9_]+$/) return 0
    if (f[3] !~ /^schedulers=[1-9][0-9]*$/) return 0
    if (f[4] !~ /^metric=[A-Za-z0-9_]+$/) return 0
    if (f[5] !~ /^value=-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) return 0
    P = substr(f[1], 6)
    W = substr(f[2], 10)
    S = substr(f[3], 12) + 0
    M = substr(f[4], 8)
    # Kept as text: an awk number turned back into a string goes through
    # CONVFMT (%.6g), which would round 30000000.5 to 3e+07.
    V = substr(f[5], 7)
    return 1
}

# ---------------------------------------------------------------- filter
# A program's output for one run: keep the lines that are results of this
# very run (right peer, workload and scheduler count); a stray or garbled
# line is rejected rather than trusted. Blank lines are neither. With
# invert=1, print only the rejected lines (for the runner's warning).
mode == "filter" {
    if ($0 ~ /^[ \t]*$/) next
    ok = parse($0) && P == peer && W == workload && S == sched + 0
    if (invert) { if (!ok) print; next }
    if (ok) print
    else if (rejects != "") print > rejects
    else print "bench_report: rejected: " $0 > "/dev/stderr"
    next
}

# ---------------------------------------------------------------- reading
FNR == 1 { nfile++; fname[nfile] = FILENAME }

/^# meta / {
    k = $3
    v = $0
    sub(/^# meta +[^ ]+ */, "", v)
    if (k == "size") {
        e = $4
        v = $5
        if (!((nfile, e) in size)) sizes_order[nfile, ++nsizes[nfile]] = e
        size[nfile, e] = v
    } else {
        meta[nfile, k] = v
    }
    next
}
/^# run / { if ($0 ~ / disturbed=1( |$)/) disturbed[nfile]++; next }
/^# failed / { failed[nfile]++; next }
/^#/ || /^[ \t]*$/ { next }

{
    if (!parse($0)) {
        malformed[nfile]++
        print "bench_report: " FILENAME ":" FNR ": malformed line ignored: " $0 > "/dev/stderr"
        next
    }
    if (!((nfile, W) in worder)) worder[nfile, W] = ++nw[nfile]
    if (!((nfile, W, M) in morder)) morder[nfile, W, M] = ++nm[nfile, W]
    if (!((nfile, P) in pseen)) { pseen[nfile, P] = 1; pseen_order[nfile, ++np_seen[nfile]] = P }
    r = W SUBSEP M SUBSEP S
    if (!((nfile, r) in rseen)) { rseen[nfile, r] = 1; rows[nfile, ++nrows[nfile]] = r }
    vals[nfile, r, P] = vals[nfile, r, P] " " V
}

# ---------------------------------------------------------------- statistics
# stats(list): sort the space-separated numbers of list into SV[1..SN] and
# set SN, SMED, SMIN, SMAX. The median of an even count is the mean of the
# middle two.
function stats(list,   i, j, t) {
    SN = split(list, SV, " ")
    for (i = 1; i <= SN; i++) SV[i] += 0
    for (i = 2; i <= SN; i++) {
        t = SV[i]
        for (j = i - 1; j >= 1 && SV[j] > t; j--) SV[j + 1] = SV[j]
        SV[j + 1] = t
    }
    SMIN = SV[1]
    SMAX = SV[SN]
    SMED = SN % 2 ? SV[(SN + 1) / 2] : (SV[SN / 2] + SV[SN / 2 + 1]) / 2
    return SN
}

function higher_better(m) { return (m in HIGHER) }

# better(m, a, b): 1 if value a beats value b for metric m.
function better(m, a, b) { return higher_better(m) ? a > b : a < b }

# advantage(m, t, o): how many times better Telar's t is than o (> 1: Telar
# better), or "" when the quotient means nothing (a zero or negative value).
function advantage(m, t, o) {
    if (t <= 0 || o <= 0) return ""
    return higher_better(m) ? t / o : o / t
}

# rowcmp(f, a, b): order rows by workload, then metric (each in the order
# first seen; metrics per workload, so the runner's peak_rss_kb, written
# after each run's own lines, comes last), then scheduler count.
function rowcmp(f, a, b,   x, y) {
    split(a, x, SUBSEP)
    split(b, y, SUBSEP)
    if (worder[f, x[1]] != worder[f, y[1]]) return worder[f, x[1]] - worder[f, y[1]]
    if (morder[f, x[1], x[2]] != morder[f, y[1], y[2]]) return morder[f, x[1], x[2]] - morder[f, y[1], y[2]]
    return x[3] - y[3]
}
function sort_rows(f,   i, j, t) {
    for (i = 2; i <= nrows[f]; i++) {
        t = rows[f, i]
        for (j = i - 1; j >= 1 && rowcmp(f, rows[f, j], t) > 0; j--) rows[f, j + 1] = rows[f, j]
        rows[f, j + 1] = t
    }
}

# peer_order(f): PEER[1..NPEER]: the peers of meta "peers" first (the order
# asked for, so columns stay put when a peer has no data), then any other
# peer seen in the results.
function peer_order(f,   i, n, tmp, have) {
    NPEER = 0
    split("", have)
    n = split(meta[f, "peers"], tmp, ",")
    for (i = 1; i <= n; i++)
        if (tmp[i] ~ PTRN_NAME && !(tmp[i] in have)) { have[tmp[i]] = 1; PEER[++NPEER] = tmp[i] }
    for (i = 1; i <= np_seen[f]; i++)
        if (!(pseen_order[f, i] in have)) { have[pseen_order[f, i]] = 1; PEER[++NPEER] = pseen_order[f, i] }
    HAS_TELAR = ("telar" in have)
    NOTHERS = 0
    for (i = 1; i <= NPEER; i++) if (PEER[i] != "telar") NOTHERS++
}

# row_stats(f, r): per peer of PEER[], MED[p] MIN[p] MAX[p] N[p] LIST[p]
# (LIST sorted by run order, as recorded), then BEST (the best other peer,
# "" if none) and, when Telar and BEST both have data, RATIO and ADV.
function row_stats(f, r,   i, p, m, k) {
    split(r, k, SUBSEP)
    m = k[2]
    BEST = ""
    RATIO = ""
    ADV = ""
    split("", N)
    for (i = 1; i <= NPEER; i++) {
        p = PEER[i]
        if (!((f, r, p) in vals)) continue
        LIST[p] = vals[f, r, p]
        N[p] = stats(LIST[p])
        MED[p] = SMED
        MIN[p] = SMIN
        MAX[p] = SMAX
        if (p != "telar" && (BEST == "" || better(m, MED[p], MED[BEST]))) BEST = p
    }
    if (BEST != "" && ("telar" in N)) {
        ADV = advantage(m, MED["telar"], MED[BEST])
        if (MED[BEST] != 0) RATIO = MED["telar"] / MED[BEST]
    }
}

# ---------------------------------------------------------------- formatting
function fmt(v,   a) {
    a = v < 0 ? -v : v
    if (a >= 1e6) return sprintf("%.2fM", v / 1e6)
    if (a >= 100) return sprintf("%.0f", v)
    if (a >= 10)  return sprintf("%.1f", v)
    return sprintf("%.2f", v)
}
function cell(p) {
    if (!(p in N)) return "–"
    if (N[p] == 1) return fmt(MED[p])
    return fmt(MED[p]) " (" fmt(MIN[p]) "–" fmt(MAX[p]) ")"
}
# advcell(a): Telar's advantage a as the reader wants it.
function advcell(a) {
    if (a == "") return "–"
    if (a >= 0.995 && a < 1.005) return "1.00× (same)"
    if (a >= 1) return sprintf("%.2f× better", a)
    return sprintf("%.2f× worse", 1 / a)
}
# A JSON number: %.10g keeps the printed digits of every value we get and
# is valid JSON (no leading zeros, an exponent written e+NN).
function jnum(v) { return sprintf("%.10g", v) }
# jstr(s): s as a JSON string. Char by char, because what "\\\\" means in
# a gsub replacement differs between mawk and gawk. Control characters
# other than tab are dropped; nothing we write has them.
function jstr(s,   out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\" || c == "\"") out = out "\\" c
        else if (c == "\t") out = out "\\t"
        else if (c >= " ") out = out c
    }
    return "\"" out "\""
}
function jmeta_num(f, k) {
    return meta[f, k] ~ /^[0-9]+$/ ? meta[f, k] + 0 : "null"
}
function jmeta_str(f, k) { return ((f, k) in meta) ? jstr(meta[f, k]) : "null" }
# jlist(s, numeric): the comma-separated s as a JSON array.
function jlist(s, numeric,   n, i, a, out) {
    n = split(s, a, ",")
    out = "["
    for (i = 1; i <= n; i++)
        out = out (i > 1 ? ", " : "") (numeric ? jnum(a[i]) : jstr(a[i]))
    return out "]"
}

# ---------------------------------------------------------------- outputs
function sizes_text(f,   i, e, out) {
    out = ""
    for (i = 1; i <= nsizes[f]; i++) {
        e = sizes_order[f, i]
        out = out (i > 1 ? "; " : "") e " " size[f, e]
    }
    return out
}

function do_table(   f, i, j, r, k, p, hdr, sep, line, a, many) {
    f = 1
    sort_rows(f)
    peer_order(f)
    print "# Telar benchmarks " meta[f, "stamp"]
    print ""
    line = "mode=" meta[f, "mode"] ", reps=" meta[f, "reps"]
    if ((f, "cpus") in meta) line = line ", " meta[f, "cpus"] " cpus"
    if ((f, "host") in meta) line = line " (" meta[f, "host"] ")"
    if ((f, "git") in meta) line = line ", git " meta[f, "git"]
    print line "."
    if (nsizes[f]) print "Sizes (positional, see bench/README.md): " sizes_text(f) "."
    print ""
    print "Each cell: median (min–max) over the runs. `peak_rss_kb` is the whole"
    print "OS process's peak RSS (GNU time). Lower is better for every metric"
    print "except " HIGHER_TEXT " (higher is better)."
    if (HAS_TELAR && NOTHERS) {
        print "**telar vs best**: Telar's median against the best other peer's"
        print "median in that row (**best**): \"N× better\" means Telar is N times"
        print "faster, smaller, or higher for higher-is-better metrics; \"N× worse\""
        print "the reverse."
    }
    print ""
    many = HAS_TELAR && NOTHERS > 1
    hdr = "| workload | metric | s |"
    sep = "|---|---|---:|"
    for (i = 1; i <= NPEER; i++) { hdr = hdr " " PEER[i] " |"; sep = sep "---:|" }
    if (HAS_TELAR && NOTHERS) { hdr = hdr " best | telar vs best |"; sep = sep "---|---:|" }
    if (many)
        for (i = 1; i <= NPEER; i++) if (PEER[i] != "telar") {
            hdr = hdr " vs " PEER[i] " |"
            sep = sep "---:|"
        }
    print hdr
    print sep
    for (j = 1; j <= nrows[f]; j++) {
        r = rows[f, j]
        split(r, k, SUBSEP)
        row_stats(f, r)
        line = "| " k[1] " | " k[2] " | " k[3] " |"
        for (i = 1; i <= NPEER; i++) line = line " " cell(PEER[i]) " |"
        if (HAS_TELAR && NOTHERS)
            line = line " " (BEST == "" ? "–" : BEST) " | " advcell(ADV) " |"
        if (many)
            for (i = 1; i <= NPEER; i++) {
                p = PEER[i]
                if (p == "telar") continue
                a = ((p in N) && ("telar" in N)) ? advantage(k[2], MED["telar"], MED[p]) : ""
                line = line " " advcell(a) " |"
            }
        print line
    }
    if (disturbed[f]) {
        print ""
        print disturbed[f] " run(s) kept although other processes used more than " \
              meta[f, "noise_pct"] "% of the CPUs during them (the least disturbed of up to " \
              (meta[f, "retries"] + 1) " attempts); see the `# run` lines in raw.txt."
    }
    if (failed[f]) {
        print ""
        print failed[f] " run(s) failed; see the `# failed` lines in raw.txt and the progress output."
    }
    if (malformed[f]) {
        print ""
        print malformed[f] " malformed line(s) in raw.txt were ignored."
    }
}

function do_json(   f, i, j, r, k, p, first, e, nv, v) {
    f = 1
    sort_rows(f)
    peer_order(f)
    print "{"
    print "  \"stamp\": " jmeta_str(f, "stamp") ","
    print "  \"mode\": " jmeta_str(f, "mode") ","
    print "  \"reps\": " jmeta_num(f, "reps") ","
    print "  \"git\": " jmeta_str(f, "git") ","
    print "  \"cpus\": " jmeta_num(f, "cpus") ","
    print "  \"host\": " jmeta_str(f, "host") ","
    printf "  \"peers\": ["
    for (i = 1; i <= NPEER; i++) printf "%s%s", (i > 1 ? ", " : ""), jstr(PEER[i])
    print "],"
    print "  \"schedulers\": " (((f, "schedulers") in meta) && meta[f, "schedulers"] ~ /^[0-9,]+$/ ? jlist(meta[f, "schedulers"], 1) : "null") ","
    printf "  \"sizes\": {"
    for (i = 1; i <= nsizes[f]; i++) {
        e = sizes_order[f, i]
        printf "%s%s: %s", (i > 1 ? ", " : ""), jstr(e), \
            (size[f, e] ~ /^[0-9]+(,[0-9]+)*$/ ? jlist(size[f, e], 1) : jstr(size[f, e]))
    }
    print "},"
    print "  \"higher_is_better\": " jlist(HIGHER_LIST, 0) ","
    print "  \"ratio_is\": \"telar median / best_peer median; telar_advantage > 1 means Telar is better in the metric's direction\","
    print "  \"runs_disturbed\": " (disturbed[f] + 0) ","
    print "  \"runs_failed\": " (failed[f] + 0) ","
    print "  \"lines_malformed\": " (malformed[f] + 0) ","
    printf "  \"rows\": ["
    for (j = 1; j <= nrows[f]; j++) {
        r = rows[f, j]
        split(r, k, SUBSEP)
        row_stats(f, r)
        printf "%s\n    {\"workload\": %s, \"metric\": %s, \"schedulers\": %d, \"direction\": %s,\n", \
            (j > 1 ? "," : ""), jstr(k[1]), jstr(k[2]), k[3], jstr(higher_better(k[2]) ? "higher" : "lower")
        printf "     \"peers\": {"
        first = 1
        for (i = 1; i <= NPEER; i++) {
            p = PEER[i]
            if (!(p in N)) continue
            printf "%s\n       %s: {\"median\": %s, \"min\": %s, \"max\": %s, \"n\": %d, \"values\": [", \
                (first ? "" : ","), jstr(p), jnum(MED[p]), jnum(MIN[p]), jnum(MAX[p]), N[p]
            nv = split(LIST[p], v, " ")
            for (e = 1; e <= nv; e++) printf "%s%s", (e > 1 ? ", " : ""), jnum(v[e])
            printf "]}"
            first = 0
        }
        printf "},\n"
        printf "     \"best_peer\": %s, \"ratio\": %s, \"telar_advantage\": %s, \"ratio_to\": {", \
            (BEST == "" ? "null" : jstr(BEST)), (RATIO == "" ? "null" : jnum(RATIO)), \
            (ADV == "" ? "null" : jnum(ADV))
        first = 1
        if ("telar" in N)
            for (i = 1; i <= NPEER; i++) {
                p = PEER[i]
                if (p == "telar" || !(p in N) || MED[p] == 0) continue
                printf "%s%s: %s", (first ? "" : ", "), jstr(p), jnum(MED["telar"] / MED[p])
                first = 0
            }
        printf "}}"
    }
    print ""
    print "  ]"
    print "}"
}

# One chart per workload and metric: a group of bars per scheduler count,
# one bar per peer (its median), with a min–max error bar. Log scale when
# the values span more than 30×, so a slow peer does not flatten the rest.
function do_gnuplot(   f, i, j, r, k, p, key, nc, c, lo, hi, nd, line, plot, pos, has, ncol, col) {
    f = 1
    sort_rows(f)
    peer_order(f)
    if (chartdir == "") chartdir = "."
    # One colour per peer by its place in PEER[], so a peer keeps its colour
    # from chart to chart even when another peer has no bar in one of them.
    ncol = split("#4e79a7 #f28e2b #59a14f #e15759 #76b7b2 #edc948", col, " ")
    print "set terminal svg size 720,420 dynamic noenhanced font 'sans,12' background rgb 'white'"
    print "set datafile missing '?'"
    print "set style data histogram"
    print "set style histogram errorbars gap 1 lw 1"
    print "set style fill solid 0.8 border -1"
    print "set key outside right top"
    print "set grid ytics"
    print "set xlabel 'schedulers'"
    nc = 0
    for (j = 1; j <= nrows[f]; j++) {
        split(rows[f, j], k, SUBSEP)
        key = k[1] SUBSEP k[2]
        if (!(key in chart)) { chart[key] = ++nc; cw[nc] = k[1]; cm[nc] = k[2] }
        crows[chart[key], ++ncrows[chart[key]]] = rows[f, j]
    }
    for (c = 1; c <= nc; c++) {
        lo = ""
        hi = ""
        pos = 1
        nd = 0
        split("", has)
        for (j = 1; j <= ncrows[c]; j++) {
            r = crows[c, j]
            split(r, k, SUBSEP)
            row_stats(f, r)
            line = "\"" k[3] "\""
            for (i = 1; i <= NPEER; i++) {
                p = PEER[i]
                if (!(p in N)) { line = line " ? ? ?"; continue }
                has[i] = 1
                line = line " " jnum(MED[p]) " " jnum(MIN[p]) " " jnum(MAX[p])
                if (MIN[p] <= 0) pos = 0
                if (lo == "" || MIN[p] < lo) lo = MIN[p]
                if (hi == "" || MAX[p] > hi) hi = MAX[p]
            }
            data[++nd] = line
        }
        print ""
        print "$d" c " << EOD"
        for (j = 1; j <= nd; j++) print data[j]
        print "EOD"
        print "set output '" chartdir "/" cw[c] "." cm[c] ".svg'"
        print "set title '" cw[c] ": " cm[c] " (" (higher_better(cm[c]) ? "higher" : "lower") \
              " is better; bar: median, whiskers: min-max)'"
        if (pos && lo != "" && hi / lo > 30) {
            print "set ylabel '" cm[c] " (log scale)'"
            print "set logscale y"
            print "set yrange [" jnum(lo / 2) ":" jnum(hi * 2) "]"
        } else {
            print "set ylabel '" cm[c] "'"
            print "unset logscale y"
            print "set yrange [0:*]"
        }
        # A peer with no value in this chart gets no bar: gnuplot warns
        # about an all-missing column. The first plotted column carries
        # the x labels.
        plot = ""
        for (i = 1; i <= NPEER; i++) {
            if (!(i in has)) continue
            plot = plot (plot == "" ? "plot" : ",") " $d" c " using " (3 * i - 1) ":" (3 * i) ":" (3 * i + 1) \
                   (plot == "" ? ":xtic(1)" : "") " title '" PEER[i] "' lc rgb '" col[(i - 1) % ncol + 1] "'"
        }
        print plot
    }
    print ""
    print "unset output"
}

# Before/after: for each (workload, metric, s, peer) in both A and B, the
# medians, B/A and a verdict. A move counts only if it is beyond the noise:
# the runs' ranges [min, max] of A and B do not overlap AND B/A differs
# from 1 by more than 5%. Either alone is too weak: with 3 reps, disjoint
# ranges happen by chance for a 1% move, and a 5% move inside overlapping
# ranges is what noise looks like.
function do_compare(   i, j, r, k, p, a, b, amin, amax, bmin, bmax, q, verdict, nb, nw, nn, line, only_a, only_b, key) {
    if (nfile != 2) {
        print "bench_report: compare needs two raw files" > "/dev/stderr"
        exit_code = 2
        return
    }
    sort_rows(1)
    peer_order(1)
    print "# Benchmark comparison"
    print ""
    print "A: " fname[1] " (" meta[1, "stamp"] ", git " meta[1, "git"] ", mode " meta[1, "mode"] ", reps " meta[1, "reps"] ")"
    print "B: " fname[2] " (" meta[2, "stamp"] ", git " meta[2, "git"] ", mode " meta[2, "mode"] ", reps " meta[2, "reps"] ")"
    if (meta[1, "mode"] != meta[2, "mode"])
        print "**Warning**: A and B ran in different modes, so at different sizes."
    print ""
    print "Cells: median (min–max). B/A = B's median / A's median. A change is"
    print "flagged (**better**/**worse**, for B, in the metric's direction) only when"
    print "A's and B's [min, max] ranges do not overlap AND B/A is off 1 by more"
    print "than 5%; otherwise it is `noise`. With one rep a range is a single value,"
    print "so only the 5% rule is left: use 3 or more reps."
    print ""
    print "| workload | metric | s | peer | A | B | B/A | change |"
    print "|---|---|---:|---|---:|---:|---:|---|"
    nb = nw = nn = 0
    for (j = 1; j <= nrows[1]; j++) {
        r = rows[1, j]
        split(r, k, SUBSEP)
        for (i = 1; i <= NPEER; i++) {
            p = PEER[i]
            if (!((1, r, p) in vals) || !((2, r, p) in vals)) continue
            seen_both[r, p] = 1
            stats(vals[1, r, p]); a = SMED; amin = SMIN; amax = SMAX
            line = "| " k[1] " | " k[2] " | " k[3] " | " p " | " fmt(a) (SN > 1 ? " (" fmt(amin) "–" fmt(amax) ")" : "")
            stats(vals[2, r, p]); b = SMED; bmin = SMIN; bmax = SMAX
            line = line " | " fmt(b) (SN > 1 ? " (" fmt(bmin) "–" fmt(bmax) ")" : "")
            q = a != 0 ? b / a : ""
            verdict = "noise"
            if (q != "" && (amax < bmin || bmax < amin) && (q > 1.05 || q < 0.95)) {
                verdict = better(k[2], b, a) ? "**better**" : "**worse**"
            }
            if (verdict == "noise") nn++
            else if (verdict == "**better**") nb++
            else nw++
            print line " | " (q == "" ? "–" : sprintf("%.3f", q)) " | " verdict " |"
        }
    }
    only_a = only_b = 0
    for (key in vals) {
        split(key, k, SUBSEP)
        r = k[2] SUBSEP k[3] SUBSEP k[4]
        if (!((r, k[5]) in seen_both)) { if (k[1] == 1) only_a++; else only_b++ }
    }
    print ""
    print (nb + nw + nn) " rows in both: " nb " better, " nw " worse, " nn " within the noise." \
          (only_a ? " " only_a " only in A." : "") (only_b ? " " only_b " only in B." : "")
}

END {
    if (exit_code) exit exit_code
    if (mode == "table") do_table()
    else if (mode == "json") do_json()
    else if (mode == "gnuplot") do_gnuplot()
    else if (mode == "compare") do_compare()
    if (exit_code) exit exit_code
}
