/*
 * tests/sched/context_test.c: white-box tests of sched/context.h, the
 * context switch (tel__ctx_make, tel__ctx_switch).
 *
 * A small coroutine harness runs entry functions on 64 KiB stacks of our
 * own, announcing each switch to ASan and TSan as the scheduler does.
 * Code on a coroutine stack never calls cr_assert (its longjmp is only safe
 * on the test's own stack): it records what it saw, and the test asserts
 * after switching back.
 */
#include "common.h"

#include <sys/mman.h>

#include "alloc/base.h" /* TEL_ASAN, TEL_TSAN */
#include "sched/context.h"

#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef TEL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define STACK_SIZE ((size_t)64 * 1024)

/* ------------------------------------------------------------------ */
/* Harness                                                             */
/* ------------------------------------------------------------------ */

struct co {
    tel__ctx_t sp;
    void *lo;    /* the stack's lowest address (for ASan) */
    size_t size; /* its size */
    void *mem;   /* what to munmap, with map_size */
    size_t map_size;
#ifdef TEL_TSAN
    void *fiber;
#endif
};

static struct co main_co;

static void co_main_init(void)
{
    memset(&main_co, 0, sizeof main_co);
#ifdef TEL_TSAN
    main_co.fiber = __tsan_get_current_fiber();
#endif
}

/*
 * A coroutine on a fresh mapping: [lo, lo + size) with lo = mapping + off,
 * and one untouched page either side (filled with a pattern) to detect
 * writes outside the stack.
 */
#define GUARD ((size_t)4096)
#define GUARD_BYTE 0xE7

static void co_make(struct co *c, size_t off, size_t size,
                    tel__ctx_entry entry, void *user)
{
    memset(c, 0, sizeof *c);
    c->map_size = GUARD + off + size + GUARD + 4096;
    c->mem = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(c->mem, MAP_FAILED, "mmap: %s", strerror(errno));
#ifdef TEL_ASAN
    /* A coroutine that never returned left its frames' redzones poisoned;
     * a new mapping may reuse that address. */
    ASAN_UNPOISON_MEMORY_REGION(c->mem, c->map_size);
#endif
    memset(c->mem, GUARD_BYTE, c->map_size);
    c->lo = (char *)c->mem + GUARD + off;
    c->size = size;
    c->sp = tel__ctx_make(c->lo, size, entry, user);
#ifdef TEL_TSAN
    c->fiber = __tsan_create_fiber(0);
    cr_assert_not_null(c->fiber);
#endif
}

/* Whether the bytes outside [lo, lo + size) still hold the pattern. */
static bool co_guards_intact(const struct co *c)
{
    const unsigned char *m = c->mem;
    const unsigned char *lo = c->lo, *hi = lo + c->size;
    for (const unsigned char *p = m; p < lo; p++)
        if (*p != GUARD_BYTE)
            return false;
    for (const unsigned char *p = hi; p < m + c->map_size; p++)
        if (*p != GUARD_BYTE)
            return false;
    return true;
}

static void co_free(struct co *c)
{
#ifdef TEL_TSAN
    __tsan_destroy_fiber(c->fiber);
#endif
#ifdef TEL_ASAN
    ASAN_UNPOISON_MEMORY_REGION(c->mem, c->map_size);
#endif
    munmap(c->mem, c->map_size);
}

/*
 * Switch from `from` to `to`, handing over arg; returns what the next
 * switch back into `from` hands over. dying: `from` is never resumed.
 */
static void *co_switch_ex(struct co *from, struct co *to, void *arg,
                          bool dying)
{
#ifdef TEL_TSAN
    __tsan_switch_to_fiber(to->fiber, 0);
#endif
#ifdef TEL_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, to->lo, to->size);
#else
    (void)dying;
#endif
    void *r = tel__ctx_switch(&from->sp, to->sp, arg);
#ifdef TEL_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    return r;
}

static void *co_switch(struct co *from, struct co *to, void *arg)
{
    return co_switch_ex(from, to, arg, false);
}

/* First thing in every entry function. */
static void co_started(void)
{
#ifdef TEL_ASAN
    const void *lo = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(NULL, &lo, &size);
    if (main_co.size == 0) { /* the first entry comes from the test */
        main_co.lo = (void *)lo;
        main_co.size = size;
    }
#endif
}

/* Last thing in an entry: go back for good (an entry never returns). */
static _Noreturn void co_exit(struct co *self, struct co *to, void *arg)
{
    co_switch_ex(self, to, arg, true);
    abort(); /* never resumed */
}

/* ------------------------------------------------------------------ */
/* Entry arguments                                                     */
/* ------------------------------------------------------------------ */

struct seen_args {
    struct co co;
    void *arg, *user;
    int entered;
};

static void args_entry(void *arg, void *user)
{
    co_started();
    struct seen_args *s = user;
    s->arg = arg;
    s->user = user;
    s->entered++;
    co_exit(&s->co, &main_co, (void *)0x5151);
}

Test(context, a_fresh_context_gets_the_switch_arg_then_user)
{
    co_main_init();
    struct seen_args s = {0};
    co_make(&s.co, 0, STACK_SIZE, args_entry, &s);
    void *r = co_switch(&main_co, &s.co, (void *)0xA11CE);
    cr_assert_eq(s.entered, 1);
    cr_assert_eq(s.arg, (void *)0xA11CE, "entry's first argument is %p, "
                                         "want the switch's arg",
                 s.arg);
    cr_assert_eq(s.user, &s, "entry's second argument is %p, want user %p",
                 s.user, (void *)&s);
    cr_assert_eq(r, (void *)0x5151, "switch back returned %p", r);
    co_free(&s.co);
}

/* With user NULL the entry finds its state through a static. */
static struct {
    struct co co;
    void *arg, *user;
    int entered;
} null_seen;

static void null_entry(void *arg, void *user)
{
    co_started();
    null_seen.arg = arg;
    null_seen.user = user;
    null_seen.entered++;
    co_exit(&null_seen.co, &main_co, NULL);
}

Test(context, a_null_arg_and_user_arrive_as_null)
{
    co_main_init();
    null_seen.arg = null_seen.user = (void *)1;
    co_make(&null_seen.co, 0, STACK_SIZE, null_entry, NULL);
    void *r = co_switch(&main_co, &null_seen.co, NULL);
    cr_assert_eq(null_seen.entered, 1);
    cr_assert_null(null_seen.arg);
    cr_assert_null(null_seen.user);
    cr_assert_null(r);
    co_free(&null_seen.co);
}

/* ------------------------------------------------------------------ */
/* Ping-pong                                                           */
/* ------------------------------------------------------------------ */

#define PINGS 1000

struct pingpong {
    struct co co;
    uintptr_t got[PINGS]; /* what the coroutine received, in order */
    int rounds;
};

static void pong_entry(void *arg, void *user)
{
    co_started();
    struct pingpong *p = user;
    uintptr_t v = (uintptr_t)arg;
    for (int i = 0; i < PINGS; i++) {
        p->got[i] = v;
        p->rounds++;
        /* Answer 3v + 1; the next ping arrives as our switch's return. */
        v = (uintptr_t)co_switch(&p->co, &main_co, (void *)(3 * v + 1));
    }
    co_exit(&p->co, &main_co, (void *)(uintptr_t)0xD0DE);
}

Test(context, values_ping_pong_through_switch_return_values)
{
    co_main_init();
    struct pingpong *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    co_make(&p->co, 0, STACK_SIZE, pong_entry, p);
    for (uintptr_t i = 0; i < PINGS; i++) {
        uintptr_t send = i * 1000003u + 7;
        uintptr_t back = (uintptr_t)co_switch(&main_co, &p->co, (void *)send);
        cr_assert_eq(p->rounds, (int)i + 1, "round %zu", (size_t)i);
        cr_assert_eq(p->got[i], send, "round %zu: coroutine got %zu, sent "
                                      "%zu",
                     (size_t)i, (size_t)p->got[i], (size_t)send);
        cr_assert_eq(back, 3 * send + 1, "round %zu: got back %zu",
                     (size_t)i, (size_t)back);
    }
    uintptr_t last = (uintptr_t)co_switch(&main_co, &p->co, (void *)1);
    cr_assert_eq(last, 0xD0DE);
    co_free(&p->co);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Callee-saved registers                                              */
/* ------------------------------------------------------------------ */

#if defined(__x86_64__)
/*
 * tt_switch_checked(from, to, arg, ret): load rbx, rbp, r12-r15 with known
 * values, call tel__ctx_switch(from, to, arg), store its result in *ret and
 * return a mask of the registers that did not survive (bit 0 rbx, 1 rbp,
 * 2 r12, ... 5 r15). Its own caller's registers are saved and restored.
 *
 * tt_switch_scrambled(from, to, arg): the same switch with every
 * callee-saved register set to garbage first; returns the switch's result.
 */
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl tt_switch_checked\n"
        ".hidden tt_switch_checked\n"
        ".type tt_switch_checked, @function\n"
        "tt_switch_checked:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rcx\n" /* ret; 7 pushes: rsp is 16-aligned again */
        "    movabsq $0x1111111111111111, %rbx\n"
        "    movabsq $0x2222222222222222, %rbp\n"
        "    movabsq $0x3333333333333333, %r12\n"
        "    movabsq $0x4444444444444444, %r13\n"
        "    movabsq $0x5555555555555555, %r14\n"
        "    movabsq $0x6666666666666666, %r15\n"
        "    call tel__ctx_switch\n"
        "    popq %rcx\n"
        "    movq %rax, (%rcx)\n"
        "    xorl %eax, %eax\n"
        "    movabsq $0x1111111111111111, %r11\n"
        "    cmpq %r11, %rbx\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    orl %ecx, %eax\n"
        "    movabsq $0x2222222222222222, %r11\n"
        "    cmpq %r11, %rbp\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    shll $1, %ecx\n"
        "    orl %ecx, %eax\n"
        "    movabsq $0x3333333333333333, %r11\n"
        "    cmpq %r11, %r12\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    shll $2, %ecx\n"
        "    orl %ecx, %eax\n"
        "    movabsq $0x4444444444444444, %r11\n"
        "    cmpq %r11, %r13\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    shll $3, %ecx\n"
        "    orl %ecx, %eax\n"
        "    movabsq $0x5555555555555555, %r11\n"
        "    cmpq %r11, %r14\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    shll $4, %ecx\n"
        "    orl %ecx, %eax\n"
        "    movabsq $0x6666666666666666, %r11\n"
        "    cmpq %r11, %r15\n"
        "    setne %cl\n"
        "    movzbl %cl, %ecx\n"
        "    shll $5, %ecx\n"
        "    orl %ecx, %eax\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size tt_switch_checked, .-tt_switch_checked\n"
        "\n"
        ".p2align 4\n"
        ".globl tt_switch_scrambled\n"
        ".hidden tt_switch_scrambled\n"
        ".type tt_switch_scrambled, @function\n"
        "tt_switch_scrambled:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    movabsq $0xdeadbeefdeadbe01, %rbx\n"
        "    movabsq $0xdeadbeefdeadbe02, %rbp\n"
        "    movabsq $0xdeadbeefdeadbe03, %r12\n"
        "    movabsq $0xdeadbeefdeadbe04, %r13\n"
        "    movabsq $0xdeadbeefdeadbe05, %r14\n"
        "    movabsq $0xdeadbeefdeadbe06, %r15\n"
        "    call tel__ctx_switch\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size tt_switch_scrambled, .-tt_switch_scrambled\n"
        ".popsection\n");

uint32_t tt_switch_checked(tel__ctx_t *from, tel__ctx_t to, void *arg,
                           void **ret);
void *tt_switch_scrambled(tel__ctx_t *from, tel__ctx_t to, void *arg);

#define REG_ROUNDS 200

struct regs {
    struct co co;
    int rounds;
};

/* The coroutine side: garbage in every callee-saved register each time. */
static void scramble_entry(void *arg, void *user)
{
    co_started();
    struct regs *r = user;
    uintptr_t v = (uintptr_t)arg;
    for (;;) {
        r->rounds++;
#ifdef TEL_TSAN
        __tsan_switch_to_fiber(main_co.fiber, 0);
#endif
#ifdef TEL_ASAN
        void *fake = NULL;
        __sanitizer_start_switch_fiber(&fake, main_co.lo, main_co.size);
#endif
        v = (uintptr_t)tt_switch_scrambled(&r->co.sp, main_co.sp,
                                           (void *)(v + 1));
#ifdef TEL_ASAN
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    }
}

Test(context, callee_saved_registers_survive_a_round_trip)
{
    co_main_init();
    struct regs r = {0};
    co_make(&r.co, 0, STACK_SIZE, scramble_entry, &r);
    for (uintptr_t i = 0; i < REG_ROUNDS; i++) {
#ifdef TEL_TSAN
        __tsan_switch_to_fiber(r.co.fiber, 0);
#endif
#ifdef TEL_ASAN
        void *fake = NULL;
        __sanitizer_start_switch_fiber(&fake, r.co.lo, r.co.size);
#endif
        void *ret = NULL;
        uint32_t lost = tt_switch_checked(&main_co.sp, r.co.sp,
                                          (void *)(i * 10), &ret);
#ifdef TEL_ASAN
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
        cr_assert_eq(lost, 0,
                     "round %zu: callee-saved registers clobbered "
                     "(mask 0x%x: bit 0 rbx, 1 rbp, 2 r12, 3 r13, 4 r14, "
                     "5 r15)",
                     (size_t)i, lost);
        cr_assert_eq((uintptr_t)ret, i * 10 + 1, "round %zu: got %p",
                     (size_t)i, ret);
        cr_assert_eq(r.rounds, (int)i + 1);
    }
    /* The coroutine is left suspended; its stack simply goes away. */
    co_free(&r.co);
}
#endif /* __x86_64__ */

/* Many live values across switches, in plain C (the compiler keeps some in
 * callee-saved registers when optimising). */
struct locals {
    struct co co;
    uint64_t sum;
    int rounds;
};

static void locals_entry(void *arg, void *user)
{
    co_started();
    struct locals *l = user;
    uint64_t a = (uintptr_t)arg, b = a * 3, c = a ^ 0x5555, d = a + 77,
             e = a * a, f = ~a, g = a << 7, h = a >> 3, i = a * 31 + 1,
             j = a ^ 0xF0F0F0F0F0F0F0F0ull, k = a + 0x1234567, m = a * 5;
    for (int r = 0; r < 1000; r++) {
        uintptr_t x = (uintptr_t)co_switch(&l->co, &main_co,
                                           (void *)(uintptr_t)(a + b));
        a += x;
        b ^= a;
        c += b * 3;
        d ^= c << 1;
        e += d;
        f ^= e >> 2;
        g += f;
        h ^= g * 7;
        i += h;
        j ^= i;
        k += j;
        m ^= k;
        l->rounds++;
    }
    l->sum = a + b + c + d + e + f + g + h + i + j + k + m;
    co_exit(&l->co, &main_co, NULL);
}

/* The same computation without switches: the expected result. */
static uint64_t locals_reference(uint64_t a0, uint64_t *xs)
{
    uint64_t a = a0, b = a * 3, c = a ^ 0x5555, d = a + 77, e = a * a,
             f = ~a, g = a << 7, h = a >> 3, i = a * 31 + 1,
             j = a ^ 0xF0F0F0F0F0F0F0F0ull, k = a + 0x1234567, m = a * 5;
    for (int r = 0; r < 1000; r++) {
        a += xs[r];
        b ^= a;
        c += b * 3;
        d ^= c << 1;
        e += d;
        f ^= e >> 2;
        g += f;
        h ^= g * 7;
        i += h;
        j ^= i;
        k += j;
        m ^= k;
    }
    return a + b + c + d + e + f + g + h + i + j + k + m;
}

Test(context, many_locals_survive_many_switches)
{
    co_main_init();
    struct locals *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    uint64_t *xs = calloc(1000, sizeof *xs);
    cr_assert_not_null(xs);
    /* Locals on this side too, live across every switch. */
    uint64_t p = 0x9E3779B97F4A7C15ull, q = 1, s = 12345, u = 0;
    co_make(&l->co, 0, STACK_SIZE, locals_entry, l);
    uintptr_t got = (uintptr_t)co_switch(&main_co, &l->co, (void *)42);
    for (int r = 0; r < 1000; r++) {
        cr_assert_eq(l->rounds, r);
        xs[r] = (uint64_t)r * 2654435761u + got;
        p = p * 6364136223846793005ull + q;
        q ^= p >> 11;
        s += q * 3;
        u ^= s + p;
        got = (uintptr_t)co_switch(&main_co, &l->co,
                                   (void *)(uintptr_t)xs[r]);
    }
    cr_assert_eq(l->rounds, 1000);
    cr_assert_eq(l->sum, locals_reference(42, xs), "the coroutine's locals "
                                                   "went wrong across "
                                                   "switches");
    /* This side's locals, recomputed. */
    uint64_t p2 = 0x9E3779B97F4A7C15ull, q2 = 1, s2 = 12345, u2 = 0;
    for (int r = 0; r < 1000; r++) {
        p2 = p2 * 6364136223846793005ull + q2;
        q2 ^= p2 >> 11;
        s2 += q2 * 3;
        u2 ^= s2 + p2;
    }
    cr_assert(p == p2 && q == q2 && s == s2 && u == u2,
              "the test's locals went wrong across switches");
    co_free(&l->co);
    free(xs);
    free(l);
}

/* ------------------------------------------------------------------ */
/* The stack                                                           */
/* ------------------------------------------------------------------ */

struct where {
    struct co co;
    uintptr_t local_addr;
    uintptr_t frame_addr;
    uintptr_t aligned_addr;
    uintptr_t callee_frame, callee_aligned;
    int entered;
};

static TEL_NOINLINE void where_callee(struct where *w)
{
    _Alignas(16) volatile char x = 1;
    w->callee_aligned = (uintptr_t)&x;
    w->callee_frame = (uintptr_t)__builtin_frame_address(0);
}

static void where_entry(void *arg, void *user)
{
    (void)arg;
    co_started();
    struct where *w = user;
    volatile int local = 7;
    _Alignas(16) volatile char aligned = 0;
    w->local_addr = (uintptr_t)&local;
    w->aligned_addr = (uintptr_t)&aligned;
    w->frame_addr = (uintptr_t)__builtin_frame_address(0);
    where_callee(w);
    w->entered++;
    co_exit(&w->co, &main_co, NULL);
}

Test(context, the_entry_runs_on_the_given_stack)
{
    co_main_init();
    struct where w = {0};
    co_make(&w.co, 0, STACK_SIZE, where_entry, &w);
    co_switch(&main_co, &w.co, NULL);
    cr_assert_eq(w.entered, 1);
    uintptr_t lo = (uintptr_t)w.co.lo, hi = lo + w.co.size;
    cr_assert(w.local_addr >= lo && w.local_addr < hi,
              "a local of the entry is at %#zx, outside the stack "
              "[%#zx, %#zx)",
              (size_t)w.local_addr, (size_t)lo, (size_t)hi);
    cr_assert(w.callee_aligned >= lo && w.callee_aligned < hi,
              "a local of a callee is outside the stack");
    cr_assert_gt(w.local_addr, hi - 4096,
                 "the entry's frame is not near the top of the stack "
                 "(%zu bytes below it)",
                 (size_t)(hi - w.local_addr));
    cr_assert(co_guards_intact(&w.co), "bytes outside the stack were "
                                       "written");
    co_free(&w.co);
}

Test(context, the_stack_is_16_byte_aligned_at_entry)
{
    /* Bases and sizes that are not multiples of 16: tel__ctx_make must
     * align the top itself. */
    const size_t offs[] = {0, 8, 4, 1, 15, 24};
    const size_t sizes[] = {STACK_SIZE, STACK_SIZE - 8, STACK_SIZE - 3,
                            STACK_SIZE + 5, 16 * 1024 + 9, STACK_SIZE - 1};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        co_main_init();
        struct where w = {0};
        co_make(&w.co, offs[k], sizes[k], where_entry, &w);
        co_switch(&main_co, &w.co, NULL);
        cr_assert_eq(w.entered, 1);
        cr_assert_eq(w.aligned_addr % 16, 0,
                     "base +%zu, size %zu: a _Alignas(16) local of the "
                     "entry is at %#zx",
                     offs[k], sizes[k], (size_t)w.aligned_addr);
        cr_assert_eq(w.frame_addr % 16, 0,
                     "base +%zu, size %zu: the entry's frame address %#zx "
                     "is not 16-byte aligned",
                     offs[k], sizes[k], (size_t)w.frame_addr);
        cr_assert_eq(w.callee_aligned % 16, 0, "base +%zu, size %zu: in a "
                                               "callee",
                     offs[k], sizes[k]);
        cr_assert_eq(w.callee_frame % 16, 0, "base +%zu, size %zu: callee "
                                             "frame %#zx",
                     offs[k], sizes[k], (size_t)w.callee_frame);
        cr_assert(w.local_addr >= (uintptr_t)w.co.lo &&
                      w.local_addr < (uintptr_t)w.co.lo + w.co.size,
                  "base +%zu, size %zu: not on the given stack", offs[k],
                  sizes[k]);
        cr_assert(co_guards_intact(&w.co),
                  "base +%zu, size %zu: bytes outside the stack written",
                  offs[k], sizes[k]);
        co_free(&w.co);
    }
}

/* Deep recursion: the whole stack is usable, and only it. */
struct deep {
    struct co co;
    uint64_t result;
    uintptr_t lowest;
};

static TEL_NOINLINE uint64_t recurse(struct deep *d, int depth)
{
    volatile char pad[256];
    pad[0] = (char)depth;
    pad[255] = (char)(depth >> 1);
    if ((uintptr_t)pad < d->lowest)
        d->lowest = (uintptr_t)pad;
    if (depth == 0)
        return 1;
    return recurse(d, depth - 1) + (uint64_t)pad[0] + (uint64_t)pad[255];
}

static void deep_entry(void *arg, void *user)
{
    co_started();
    struct deep *d = user;
    d->lowest = UINTPTR_MAX;
    d->result = recurse(d, (int)(uintptr_t)arg);
    co_exit(&d->co, &main_co, NULL);
}

Test(context, deep_recursion_stays_within_the_given_stack)
{
    co_main_init();
    struct deep d = {0};
    /* ~300 bytes a frame (more under sanitizers): about 16 KiB of a 64 KiB
     * stack. */
    const int depth = 50;
    co_make(&d.co, 0, STACK_SIZE, deep_entry, &d);
    co_switch(&main_co, &d.co, (void *)(uintptr_t)depth);
    uint64_t want = 1;
    for (int i = 1; i <= depth; i++)
        want += (uint64_t)(char)i + (uint64_t)(char)(i >> 1);
    cr_assert_eq(d.result, want);
    cr_assert_geq(d.lowest, (uintptr_t)d.co.lo, "recursion ran below the "
                                                "stack's base");
    cr_assert(co_guards_intact(&d.co));
    co_free(&d.co);
}

/* ------------------------------------------------------------------ */
/* Several contexts                                                    */
/* ------------------------------------------------------------------ */

struct chain {
    struct co a, b;
    char trace[16];
    int n;
};

static void chain_b(void *arg, void *user)
{
    co_started();
    struct chain *c = user;
    c->trace[c->n++] = (char)(uintptr_t)arg; /* 'x' from a */
    /* Straight back to a (not via the test). */
    uintptr_t v = (uintptr_t)co_switch(&c->b, &c->a, (void *)'y');
    c->trace[c->n++] = (char)v; /* 'z' from the test */
    co_exit(&c->b, &main_co, (void *)'B');
}

static void chain_a(void *arg, void *user)
{
    co_started();
    struct chain *c = user;
    c->trace[c->n++] = (char)(uintptr_t)arg; /* 's' from the test */
    uintptr_t v = (uintptr_t)co_switch(&c->a, &c->b, (void *)'x');
    c->trace[c->n++] = (char)v; /* 'y' from b */
    co_exit(&c->a, &main_co, (void *)'A');
}

Test(context, contexts_switch_directly_to_each_other)
{
    co_main_init();
    struct chain c = {0};
    co_make(&c.a, 0, STACK_SIZE, chain_a, &c);
    co_make(&c.b, 0, STACK_SIZE, chain_b, &c);
    /* test -> a -> b -> a -> test; then test -> b -> test. */
    uintptr_t r = (uintptr_t)co_switch(&main_co, &c.a, (void *)'s');
    cr_assert_eq(r, 'A');
    r = (uintptr_t)co_switch(&main_co, &c.b, (void *)'z');
    cr_assert_eq(r, 'B');
    c.trace[c.n] = '\0';
    cr_assert_str_eq(c.trace, "sxyz");
    co_free(&c.a);
    co_free(&c.b);
}

struct reuse {
    struct co co;
    int runs;
    uintptr_t arg_seen;
};

static void reuse_entry(void *arg, void *user)
{
    co_started();
    struct reuse *r = user;
    r->runs++;
    r->arg_seen = (uintptr_t)arg;
    /* Dirty the stack a bit so a reuse starts on garbage. */
    volatile char junk[1024];
    memset((void *)junk, 0xAB, sizeof junk);
    co_exit(&r->co, &main_co, (void *)(uintptr_t)r->runs);
}

Test(context, a_stack_can_host_a_fresh_context_again)
{
    /* The scheduler reuses a dead process's stack for a new one. */
    co_main_init();
    struct reuse r = {0};
    co_make(&r.co, 0, STACK_SIZE, reuse_entry, &r);
    for (uintptr_t i = 1; i <= 20; i++) {
        if (i > 1)
            r.co.sp = tel__ctx_make(r.co.lo, r.co.size, reuse_entry, &r);
        uintptr_t back = (uintptr_t)co_switch(&main_co, &r.co, (void *)i);
        cr_assert_eq(back, i, "run %zu", (size_t)i);
        cr_assert_eq(r.arg_seen, i);
    }
    cr_assert_eq(r.runs, 20);
    cr_assert(co_guards_intact(&r.co));
    co_free(&r.co);
}

Test(context, many_contexts_interleave_round_robin)
{
    /* 16 coroutines, each a ping-pong partner of the test, resumed in
     * turn: each sees only its own values. */
    enum { N = 16, ROUNDS = 100 };
    struct pingpong *p = calloc(N, sizeof *p);
    cr_assert_not_null(p);
    co_main_init();
    for (int k = 0; k < N; k++)
        co_make(&p[k].co, (size_t)k * 16, STACK_SIZE, pong_entry, &p[k]);
    for (uintptr_t i = 0; i < ROUNDS; i++)
        for (int k = 0; k < N; k++) {
            uintptr_t send = (uintptr_t)k * 100000 + i;
            uintptr_t back =
                (uintptr_t)co_switch(&main_co, &p[k].co, (void *)send);
            cr_assert_eq(back, 3 * send + 1, "coroutine %d round %zu", k,
                         (size_t)i);
            cr_assert_eq(p[k].got[i], send);
            cr_assert_eq(p[k].rounds, (int)i + 1);
        }
    for (int k = 0; k < N; k++)
        co_free(&p[k].co);
    free(p);
}
