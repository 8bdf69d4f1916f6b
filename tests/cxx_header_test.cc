// tests/cxx_header_test.cc: the public header compiles as C++ (-pedantic,
// -Werror), so C++ programs can embed Telar. Built as part of the tests; a
// compile error fails the build. The program itself runs one tiny process.
#include "telar.h"

#include <cstdio>

static int ran;

static void body(void *) { ran = 1; }

int main()
{
    if (tel_run(nullptr, body, nullptr) != 0 || ran != 1) {
        std::puts("cxx_header_test: the process did not run");
        return 1;
    }
    std::puts("1 passed, 0 failed");
    return 0;
}
