%% pingpong: two processes exchange a message N times (plain `!`, so sends are
%% asynchronous). ping sends {ping, Self, I} to pong, pong answers {pong, I};
%% after N round trips ping tells the main process by a message and pong is
%% told to stop.
%%
%%   pingpong [-s SCHEDULERS] [N]    (default 1000000)
-module(pingpong).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    N = peer_cli:parse("pingpong", 1000000),
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    Pong = spawn(fun pong/0),
    spawn(fun() -> ping(Pong, 0, N, Self) end),
    Done = receive {done, D} -> D end,
    T1 = erlang:monotonic_time(nanosecond),
    case Done of
        N -> ok;
        _ -> peer_cli:fail("pingpong",
                 io_lib:format("~b round trips, want ~b", [Done, N]))
    end,
    peer_cli:report("pingpong", "ns_per_roundtrip", (T1 - T0) / N),
    erlang:halt(0).

ping(Pong, N, N, Parent) ->
    Pong ! stop,
    Parent ! {done, N};
ping(Pong, I, N, Parent) ->
    Pong ! {ping, self(), I},
    receive
        {pong, I} -> ping(Pong, I + 1, N, Parent)
    end.

pong() ->
    receive
        {ping, From, I} ->
            From ! {pong, I},
            pong();
        stop ->
            ok
    end.
