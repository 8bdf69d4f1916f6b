%% fanin: SENDERS processes each send the integers 1..MSGS (plain `!`) to one
%% receiver process, which sums them and, once it has all SENDERS*MSGS,
%% reports the sum to the main process. The sum must be
%% SENDERS*MSGS*(MSGS+1)/2. The receiver's mailbox is unbounded, so there is
%% no back-pressure.
%%
%%   fanin [-s SCHEDULERS] [SENDERS [MSGS]]    (defaults 1000 10000)
-module(fanin).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Senders, Msgs] = peer_cli:parse_sizes("fanin",
                                           [{"SENDERS", 1000}, {"MSGS", 10000}]),
    Self = self(),
    Total = Senders * Msgs,
    T0 = erlang:monotonic_time(nanosecond),
    Receiver = spawn(fun() -> receiver(Total, 0, Self) end),
    spawn_senders(Senders, Receiver, Msgs),
    Sum = receive {sum, S} -> S end,
    T1 = erlang:monotonic_time(nanosecond),
    case Senders * Msgs * (Msgs + 1) div 2 of
        Sum -> ok;
        Want -> peer_cli:fail("fanin",
                    io_lib:format("wrong sum ~b, want ~b", [Sum, Want]))
    end,
    Ns = T1 - T0,
    peer_cli:report("fanin", "ns_per_msg", Ns / Total),
    peer_cli:report("fanin", "msgs_per_sec", Total * 1.0e9 / Ns),
    erlang:halt(0).

spawn_senders(0, _Receiver, _Msgs) ->
    ok;
spawn_senders(I, Receiver, Msgs) ->
    spawn(fun() -> send(Receiver, 1, Msgs) end),
    spawn_senders(I - 1, Receiver, Msgs).

send(Receiver, I, Msgs) when I =< Msgs ->
    Receiver ! I,
    send(Receiver, I + 1, Msgs);
send(_Receiver, _I, _Msgs) ->
    ok.

receiver(0, Sum, Parent) ->
    Parent ! {sum, Sum};
receiver(Left, Sum, Parent) ->
    receive
        I -> receiver(Left - 1, Sum + I, Parent)
    end.
