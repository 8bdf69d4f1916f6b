/*
 * alloc/failinj.h: fault injection for out-of-memory tests.
 *
 * In builds with TEL_FAILINJ (the test builds), tel__failinj_arm(n) makes the
 * n-th allocation from now (counting from 0) fail, once; tests loop n = 0, 1,
 * 2, ... until the call under test succeeds, checking that each failure
 * returns TEL_ENOMEM and leaks nothing. In other builds the check compiles to
 * nothing.
 */
#ifndef TEL_ALLOC_FAILINJ_H
#define TEL_ALLOC_FAILINJ_H

#include <stdbool.h>

#ifdef TEL_FAILINJ
/* Arm: fail the n-th allocation from now; n < 0 disarms. Any thread. */
void tel__failinj_arm(long n);
/* Whether this allocation must fail (consumes one count). Any thread. */
bool tel__failinj_hit(void);
/* Whether the armed failure has happened since the last arm (a test's way
 * to see that a call absorbed a failure and still succeeded). */
bool tel__failinj_fired(void);
#else
static inline bool tel__failinj_hit(void) { return false; }
#endif

#endif /* TEL_ALLOC_FAILINJ_H */
