%% big: Savina's big. WORKERS processes each send PINGS pings, one at a time,
%% each to a random other worker, which answers `pong`; a worker sends its
%% next ping when it has the pong for the last one. A worker that has had all
%% its pongs tells the main process, and goes on answering pings until it is
%% told to stop; it then reports how many pings it answered, and the counts
%% must sum to WORKERS*PINGS. Only the pinging is timed; ns_per_msg counts
%% pings and pongs.
%%
%% Each worker draws its targets from its own generator, seeded with its
%% number: rand's mwc59 (OTP 25's fast generator for this kind of use, ~12 ns
%% a draw here, against ~75 ns for rand:uniform_s/2 with the default exsss),
%% scaled to the range by multiply-and-shift as the rand docs advise. With
%% WORKERS = 1 the only worker pings itself.
%%
%%   big [-s SCHEDULERS] [WORKERS [PINGS]]    (defaults 1000 1000)
-module(big).
-export([main/0, main/1]).

main(_Args) -> main().

main() ->
    [Workers, Pings] = peer_cli:parse_sizes("big",
                                            [{"WORKERS", 1000}, {"PINGS", 1000}]),
    Self = self(),
    Pids = [spawn(fun() -> start(I, Pings, Self) end) || I <- lists:seq(1, Workers)],
    Peers = list_to_tuple(Pids),
    T0 = erlang:monotonic_time(nanosecond),
    lists:foreach(fun(P) -> P ! {peers, Peers} end, Pids),
    wait_done(Workers),
    T1 = erlang:monotonic_time(nanosecond),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    Answered = lists:sum([receive {answered, P, A} -> A end || P <- Pids]),
    case Workers * Pings of
        Answered -> ok;
        Want -> peer_cli:fail("big", io_lib:format("~b pings answered, want ~b",
                                                   [Answered, Want]))
    end,
    peer_cli:report("big", "ns_per_msg", (T1 - T0) / (2 * Workers * Pings)),
    erlang:halt(0).

wait_done(0) ->
    ok;
wait_done(N) ->
    receive {done, _} -> wait_done(N - 1) end.

start(Me, Pings, Parent) ->
    receive
        {peers, Peers} ->
            Rand = ping(Peers, Me, rand:mwc59_seed(Me)),
            pinging(Peers, Me, Pings - 1, Rand, 0, Parent)
    end.

%% Sends a ping to a random other worker; returns the new generator state.
ping(Peers, Me, Rand0) ->
    Rand = rand:mwc59(Rand0),
    Target = case tuple_size(Peers) of
                 1 -> Me;
                 N ->
                     T = (rand:mwc59_value32(Rand) * (N - 1)) bsr 32 + 1,
                     if T >= Me -> T + 1; true -> T end
             end,
    element(Target, Peers) ! {ping, self()},
    Rand.

%% Waiting for the pong to the last ping sent; Left more pings to send.
pinging(Peers, Me, Left, Rand, Answered, Parent) ->
    receive
        {ping, From} ->
            From ! pong,
            pinging(Peers, Me, Left, Rand, Answered + 1, Parent);
        pong when Left =:= 0 ->
            Parent ! {done, Me},
            serving(Answered, Parent);
        pong ->
            pinging(Peers, Me, Left - 1, ping(Peers, Me, Rand), Answered, Parent)
    end.

%% All pongs in; answer pings until told to stop.
serving(Answered, Parent) ->
    receive
        {ping, From} ->
            From ! pong,
            serving(Answered + 1, Parent);
        stop ->
            Parent ! {answered, self(), Answered}
    end.
