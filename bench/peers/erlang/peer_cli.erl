%% Command line and output shared by the Erlang peers.
%%
%% The programs are started as
%%   erl -noshell +S S:S +P 2097152 -pa DIR -run MOD main -extra [-s S] [SIZE...]
%% (bench/peers/erlang/run does this). The arguments after -extra are read with
%% init:get_plain_arguments/0; -s S is checked against the schedulers online
%% (it can lower them, never raise them above the +S the VM started with).
%% Sizes are positional, in the order bench/README.md lists them, each
%% defaulting to the full size.
%% Results are printed as one line per metric:
%%   peer=erlang workload=W schedulers=S metric=M value=X
-module(peer_cli).
-export([parse/2, parse_sizes/2, report/3, fail/2, rss_bytes/0]).

%% One size: {Name, Default} or {Name, Default, Min}; Name is only used in
%% the usage message, Min is the smallest value accepted (1 unless given).
%% A bare Default is {"SIZE", Default}.
-type size_spec() :: pos_integer()
                   | {string(), pos_integer()}
                   | {string(), non_neg_integer(), non_neg_integer()}.
-export_type([size_spec/0]).

%% A single optional SIZE (default Default).
-spec parse(string(), pos_integer()) -> pos_integer().
parse(Workload, Default) ->
    [Size] = parse_sizes(Workload, [Default]),
    Size.

%% Several optional positional sizes; returns one value per spec, in order.
%%   [Procs, Hops] = peer_cli:parse_sizes("ring", [{"PROCS", 10000},
%%                                                 {"HOPS", 10000000}])
-spec parse_sizes(string(), [size_spec()]) -> [non_neg_integer()].
parse_sizes(Workload, Specs0) ->
    Specs = [spec(S) || S <- Specs0],
    Given = args(Workload, Specs, init:get_plain_arguments(), []),
    [case Arg of
         default -> Default;
         _ -> integer(Workload, Specs, Arg, Min)
     end
     || {{_, Default, Min}, Arg} <- lists:zip(Specs, pad(Given, length(Specs)))].

pad(Args, N) -> Args ++ lists:duplicate(N - length(Args), default).

spec({Name, Default}) -> {Name, Default, 1};
spec({_, _, _} = Spec) -> Spec;
spec(Default) when is_integer(Default) -> {"SIZE", Default, 1}.

%% Handles -s, returns the positional arguments (strings).
args(_Workload, _Specs, [], Acc) ->
    lists:reverse(Acc);
args(Workload, Specs, ["-s", S | Rest], Acc) ->
    schedulers(Workload, Specs, S),
    args(Workload, Specs, Rest, Acc);
args(Workload, Specs, ["-s"], _) ->
    usage(Workload, Specs, "-s needs a value");
args(Workload, Specs, [[$-, C | _] = Opt | _], _) when C < $0; C > $9 ->
    usage(Workload, Specs, "unknown option " ++ Opt);
args(Workload, Specs, [Arg | Rest], Acc) when length(Acc) < length(Specs) ->
    args(Workload, Specs, Rest, [Arg | Acc]);
args(Workload, Specs, [_ | _], _) ->
    usage(Workload, Specs, "too many arguments").

schedulers(Workload, Specs, S) ->
    Want = integer(Workload, Specs, S, 1),
    case erlang:system_info(schedulers_online) of
        Want -> ok;
        _ ->
            try erlang:system_flag(schedulers_online, Want)
            catch error:badarg ->
                fail(Workload, io_lib:format(
                    "-s ~b: the VM has only ~b schedulers (start it with +S ~b:~b)",
                    [Want, erlang:system_info(schedulers), Want, Want]))
            end
    end.

integer(Workload, Specs, S, Min) ->
    try list_to_integer(S) of
        N when N >= Min -> N;
        _ -> usage(Workload, Specs, io_lib:format("~s: want an integer >= ~b", [S, Min]))
    catch error:badarg -> usage(Workload, Specs, "not an integer: " ++ S)
    end.

usage(Workload, Specs, Msg) ->
    Names = lists:append([" [" ++ Name || {Name, _, _} <- Specs]),
    Closing = lists:duplicate(length(Specs), $]),
    Defaults = string:join([Name ++ "=" ++ integer_to_list(D)
                            || {Name, D, _} <- Specs], " "),
    fail(Workload, [Msg, "\nusage: ", Workload, " [-s SCHEDULERS]", Names,
                    Closing, "\ndefaults: ", Defaults]).

%% Print an error on stderr and stop the VM with status 1.
-spec fail(string(), iodata()) -> no_return().
fail(Workload, Msg) ->
    io:format(standard_error, "~s: ~s~n", [Workload, Msg]),
    erlang:halt(1).

-spec report(string(), string(), number()) -> ok.
report(Workload, Metric, Value) ->
    io:format("peer=erlang workload=~s schedulers=~b metric=~s value=~.2f~n",
              [Workload, erlang:system_info(schedulers_online), Metric,
               float(Value)]).

%% The OS's view of this VM's resident memory (VmRSS in /proc/self/status),
%% in bytes.
-spec rss_bytes() -> non_neg_integer().
rss_bytes() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, <<"^VmRSS:\\s*(\\d+) kB">>,
                           [multiline, {capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.
