/*
 * alloc/panic.c: tel__panic, the one way a broken internal invariant ends the
 * program (declared in alloc/base.h so every layer may call it).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc/base.h"
#include "alloc/lock.h"

_Noreturn void tel__panic(const char *msg)
{
    static const char pre[] = "telar: panic: ";
    /* Counted as a held lock: the abort below ends the program, never
     * just the process that panicked (sched/fault.c). */
    tel__lock_count_in();
    (void)!write(2, pre, sizeof(pre) - 1);
    (void)!write(2, msg, strlen(msg));
    (void)!write(2, "\n", 1);
    abort();
}
