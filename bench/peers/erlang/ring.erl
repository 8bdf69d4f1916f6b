%% ring: PROCS processes in a ring, numbered 0..PROCS-1, each knowing the
%% next. The main process injects one token, an integer count of the hops
%% left (HOPS), at process 0; each process passes the token on decremented
%% (plain `!`); the process that receives 0 tells the main process its number,
%% which must be HOPS mod PROCS. The main process then stops the ring.
%% Only the hops are timed.
%%
%%   ring [-s SCHEDULERS] [PROCS [HOPS]]    (defaults 10000 10000000)
-module(ring).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Procs, Hops] = peer_cli:parse_sizes("ring",
                                         [{"PROCS", 10000}, {"HOPS", 10000000}]),
    Self = self(),
    %% The last process is spawned first and learns its successor, process
    %% 0, once that exists; every other process is spawned knowing its
    %% successor.
    Last = spawn(fun() -> receive {next, Next} -> node(Procs - 1, Next, Self) end end),
    [First | _] = Pids = build(Procs - 2, Last, Self, [Last]),
    Last ! {next, First},
    T0 = erlang:monotonic_time(nanosecond),
    First ! Hops,
    Holder = receive {holder, H} -> H end,
    T1 = erlang:monotonic_time(nanosecond),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    case Hops rem Procs of
        Holder -> ok;
        Want -> peer_cli:fail("ring",
                    io_lib:format("token 0 reached process ~b, want ~b",
                                  [Holder, Want]))
    end,
    peer_cli:report("ring", "ns_per_hop", (T1 - T0) / Hops),
    erlang:halt(0).

%% Spawns processes I, I-1, ..., 0, each with the previous one as its
%% successor; returns all their pids, process 0 first.
build(I, _Next, _Parent, Pids) when I < 0 ->
    Pids;
build(I, Next, Parent, Pids) ->
    P = spawn(fun() -> node(I, Next, Parent) end),
    build(I - 1, P, Parent, [P | Pids]).

node(I, Next, Parent) ->
    receive
        0 ->
            Parent ! {holder, I},
            node(I, Next, Parent);
        Token when is_integer(Token) ->
            Next ! Token - 1,
            node(I, Next, Parent);
        stop ->
            ok
    end.
