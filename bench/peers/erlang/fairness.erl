%% fairness: how late a sleeping process wakes while busy processes run.
%% A ticker process sleeps 1 ms (`receive after 1`) TICKS times and records
%% each wake-up's lateness (actual sleep - 1 ms); the run stops after TICKS
%% ticks or once CAP_MS milliseconds have passed, whichever comes first.
%%
%% MODE 0, cooperative hogs: HOGS processes count forever in a tail-recursive
%% loop (preempted only by reduction counting). Printed as workload
%% fairness_h<HOGS>; HOGS may be 0 (the idle baseline).
%%
%% MODE 1, blocking hogs: HOGS processes each read one byte at a time from
%% their own pipe (a FIFO) with file:read/2 on a file opened [read, raw,
%% binary], while a feeder writes one byte to the pipes in turn. Printed as
%% workload fairness_blk<HOGS>. See blocking/3 for why this read and how the
%% feeder works.
%%
%% MODE 2, non-cooperative hogs: HOGS processes run a tight arithmetic loop
%% (a 32-bit xorshift generator, see nc_hog/2). Printed as workload
%% fairness_nc<HOGS>. In Erlang this loop is still cooperative: the BEAM
%% counts a reduction for every function call, a tail call included, so any
%% loop written in Erlang is preempted after its slice of reductions (4,000)
%% like mode 0's. Erlang has no way to write code the VM cannot preempt
%% short of a NIF (native C code, whose long runs are the "scheduler
%% collapse" the VM documents). The loop below is what an Erlang programmer
%% writes for pure arithmetic, so it is the honest peer for Telar's C loop
%% that never calls the runtime: it shows what Telar's asynchronous
%% preemption has to come close to.
%%
%%   fairness [-s SCHEDULERS] [HOGS [TICKS [CAP_MS [MODE]]]]
%%                                          (defaults 1000 2000 10000 0)
-module(fairness).
-export([main/0, main/1]).

%% The feeder's sleep between two writes, in microseconds (the same in every
%% peer; Linux's 50 us timer slack comes on top).
-define(FEED_SLEEP_US, 50).

main(_Args) -> main().

main() ->
    [Hogs, Ticks, CapMs, Mode] =
        peer_cli:parse_sizes("fairness", [{"HOGS", 1000, 0}, {"TICKS", 2000},
                                          {"CAP_MS", 10000}, {"MODE", 0, 0}]),
    case Mode of
        0 -> cooperative(Hogs, Ticks, CapMs);
        1 -> blocking(Hogs, Ticks, CapMs);
        2 -> noncoop(Hogs, Ticks, CapMs);
        _ -> peer_cli:fail("fairness", "MODE must be 0 (cooperative hogs), "
                                       "1 (blocking hogs) or 2 "
                                       "(non-cooperative hogs)")
    end.

cooperative(Hogs, Ticks, CapMs) ->
    hogs_and_ticker("fairness_h", fun(_) -> hog(0) end, Hogs, Ticks, CapMs).

noncoop(Hogs, Ticks, CapMs) ->
    hogs_and_ticker("fairness_nc", fun(I) -> nc_hog(I bor 1, 1) end, Hogs,
                    Ticks, CapMs).

%% Modes 0 and 2: spawns Hogs processes running Hog(I) for I in 1..Hogs,
%% then the ticker, and reports its lateness.
hogs_and_ticker(Prefix, Hog, Hogs, Ticks, CapMs) ->
    Name = Prefix ++ integer_to_list(Hogs),
    Self = self(),
    Start = erlang:monotonic_time(nanosecond),
    Deadline = Start + CapMs * 1000000,
    HogPids = [spawn(fun() -> Hog(I) end) || I <- lists:seq(1, Hogs)],
    spawn(fun() -> ticker(Ticks, Deadline, Self, []) end),
    Lates = receive {lateness, L} -> L end,
    lists:foreach(fun(P) -> exit(P, kill) end, HogPids),
    report(Name, Ticks, Lates),
    erlang:halt(0).

%% Checks the tick count and prints the lateness percentiles.
report(Name, Ticks, Lates) ->
    N = length(Lates),
    if
        N >= 1, N =< Ticks -> ok;
        true -> peer_cli:fail(Name, io_lib:format("~b ticks recorded, want 1..~b",
                                                  [N, Ticks]))
    end,
    Sorted = lists:sort(Lates),
    peer_cli:report(Name, "p50_us", percentile(Sorted, N, 50) / 1000),
    peer_cli:report(Name, "p99_us", percentile(Sorted, N, 99) / 1000),
    peer_cli:report(Name, "max_us", lists:last(Sorted) / 1000),
    peer_cli:report(Name, "ticks", N).

%% MODE 1. The hogs' read: Erlang reads a pipe either through a port (the VM
%% polls the fd and sends the process a message) or through the file module.
%% A port can only be opened on a pipe the VM itself creates for a child
%% program (open_port spawn), so each hog would need a `cat` process of its
%% own between the feeder and the VM: twice the system work per byte, and
%% the test would be about the cats. The file module opens the FIFO directly
%% and its read is the closest Erlang has to a blocking read() made off the
%% schedulers: since OTP 21 raw file operations are NIFs that run on the
%% dirty I/O schedulers, threads kept for calls that block, so that a read
%% of an empty pipe blocks a dirty I/O thread in the kernel while the
%% process waits and the normal schedulers go on. That is BEAM's version of
%% tel_blocking, which is what this mode measures. Every hog can block at
%% once only with at least HOGS dirty I/O schedulers (+SDio, default 10, at
%% most 1024): tools/bench passes +SDio min(HOGS, 1024) in ERL_FLAGS, as
%% Telar's workload sizes its blocking pool to HOGS; with fewer, the extra
%% reads wait in the dirty I/O run queue (we say so on stderr).
%%
%% The feeder must run outside the VM, as Telar's feeder thread runs outside
%% Telar (an Erlang process could not sleep 50 us: `receive after` counts
%% whole milliseconds). It is a small Perl program (perl-base is part of
%% every Debian system), the same as the Go peer's, started as a port: it
%% makes the FIFOs, opens them (read-write, so the open does not wait for a
%% reader), says "ready", then writes one byte to each in turn, sleeping in
%% select() between writes, until its standard input closes (the VM exits).
%% Warm-up is not measured: the ticker starts once every hog has read a
%% byte, which must happen within CAP_MS; CAP_MS then bounds the ticks.
blocking(Hogs, Ticks, CapMs) ->
    Name = "fairness_blk" ++ integer_to_list(Hogs),
    DirtyIo = erlang:system_info(dirty_io_schedulers),
    if
        DirtyIo < Hogs ->
            io:format(standard_error,
                      "~s: ~b dirty I/O schedulers for ~b hogs: the extra "
                      "reads queue (ERL_FLAGS=\"+SDio ~b\" lets all block)~n",
                      [Name, DirtyIo, Hogs, min(Hogs, 1024)]);
        true -> ok
    end,
    Self = self(),
    Counts = counters:new(max(Hogs, 1), [write_concurrency]),
    {Dir, Port} = case Hogs of
                      0 -> {none, none};
                      _ -> start_feeder(Name, Hogs)
                  end,
    _ = [spawn(fun() -> blocking_hog(fifo(Dir, I), Counts, I, Self) end)
         || I <- lists:seq(1, Hogs)],
    WarmBy = erlang:monotonic_time(millisecond) + CapMs,
    Warm = await_warm(Hogs, WarmBy),
    remove_fifos(Dir, Hogs),
    case Warm of
        ok -> ok;
        {error, Why} -> peer_cli:fail(Name, Why)
    end,
    Reads0 = total_reads(Counts, Hogs),
    Start = erlang:monotonic_time(nanosecond),
    spawn(fun() -> ticker(Ticks, Start + CapMs * 1000000, Self, []) end),
    Lates = receive
                {lateness, L} -> L;
                {hog_failed, Why2} -> peer_cli:fail(Name, Why2);
                {Port, {exit_status, S}} -> % the hogs would be idle
                    peer_cli:fail(Name, io_lib:format("the feeder exited (~b)",
                                                      [S]))
            end,
    Reads = total_reads(Counts, Hogs) - Reads0,
    Ms = (erlang:monotonic_time(nanosecond) - Start) / 1.0e6,
    if
        Hogs > 0 ->
            io:format(standard_error, "~s: ~b hog reads in ~b ms (~b/s)~n",
                      [Name, Reads, round(Ms), round(Reads * 1000 / Ms)]);
        true -> ok
    end,
    report(Name, Ticks, Lates),
    erlang:halt(0).

fifo(Dir, I) -> filename:join(Dir, integer_to_list(I)).

%% Starts the feeder on Hogs new FIFOs (named 1..Hogs in a new directory);
%% returns the directory and the feeder's port once they are all open for
%% writing.
start_feeder(Name, Hogs) ->
    Tmp = case os:getenv("TMPDIR") of
              false -> "/tmp";
              "" -> "/tmp";
              T -> T
          end,
    Dir = filename:join(Tmp, "telar_fairness_" ++ os:getpid()),
    case file:make_dir(Dir) of
        ok -> ok;
        {error, E} -> peer_cli:fail(Name, io_lib:format("mkdir ~s: ~p", [Dir, E]))
    end,
    Perl = case os:find_executable("perl") of
               false -> peer_cli:fail(Name, "perl not found (the feeder)");
               P -> P
           end,
    Sleep = io_lib:format("~f", [?FEED_SLEEP_US / 1.0e6]),
    Port = open_port({spawn_executable, Perl},
                     [{args, ["-e", feeder_script(), Dir, integer_to_list(Hogs),
                              lists:flatten(Sleep)]},
                      {line, 64}, binary, exit_status, use_stdio]),
    receive
        {Port, {data, {eol, <<"ready">>}}} -> {Dir, Port};
        {Port, {exit_status, S}} ->
            remove_fifos(Dir, Hogs),
            peer_cli:fail(Name, io_lib:format("the feeder exited (~b)", [S]))
    end.

%% perl -e SCRIPT DIR N SLEEP_S: makes DIR/1..DIR/N (FIFOs), opens them,
%% prints "ready", then writes one byte to each in turn until its standard
%% input closes (or is readable).
feeder_script() ->
    "use strict; use warnings; use POSIX qw(mkfifo); use Fcntl;
     my ($dir, $n, $sleep) = @ARGV;
     my @fh = map {
         my $p = \"$dir/$_\";
         mkfifo($p, 0600) or die \"mkfifo $p: $!\";
         sysopen(my $f, $p, O_RDWR) or die \"open $p: $!\";
         $f } 1 .. $n;
     $| = 1; print \"ready\\n\";
     my $rin = ''; vec($rin, fileno(STDIN), 1) = 1;
     for (my $i = 0; ; $i = ($i + 1) % $n) {
         my $r = $rin;
         last if select($r, undef, undef, $sleep) > 0;
         defined(syswrite($fh[$i], 'x', 1)) or die \"write: $!\";
     }".

%% The FIFOs stay usable once opened; their names can go.
remove_fifos(none, _) -> ok;
remove_fifos(Dir, Hogs) ->
    _ = [file:delete(fifo(Dir, I)) || I <- lists:seq(1, Hogs)],
    _ = file:del_dir(Dir),
    ok.

%% Waits for Left {warm, _} messages (each hog's first byte) until WarmBy.
await_warm(0, _) -> ok;
await_warm(Left, WarmBy) ->
    Wait = max(0, WarmBy - erlang:monotonic_time(millisecond)),
    receive
        {warm, _} -> await_warm(Left - 1, WarmBy);
        {hog_failed, Why} -> {error, Why}
    after Wait ->
        {error, io_lib:format("~b hogs have read nothing by CAP_MS", [Left])}
    end.

total_reads(Counts, Hogs) ->
    lists:sum([counters:get(Counts, I) || I <- lists:seq(1, Hogs)]).

%% Opens its FIFO and reads it one byte at a time until end of file (the
%% feeder is gone), counting the bytes in Counts[I].
blocking_hog(Fifo, Counts, I, Main) ->
    case file:open(Fifo, [read, raw, binary]) of
        {ok, Fd} -> read_loop(Fd, Counts, I, Main, first);
        {error, E} -> Main ! {hog_failed, io_lib:format("open ~s: ~p", [Fifo, E])}
    end.

read_loop(Fd, Counts, I, Main, First) ->
    case file:read(Fd, 1) of
        {ok, <<_>>} ->
            counters:add(Counts, I, 1),
            First =:= first andalso (Main ! {warm, self()}),
            read_loop(Fd, Counts, I, Main, later);
        eof ->
            ok;
        Other ->
            Main ! {hog_failed, io_lib:format("read: ~p", [Other])}
    end.

%% Never returns: a CPU-bound tail-recursive loop on a small integer.
hog(N) ->
    hog(N + 1).

%% Never returns: a 32-bit xorshift generator in X (masked, so every value
%% stays a small integer: no bignum, no allocation), with N counting the
%% iterations. The tail call is the only thing the VM sees.
-define(M32, 16#FFFFFFFF).
nc_hog(X0, N) ->
    X1 = X0 bxor ((X0 bsl 13) band ?M32),
    X2 = X1 bxor (X1 bsr 17),
    X3 = X2 bxor ((X2 bsl 5) band ?M32),
    nc_hog(X3, N + 1).

%% Sends the lateness of each wake-up, in ns, to Parent.
ticker(0, _Deadline, Parent, Lates) ->
    Parent ! {lateness, Lates};
ticker(Left, Deadline, Parent, Lates) ->
    T0 = erlang:monotonic_time(nanosecond),
    receive after 1 -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    Late = T1 - T0 - 1000000,
    if
        T1 >= Deadline -> Parent ! {lateness, [Late | Lates]};
        true -> ticker(Left - 1, Deadline, Parent, [Late | Lates])
    end.

%% Nearest-rank percentile P of a sorted list of N values.
percentile(Sorted, N, P) ->
    lists:nth(max(1, (N * P + 99) div 100), Sorted).
