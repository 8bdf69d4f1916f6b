%% restart_storm: a one_for_one supervisor (this module is its callback
%% module) restarts K permanent workers that crash on order, 2*N times in
%% all. The same workload as bench/workloads/restart_storm.c.
%%
%% Each worker, when it starts, first reads the clock (monotonic ns, T) and
%% sends the driver (the main process) {up, Slot, self(), T}; then it waits
%% for `crash` and exits with reason `crash`. FAULT = 1: it makes a runtime
%% error instead (element/2 of a pid: badarg, as Telar's variant writes
%% through NULL), printed as workload restart_storm_fault. The supervisor's
%% intensity is 2*N restarts per 1 s (the shortest period OTP allows), so
%% every restart the run causes fits and it never gives up.
%%
%%   latency:    N crashes one at a time, slot I rem K in turn: the driver
%%               reads the clock (T0), sends `crash`, and waits for that
%%               slot's replacement; a sample is T - T0. Prints p50_us and
%%               p99_us.
%%   throughput: the driver orders all K workers to crash, then each
%%               replacement as soon as it announces itself, until N crashes
%%               were ordered; the clock stops at the N-th replacement.
%%               Prints restarts_per_sec.
%%
%% Checks: every announcement comes from a new process for the slot expected
%% (latency) or for a slot with a crash outstanding (throughput); at the end
%% supervisor:which_children/1 lists the K workers with the pids the driver
%% last heard of. Any wait longer than 10 s fails the run.
%%
%% Logging is turned off (primary level none): OTP's supervisor would
%% otherwise format and print a child_terminated report for every crash,
%% which Telar's supervisor does not do. What stays is OTP's own restart
%% bookkeeping: it keeps the time of every restart within the period in a
%% list and walks it on each restart, so under a storm a restart costs time
%% in proportion to the restarts of the last second or two (see
%% bench/README.md).
%%
%%   restart_storm [-s SCHEDULERS] [K [N [FAULT]]]    (defaults 100 100000 0)
-module(restart_storm).
-behaviour(supervisor).
-export([main/0, main/1, init/1, start_worker/3]).

main(_Args) -> main().

main() ->
    [K, N, Fault] = peer_cli:parse_sizes("restart_storm",
                                         [{"K", 100}, {"N", 100000},
                                          {"FAULT", 0, 0}]),
    Fault =< 1 orelse fail("FAULT must be 0 or 1"),
    Name = case Fault of 1 -> "restart_storm_fault"; 0 -> "restart_storm" end,
    ok = logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, {K, 2 * N, Fault, self()}),
    Pids0 = announced(K, #{}, Sup),
    {Lates, Pids1} = latency(0, N, K, Pids0, Sup, []),
    T0 = erlang:monotonic_time(nanosecond),
    Pids2 = storm(N, K, Pids1, Sup),
    T1 = erlang:monotonic_time(nanosecond),
    check_children(Sup, Pids2, K),
    Sorted = lists:sort(Lates),
    peer_cli:report(Name, "restarts_per_sec", N * 1.0e9 / (T1 - T0)),
    peer_cli:report(Name, "p50_us", percentile(Sorted, N, 50) / 1000),
    peer_cli:report(Name, "p99_us", percentile(Sorted, N, 99) / 1000),
    erlang:halt(0).

%% The supervisor's callback.
init({K, Intensity, Fault, Driver}) ->
    Flags = #{strategy => one_for_one, intensity => Intensity, period => 1},
    Specs = [#{id => Slot,
               start => {?MODULE, start_worker, [Slot, Fault, Driver]},
               restart => permanent,
               shutdown => brutal_kill,
               type => worker}
             || Slot <- lists:seq(0, K - 1)],
    {ok, {Flags, Specs}}.

start_worker(Slot, Fault, Driver) ->
    {ok, spawn_link(fun() -> worker(Slot, Fault, Driver) end)}.

worker(Slot, Fault, Driver) ->
    Driver ! {up, Slot, self(), erlang:monotonic_time(nanosecond)},
    receive
        crash when Fault =:= 1 -> element(1, Driver);
        crash -> exit(crash)
    end.

%% The first K announcements, one per slot: Slot => Pid.
announced(0, Pids, _Sup) ->
    Pids;
announced(Left, Pids, Sup) ->
    {Slot, Pid, _T} = up(Sup),
    case Pids of
        #{Slot := _} -> fail(io_lib:format("slot ~b started twice", [Slot]));
        _ -> announced(Left - 1, Pids#{Slot => Pid}, Sup)
    end.

latency(N, N, _K, Pids, _Sup, Lates) ->
    {Lates, Pids};
latency(I, N, K, Pids, Sup, Lates) ->
    Slot = I rem K,
    Old = maps:get(Slot, Pids),
    T0 = erlang:monotonic_time(nanosecond),
    Old ! crash,
    case up(Sup) of
        {Slot, New, T} when New =/= Old ->
            latency(I + 1, N, K, Pids#{Slot := New}, Sup, [T - T0 | Lates]);
        {Other, _, _} ->
            fail(io_lib:format("slot ~b came up, want a new ~b", [Other, Slot]))
    end.

%% Order the first min(K, N) crashes, then one more per replacement.
storm(N, K, Pids, Sup) ->
    First = lists:seq(0, min(K, N) - 1),
    [maps:get(Slot, Pids) ! crash || Slot <- First],
    storm(0, min(K, N), N, Pids, maps:from_list([{S, true} || S <- First]), Sup).

storm(N, _Ordered, N, Pids, _Pending, _Sup) ->
    Pids;
storm(Done, Ordered, N, Pids, Pending, Sup) ->
    {Slot, New, _T} = up(Sup),
    case {Pending, Pids} of
        {#{Slot := true}, #{Slot := Old}} when New =/= Old -> ok;
        _ -> fail(io_lib:format("slot ~b came up with no crash ordered", [Slot]))
    end,
    case Ordered < N of
        true ->
            New ! crash,
            storm(Done + 1, Ordered + 1, N, Pids#{Slot := New}, Pending, Sup);
        false ->
            storm(Done + 1, Ordered, N, Pids#{Slot := New},
                  maps:remove(Slot, Pending), Sup)
    end.

%% The supervisor lists the K workers, in start order, with the pids we know.
check_children(Sup, Pids, K) ->
    Children = lists:reverse(supervisor:which_children(Sup)),
    Want = [{Slot, maps:get(Slot, Pids), worker, [?MODULE]}
            || Slot <- lists:seq(0, K - 1)],
    case Children of
        Want -> ok;
        _ -> fail(io_lib:format("which_children: ~p, want ~p", [Children, Want]))
    end.

up(Sup) ->
    receive
        {up, Slot, Pid, T} -> {Slot, Pid, T};
        {'EXIT', Sup, Reason} ->
            fail(io_lib:format("the supervisor exited: ~p", [Reason]))
    after 10000 ->
        fail("no worker came up for 10 s")
    end.

fail(Msg) -> peer_cli:fail("restart_storm", Msg).

%% Nearest-rank percentile P of a sorted list of N values.
percentile(Sorted, N, P) ->
    lists:nth(max(1, (N * P + 99) div 100), Sorted).
