%% fairness: how late a sleeping process wakes while CPU-bound processes run.
%% HOGS processes count forever in a tail-recursive loop (preempted only by
%% reduction counting). A ticker process sleeps 1 ms (`receive after 1`) TICKS
%% times and records each wake-up's lateness (actual sleep - 1 ms); the run
%% stops after TICKS ticks or once CAP_MS milliseconds have passed, whichever
%% comes first. Printed as workload fairness_h<HOGS>; HOGS may be 0 (the
%% idle baseline).
%%
%%   fairness [-s SCHEDULERS] [HOGS [TICKS [CAP_MS]]]  (defaults 1000 2000 10000)
-module(fairness).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Hogs, Ticks, CapMs] =
        peer_cli:parse_sizes("fairness", [{"HOGS", 1000, 0}, {"TICKS", 2000},
                                          {"CAP_MS", 10000}]),
    Name = "fairness_h" ++ integer_to_list(Hogs),
    Self = self(),
    Start = erlang:monotonic_time(nanosecond),
    Deadline = Start + CapMs * 1000000,
    HogPids = [spawn(fun() -> hog(0) end) || _ <- lists:seq(1, Hogs)],
    spawn(fun() -> ticker(Ticks, Deadline, Self, []) end),
    Lates = receive {lateness, L} -> L end,
    lists:foreach(fun(P) -> exit(P, kill) end, HogPids),
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
    peer_cli:report(Name, "ticks", N),
    erlang:halt(0).

%% Never returns: a CPU-bound tail-recursive loop on a small integer.
hog(N) ->
    hog(N + 1).

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
