%% spawn_idle: spawn N processes that each block in a receive.
%%
%% The spawn loop alone is timed. Each process bumps a shared atomic counter
%% just before its receive; the main process polls the counter (sleeping 1 ms
%% between looks) until all N are there, then reads VmRSS: bytes_per_proc is
%% its growth since before the loop, over N (it includes the main process's
%% list of pids). Then every process is sent `stop`, replies `done` and exits;
%% exit_ns_per_proc is the time until the main process has all N replies.
%%
%%   spawn_idle [-s SCHEDULERS] [N]    (default 1000000)
-module(spawn_idle).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [N] = peer_cli:parse_sizes("spawn_idle", [{"N", 1000000}]),
    Self = self(),
    Ready = atomics:new(1, []),
    Rss0 = peer_cli:rss_bytes(),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = spawn_loop(N, Ready, Self, []),
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
    peer_cli:report("spawn_idle", "spawn_ns_per_proc", (T1 - T0) / N),
    peer_cli:report("spawn_idle", "bytes_per_proc", (Rss1 - Rss0) / N),
    peer_cli:report("spawn_idle", "exit_ns_per_proc", (T3 - T2) / N),
    erlang:halt(0).

spawn_loop(0, _Ready, _Parent, Pids) ->
    Pids;
spawn_loop(I, Ready, Parent, Pids) ->
    P = spawn(fun() -> idle(Ready, Parent) end),
    spawn_loop(I - 1, Ready, Parent, [P | Pids]).

idle(Ready, Parent) ->
    atomics:add(Ready, 1, 1),
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
