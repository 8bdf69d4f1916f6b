%% spawn_idle: spawn N processes that each block in a receive.
%%
%% The spawn loop alone is timed. Each process bumps a shared atomic counter
%% just before its receive; the main process polls the counter (sleeping 1 ms
%% between looks) until all N are there, then reads VmRSS: bytes_per_proc is
%% its growth since before the loop, over N (it includes the main process's
%% list of pids). Then every process is sent `stop`, replies `done` and exits;
%% exit_ns_per_proc is the time until the main process has all N replies.
%%
%% HIBERNATE = 1 (default 0): each process calls erlang:hibernate/3 right
%% after bumping the counter instead of blocking in a plain receive, and
%% takes its stop in woken/1 when it wakes; the metrics are printed as
%% workload spawn_idle_hib.
%%
%%   spawn_idle [-s SCHEDULERS] [N] [HIBERNATE]    (default 1000000 0)
-module(spawn_idle).
-export([main/0, main/1, woken/1]).

main(_Args) -> main().

main() ->
    [N, Hib] = peer_cli:parse_sizes("spawn_idle", [{"N", 1000000},
                                                    {"HIBERNATE", 0, 0}]),
    Hib =< 1 orelse peer_cli:fail("spawn_idle", "HIBERNATE must be 0 or 1"),
    Name = case Hib of 1 -> "spawn_idle_hib"; 0 -> "spawn_idle" end,
    Self = self(),
    Ready = atomics:new(1, []),
    Rss0 = peer_cli:rss_bytes(),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = spawn_loop(N, Ready, Self, Hib, []),
    T1 = erlang:monotonic_time(nanosecond),
    wait_ready(Ready, N),
    Rss1 = peer_cli:rss_bytes(),
    T2 = erlang:monotonic_time(nanosecond),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    Done = collect(N, 0),
    T3 = erlang:monotonic_time(nanosecond),
    case Done of
        N -> ok;
        _ -> peer_cli:fail("spawn_idle",
                 io_lib:format("~b replies, want ~b", [Done, N]))
    end,
    peer_cli:report(Name, "spawn_ns_per_proc", (T1 - T0) / N),
    peer_cli:report(Name, "bytes_per_proc", (Rss1 - Rss0) / N),
    peer_cli:report(Name, "exit_ns_per_proc", (T3 - T2) / N),
    erlang:halt(0).

spawn_loop(0, _Ready, _Parent, _Hib, Pids) ->
    Pids;
spawn_loop(I, Ready, Parent, 0, Pids) ->
    P = spawn(fun() -> idle(Ready, Parent) end),
    spawn_loop(I - 1, Ready, Parent, 0, [P | Pids]);
spawn_loop(I, Ready, Parent, 1, Pids) ->
    P = spawn(fun() -> idle_hib(Ready, Parent) end),
    spawn_loop(I - 1, Ready, Parent, 1, [P | Pids]).

idle(Ready, Parent) ->
    atomics:add(Ready, 1, 1),
    woken(Parent).

idle_hib(Ready, Parent) ->
    atomics:add(Ready, 1, 1),
    erlang:hibernate(?MODULE, woken, [Parent]).

woken(Parent) ->
    receive
        stop -> Parent ! done
    end.

wait_ready(Ready, N) ->
    case atomics:get(Ready, 1) of
        N -> ok;
        _ ->
            receive after 1 -> ok end,
            wait_ready(Ready, N)
    end.

collect(0, Got) ->
    Got;
collect(Left, Got) ->
    receive
        done -> collect(Left - 1, Got + 1)
    end.
