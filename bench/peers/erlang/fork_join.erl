%% fork_join: Savina's two fork-join shapes.
%%
%% fjcreate: the main process spawns N processes one by one and sends each
%% one message, its index I; each computes sin(I), replies {done, sin(I)} to
%% the main process and exits. The main process waits for all N replies
%% (summing the values) and checks the count.
%%
%% fjthrput: ACTORS processes each receive MSGS messages, sent round-robin by
%% the main process (message M is the integer M); each computes sin(M) per
%% message and adds it to its running sum. After the last round the main
%% process sends every actor `stop`; each reports {count, Count, Sum}, and
%% every count must be MSGS.
%%
%% The main process keeps its message queue off its heap: in fjcreate it
%% spawns all N processes before it reads a reply, so up to N replies wait in
%% its mailbox, and with the default (on_heap) every garbage collection of
%% the main process (one every few hundred spawns, for the funs it creates)
%% scans that whole queue, which makes fjcreate quadratic in N (2.2 us per
%% process at N = 100,000 and 20 us at 1,000,000, against 0.7 us off heap).
%%
%%   fork_join [-s SCHEDULERS] [N [ACTORS [MSGS]]]    (defaults 100000 60 10000)
-module(fork_join).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [N, Actors, Msgs] =
        peer_cli:parse_sizes("fork_join", [{"N", 100000}, {"ACTORS", 60},
                                           {"MSGS", 10000}]),
    process_flag(message_queue_data, off_heap),
    Self = self(),

    T0 = erlang:monotonic_time(nanosecond),
    create(1, N, Self),
    {Replies, _} = create_collect(N, 0, 0.0),
    T1 = erlang:monotonic_time(nanosecond),
    Replies =:= N orelse
        peer_cli:fail("fork_join",
                      io_lib:format("fjcreate: ~b replies, want ~b", [Replies, N])),

    T2 = erlang:monotonic_time(nanosecond),
    Pids = [spawn(fun() -> actor(Self, 0, 0.0) end) || _ <- lists:seq(1, Actors)],
    rounds(1, Msgs, Pids),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    Counts = [receive {count, P, C, _Sum} -> C end || P <- Pids],
    T3 = erlang:monotonic_time(nanosecond),
    case [C || C <- Counts, C =/= Msgs] of
        [] -> ok;
        Bad -> peer_cli:fail("fork_join",
                   io_lib:format("fjthrput: actor counts ~w, want ~b each",
                                 [Bad, Msgs]))
    end,

    peer_cli:report("fork_join", "create_ns_per_proc", (T1 - T0) / N),
    peer_cli:report("fork_join", "thrput_ns_per_msg", (T3 - T2) / (Actors * Msgs)),
    erlang:halt(0).

%% fjcreate

create(I, N, _Parent) when I > N ->
    ok;
create(I, N, Parent) ->
    P = spawn(fun() -> worker(Parent) end),
    P ! I,
    create(I + 1, N, Parent).

worker(Parent) ->
    receive
        I -> Parent ! {done, math:sin(I)}
    end.

create_collect(0, Got, Sum) ->
    {Got, Sum};
create_collect(Left, Got, Sum) ->
    receive
        {done, X} -> create_collect(Left - 1, Got + 1, Sum + X)
    end.

%% fjthrput

rounds(M, Msgs, _Pids) when M > Msgs ->
    ok;
rounds(M, Msgs, Pids) ->
    send_all(Pids, M),
    rounds(M + 1, Msgs, Pids).

send_all([], _M) ->
    ok;
send_all([P | Ps], M) ->
    P ! M,
    send_all(Ps, M).

actor(Parent, Count, Sum) ->
    receive
        M when is_integer(M) -> actor(Parent, Count + 1, Sum + math:sin(M));
        stop -> Parent ! {count, self(), Count, Sum}
    end.
