%% chameneos: the benchmarks-game chameneos-redux, run twice: with 3
%% creatures (blue red yellow) and with 10 (blue red yellow red yellow blue
%% red yellow red blue). Each creature asks a broker process for a meeting by
%% sending it {self(), Colour}; the broker pairs requests two by two and tells
%% each creature of the pair the other's pid and colour, and each creature
%% takes the complement of the two colours and asks again. After MEETINGS
%% meetings the broker answers every request with `stop`; each creature
%% replies with the number of meetings it had (and how many were with itself,
%% which must be 0), and the broker sends the total to the main process. The
%% creatures' counts must sum to 2*MEETINGS per run.
%% ns_per_meeting is both runs' time over both runs' meetings.
%%
%%   chameneos [-s SCHEDULERS] [MEETINGS]    (default 600000)
-module(chameneos).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Meetings] = peer_cli:parse_sizes("chameneos", [{"MEETINGS", 600000}]),
    Ns3 = run([blue, red, yellow], Meetings),
    Ns10 = run([blue, red, yellow, red, yellow, blue, red, yellow, red, blue],
               Meetings),
    peer_cli:report("chameneos", "ns_per_meeting", (Ns3 + Ns10) / (2 * Meetings)),
    erlang:halt(0).

%% Runs Meetings meetings among creatures of the given colours and returns
%% the time it took, in ns.
run(Colours, Meetings) ->
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    Broker = spawn(fun() -> broker(Meetings, length(Colours), Self) end),
    lists:foreach(fun(C) -> spawn(fun() -> creature(Broker, C, 0, 0) end) end,
                  Colours),
    {Total, MetSelf} = receive {met, T, S} -> {T, S} end,
    T1 = erlang:monotonic_time(nanosecond),
    case {Total, MetSelf} of
        {Want, 0} when Want =:= 2 * Meetings -> ok;
        _ -> peer_cli:fail("chameneos",
                 io_lib:format("~b creatures: ~b meetings (~b with themselves), "
                               "want ~b (0)",
                               [length(Colours), Total, MetSelf, 2 * Meetings]))
    end,
    T1 - T0.

creature(Broker, Colour, Met, MetSelf) ->
    Broker ! {self(), Colour},
    receive
        {Other, OtherColour} ->
            creature(Broker, complement(Colour, OtherColour), Met + 1,
                     if Other =:= self() -> MetSelf + 1; true -> MetSelf end);
        stop ->
            Broker ! {met, Met, MetSelf}
    end.

%% Pairs the next two requests, Left times; then stops the creatures.
broker(0, Creatures, Parent) ->
    stop_all(Creatures, 0, 0, Parent);
broker(Left, Creatures, Parent) ->
    receive {PidA, _} = A -> ok end,
    receive {PidB, _} = B -> ok end,
    PidA ! B,
    PidB ! A,
    broker(Left - 1, Creatures, Parent).

%% Every creature has one request outstanding or on its way; answer each with
%% `stop` and add up the counts they send back.
stop_all(0, Total, MetSelf, Parent) ->
    Parent ! {met, Total, MetSelf};
stop_all(Creatures, Total, MetSelf, Parent) ->
    receive
        {Pid, Colour} when is_atom(Colour) ->
            Pid ! stop,
            stop_all(Creatures, Total, MetSelf, Parent);
        {met, Met, Selfs} ->
            stop_all(Creatures - 1, Total + Met, MetSelf + Selfs, Parent)
    end.

complement(C, C) -> C;
complement(blue, red) -> yellow;
complement(blue, yellow) -> red;
complement(red, blue) -> yellow;
complement(red, yellow) -> blue;
complement(yellow, blue) -> red;
complement(yellow, red) -> blue.
