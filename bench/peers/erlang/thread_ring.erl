%% thread_ring: the benchmarks-game thread-ring. PROCS processes numbered
%% 1..PROCS in a ring, each knowing the next. The main process injects one
%% token, an integer count of the hops left (HOPS), at process 1; each
%% process passes it on decremented (plain `!`); the process that receives 0
%% tells the main process its number, which must be (HOPS mod PROCS) + 1.
%% The main process then stops the ring. Only the hops are timed.
%%
%%   thread_ring [-s SCHEDULERS] [PROCS [HOPS]]    (defaults 503 10000000)
-module(thread_ring).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Procs, Hops] = peer_cli:parse_sizes("thread_ring",
                                         [{"PROCS", 503}, {"HOPS", 10000000}]),
    Self = self(),
    %% Process PROCS is spawned first and learns its successor, process 1,
    %% once that exists; every other process is spawned knowing its
    %% successor.
    Last = spawn(fun() -> receive {next, Next} -> roundtrip(Procs, Next, Self) end end),
    [First | _] = Pids = build(Procs - 1, Last, Self, [Last]),
    Last ! {next, First},
    T0 = erlang:monotonic_time(nanosecond),
    First ! Hops,
    Holder = receive {holder, H} -> H end,
    T1 = erlang:monotonic_time(nanosecond),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    case Hops rem Procs + 1 of
        Holder -> ok;
        Want -> peer_cli:fail("thread_ring",
                    io_lib:format("token 0 reached process ~b, want ~b",
                                  [Holder, Want]))
    end,
    peer_cli:report("thread_ring", "ns_per_hop", (T1 - T0) / Hops),
    erlang:halt(0).

%% Spawns processes Id, Id-1, ..., 1, each with the previous one as its
%% successor; returns all their pids, process 1 first.
build(0, _Next, _Parent, Pids) ->
    Pids;
build(Id, Next, Parent, Pids) ->
    P = spawn(fun() -> roundtrip(Id, Next, Parent) end),
    build(Id - 1, P, Parent, [P | Pids]).

roundtrip(Id, Next, Parent) ->
    receive
        0 ->
            Parent ! {holder, Id},
            roundtrip(Id, Next, Parent);
        Token when is_integer(Token) ->
            Next ! Token - 1,
            roundtrip(Id, Next, Parent);
        stop ->
            ok
    end.
