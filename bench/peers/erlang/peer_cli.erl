%% Command line and output shared by the Erlang peers.
%%
%% The programs are started as
%%   erl -noshell +S S:S +P 2097152 -pa DIR -run MOD main -extra [-s S] [SIZE]
%% (bench/peers/erlang/run does this). The arguments after -extra are read with
%% init:get_plain_arguments/0; -s S is checked against the schedulers online
%% (it can lower them, never raise them above the +S the VM started with).
%% Results are printed as one line per metric:
%%   peer=erlang workload=W schedulers=S metric=M value=X
-module(peer_cli).
-export([parse/2, report/3, fail/2]).

-spec parse(string(), pos_integer()) -> pos_integer().
parse(Workload, Default) ->
    parse(Workload, init:get_plain_arguments(), Default, false).

parse(_Workload, [], Size, _) ->
    Size;
parse(Workload, ["-s", S | Rest], Size, SizeSet) ->
    Want = positive(Workload, S),
    case erlang:system_info(schedulers_online) of
        Want -> ok;
        _ ->
            try erlang:system_flag(schedulers_online, Want)
            catch error:badarg ->
                fail(Workload, io_lib:format(
                    "-s ~b: the VM has only ~b schedulers (start it with +S ~b:~b)",
                    [Want, erlang:system_info(schedulers), Want, Want]))
            end
    end,
    parse(Workload, Rest, Size, SizeSet);
parse(Workload, ["-s"], _, _) ->
    usage(Workload, "-s needs a value");
parse(Workload, [[$- | _] = Opt | _], _, _) ->
    usage(Workload, "unknown option " ++ Opt);
parse(Workload, [Arg | Rest], _, false) ->
    parse(Workload, Rest, positive(Workload, Arg), true);
parse(Workload, [_ | _], _, true) ->
    usage(Workload, "too many arguments").

positive(Workload, S) ->
    try list_to_integer(S) of
        N when N >= 1 -> N;
        _ -> usage(Workload, "not a positive integer: " ++ S)
    catch error:badarg -> usage(Workload, "not a positive integer: " ++ S)
    end.

usage(Workload, Msg) ->
    fail(Workload, Msg ++ "\nusage: " ++ Workload ++ " [-s SCHEDULERS] [SIZE]").

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
