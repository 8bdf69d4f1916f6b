/*
 * sched/context.h: the switching contract, one page. Each CPU architecture
 * supplies tel__ctx_switch and tel__ctx_trampoline in context_<arch>.S and
 * its own tel__ctx_make below; nothing else in Telar knows registers.
 *
 * A context is a saved stack pointer. The callee-saved registers (x86-64
 * System V: rbx, rbp, r12-r15) sit on that stack, pushed by tel__ctx_switch.
 * The FPU control word and MXCSR are not saved: processes must not change
 * them (the C library leaves them alone).
 *
 * Hand-off value: the switcher passes `arg`; the resumed side gets it as the
 * return value of its own tel__ctx_switch call, or, for a fresh context, as
 * the first argument of its entry function. The scheduler passes its own
 * struct sched *, so code that resumes on another thread learns where it is
 * without trusting a thread-local read cached before the switch.
 */
#ifndef TEL_SCHED_CONTEXT_H
#define TEL_SCHED_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

typedef void *tel__ctx_t;

/* Save the current context into *from and resume `to`, handing it `arg`. */
void *tel__ctx_switch(tel__ctx_t *from, tel__ctx_t to, void *arg);

/* Where a fresh context starts (assembly): calls entry(arg, user). */
void tel__ctx_trampoline(void);

typedef void (*tel__ctx_entry)(void *arg, void *user);

/*
 * Build a fresh context on the stack [base, base + size): the first switch
 * into it calls entry(arg, user) on that stack. entry must never return.
 */
static inline tel__ctx_t tel__ctx_make(void *base, size_t size,
                                       tel__ctx_entry entry, void *user)
{
#if defined(__x86_64__)
    /*
     * Frame, from the new stack pointer up:
     *   r15 r14 r13=entry r12=user rbx rbp | ret=trampoline | 16 bytes of 0
     * After the six pops and the ret, rsp is 16-byte aligned, as the call
     * in the trampoline requires.
     */
    uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 72);
    sp[0] = 0;                                /* r15 */
    sp[1] = 0;                                /* r14 */
    sp[2] = (uint64_t)(uintptr_t)entry;       /* r13 */
    sp[3] = (uint64_t)(uintptr_t)user;        /* r12 */
    sp[4] = 0;                                /* rbx */
    sp[5] = 0;                                /* rbp */
    sp[6] = (uint64_t)(uintptr_t)tel__ctx_trampoline;
    sp[7] = 0;
    sp[8] = 0;
    return sp;
#else
#error "Telar: no context switch for this architecture yet (see context.h)"
#endif
}

#endif /* TEL_SCHED_CONTEXT_H */
