module telar/bench/peers/go

go 1.19
