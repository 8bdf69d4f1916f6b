%% spawn_exit: spawn N processes in batches of BATCH; each sends `done` to the
%% main process and exits. The main process waits for a batch's BATCH replies
%% before it spawns the next batch (the last batch may be smaller).
%%
%%   spawn_exit [-s SCHEDULERS] [N [BATCH]]    (defaults 1000000 1000)
-module(spawn_exit).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [N, Batch] = peer_cli:parse_sizes("spawn_exit",
                                      [{"N", 1000000}, {"BATCH", 1000}]),
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    Done = batches(N, Batch, Self, 0),
    T1 = erlang:monotonic_time(nanosecond),
    case Done of
        N -> ok;
        _ -> peer_cli:fail("spawn_exit",
                 io_lib:format("~b replies, want ~b", [Done, N]))
    end,
    peer_cli:report("spawn_exit", "ns_per_spawn_exit", (T1 - T0) / N),
    erlang:halt(0).

batches(0, _Batch, _Parent, Done) ->
    Done;
batches(Left, Batch, Parent, Done) ->
    B = min(Batch, Left),
    spawn_batch(B, Parent),
    batches(Left - B, Batch, Parent, Done + collect(B, 0)).

spawn_batch(0, _Parent) ->
    ok;
spawn_batch(I, Parent) ->
    spawn(fun() -> Parent ! done end),
    spawn_batch(I - 1, Parent).

collect(0, Got) ->
    Got;
collect(Left, Got) ->
    receive
        done -> collect(Left - 1, Got + 1)
    end.
