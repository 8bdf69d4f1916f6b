%% skynet: a tree of processes. Each node spawns (up to) 10 children until
%% there are LEAVES leaves; leaf I sends its number I to its parent, and every
%% inner node sends the sum of its children's replies to its own parent
%% (plain `!`, so sends are asynchronous). The root's sum must be
%% LEAVES*(LEAVES-1)/2.
%%
%%   skynet [-s SCHEDULERS] [LEAVES]    (default 1000000)
-module(skynet).
-export([main/0, main/1]).

-define(FANOUT, 10).

main(_Args) -> main().

main() ->
    Leaves = peer_cli:parse("skynet", 1000000),
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    spawn(fun() -> skynet(Self, 0, Leaves) end),
    Sum = receive {sum, S} -> S end,
    T1 = erlang:monotonic_time(nanosecond),
    case Leaves * (Leaves - 1) div 2 of
        Sum -> ok;
        Want -> peer_cli:fail("skynet",
                    io_lib:format("wrong sum ~b, want ~b", [Sum, Want]))
    end,
    peer_cli:report("skynet", "wall_ms", (T1 - T0) / 1.0e6),
    erlang:halt(0).

%% Covers the leaves [Num, Num+Size) and sends their sum to Parent.
skynet(Parent, Num, 1) ->
    Parent ! {sum, Num};
skynet(Parent, Num, Size) ->
    Div = min(?FANOUT, Size),
    spawn_children(self(), Num, Size, Div, 0),
    Parent ! {sum, collect(Div, 0)}.

spawn_children(_Self, _Num, _Size, Div, Div) ->
    ok;
spawn_children(Self, Num, Size, Div, I) ->
    Lo = Size * I div Div,
    Hi = Size * (I + 1) div Div,
    spawn(fun() -> skynet(Self, Num + Lo, Hi - Lo) end),
    spawn_children(Self, Num, Size, Div, I + 1).

collect(0, Sum) ->
    Sum;
collect(N, Sum) ->
    receive {sum, S} -> collect(N - 1, Sum + S) end.
