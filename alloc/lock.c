/*
 * alloc/lock.c: the thread-local count of held runtime locks that the
 * wrappers in lock.h keep (read by sched/fault.c).
 */
#include "alloc/lock.h"

__thread unsigned tel__locks_held __attribute__((tls_model("initial-exec")));
