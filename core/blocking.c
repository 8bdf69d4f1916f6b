/*
 * core/blocking.c: tel_blocking, a call that runs a function on a pool of
 * threads the schedulers do not use (BEAM's dirty schedulers, tokio's
 * spawn_blocking), and the pool itself.
 *
 * Owns: the job queue and the pool's threads, one `struct pool` per run.
 *
 * Protocol. A blocking call is a call (core/server.c) whose server is a
 * pool thread. The process makes a job {fn, arg, its pid, a fresh ref, a
 * reply message it allocated itself}, queues it and waits with
 * tel_recv_match for an MSGK_REPLY carrying that ref, with the ref in its
 * ext's call_ref, as tel_call does. So the process parks on its mailbox
 * like any receive (its scheduler runs other processes meanwhile), keeps
 * its stack, and any other reply reaching it meanwhile is dropped
 * (core/link.c, tel__sig_filter). A pool thread pops the job, runs fn,
 * writes the result into the reply and delivers it through the gate
 * (tel__rt_enter; it is a thread the runtime does not own). The reply is
 * allocated by the process before the job is queued so that delivering it
 * cannot fail: a process never waits for a reply that no one could send.
 *
 * A process killed while it waits is gone at once (its stack is dropped,
 * like any process killed in a receive); the job is the pool's alone, so
 * fn runs to its end, and its reply goes to a dead pid, which frees it
 * (tel__mbox_deliver). Nothing the job holds points into the stack.
 *
 * The pool grows on demand and shrinks when idle. A job that finds more
 * queued jobs than idle threads starts a thread while the pool is under its
 * bound (tel_config_t.blocking_threads); otherwise it waits in the queue
 * for the next thread to finish. A thread idle for POOL_IDLE_NS exits. A
 * thread that exits cannot join itself: it joins the threads that exited
 * before it and leaves itself on `dead`, for the next one to exit, a job
 * that starts a thread, or teardown, so at most one exited thread is ever
 * left unjoined.
 *
 * Teardown (tel__blocking_fini, after the gate has closed): queued jobs
 * never started are freed with their replies; running jobs cannot be
 * stopped (fn is the user's code, maybe in a read()), so teardown waits
 * for them, and tel_run returns only when every fn has returned. Their
 * threads find the gate closed and free the reply instead of delivering
 * it. We rejected detaching stuck threads: their jobs' replies come from
 * the run's memory, which teardown frees.
 *
 * Invariants (under `mu`):
 *   - n_threads counts threads started or being started and not yet past
 *     their exit; n_idle those waiting in the queue's condition variable.
 *   - A job is in the queue, or owned by the one thread running it.
 *   - After `stopping` is set the queue stays empty.
 *
 * Concurrency: `mu` (a leaf: nothing is taken inside it, like the rank-3
 * mutexes of alloc/lock.h) guards everything but `n_pub`, a copy of
 * n_threads for tel_blocking_threads (relaxed: a count for introspection,
 * ordered with nothing). Processes take `mu` on their scheduler thread for
 * a few instructions; the slow work (fn, starting and joining threads)
 * happens outside it. The pool's waits are pthread condition waits, which
 * do not fail with EINTR.
 *
 * Not here: the wait itself (core/mailbox.c), dropping late replies
 * (core/link.c), the gate (core/runtime.c).
 */
#include "core/blocking.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "alloc/base.h"
#include "alloc/lock.h"
#include "alloc/numa.h"
#include "core/link.h"
#include "core/mailbox.h"
#include "core/message.h"
#include "core/process.h"
#include "core/runtime.h"

#define POOL_IDLE_NS 1000000000ll /* a thread idle this long exits */

struct job {
    struct job *next;
    intptr_t (*fn)(void *arg);
    void *arg;
    tel_pid_t pid;    /* the caller */
    struct msg *reply; /* MSGK_REPLY with the caller's ref; payload intptr_t */
};

struct worker {
    struct worker *next; /* on `dead` */
    pthread_t tid;       /* written by the worker itself, under mu */
};

static struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stopping (CLOCK_MONOTONIC) */
    pthread_cond_t gone; /* n_threads reached 0 */
    struct job *head, *tail;
    unsigned queued, n_threads, n_idle, max;
    bool stopping;
    struct worker *dead; /* exited, not joined (at most one) */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic unsigned n_pub;

/* Under mu: publish n_threads for tel_blocking_threads. */
static void set_threads(unsigned n)
{
    pool.n_threads = n;
    atomic_store_explicit(&n_pub, n, memory_order_relaxed);
}

/* Outside mu: join and free the exited threads on list w. */
static void reap(struct worker *w)
{
    while (w) {
        struct worker *next = w->next;
        pthread_join(w->tid, NULL);
        tel__mem_free(w, sizeof(*w));
        w = next;
    }
}

/* A pool thread: the job's owner from pop to free. */
static void run(struct job *j)
{
    intptr_t r = j->fn(j->arg);
    memcpy(j->reply->pub.data, &r, sizeof r);
    if (tel__rt_enter()) {
        tel__mbox_deliver(j->pid, j->reply); /* a dead pid frees it */
        tel__rt_leave();
    } else {
        tel__msg_free(j->reply); /* teardown: nobody waits any more */
    }
    tel__mem_free(j, sizeof(*j));
}

static void deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    int64_t ns = (int64_t)ts->tv_nsec + POOL_IDLE_NS;
    ts->tv_sec += (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    tel__mutex_lock(&pool.mu);
    self->tid = pthread_self();
    for (;;) {
        struct timespec dl;
        deadline(&dl);
        bool timed_out = false;
        while (!pool.head && !pool.stopping && !timed_out) {
            pool.n_idle++;
            int rc = pthread_cond_timedwait(&pool.work, &pool.mu, &dl);
            pool.n_idle--;
            timed_out = rc == ETIMEDOUT;
        }
        struct job *j = pool.head;
        if (!j)
            break; /* idle too long, or stopping */
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pool.queued--;
        tel__mutex_unlock(&pool.mu);
        run(j);
        tel__mutex_lock(&pool.mu);
    }
    set_threads(pool.n_threads - 1);
    struct worker *before = pool.dead;
    self->next = NULL;
    pool.dead = self;
    if (pool.n_threads == 0)
        pthread_cond_broadcast(&pool.gone);
    tel__mutex_unlock(&pool.mu);
    reap(before);
    return NULL;
}

/*
 * Start one pool thread (n_threads already counts it). Its mask blocks the
 * asynchronous signals, so signals meant for the program are never taken
 * by a pool thread; the creator's mask is restored. 0 or an errno.
 */
static int start_worker(void)
{
    struct worker *w = tel__mem_zalloc(sizeof(*w));
    if (!w)
        return ENOMEM;
    sigset_t all, old;
    sigfillset(&all);
    static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                    SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
        sigdelset(&all, sync_sigs[i]);
    pthread_t tid;
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&tid, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        tel__mem_free(w, sizeof(*w));
    return rc;
}

/*
 * A process: queue j, starting a thread if the idle ones do not cover the
 * queue. 0 (the job is the pool's now), or TEL_ESHUTDOWN / TEL_ENOMEM (it
 * is still the caller's).
 */
static int submit(struct job *j)
{
    j->next = NULL;
    tel__mutex_lock(&pool.mu);
    if (pool.stopping) {
        tel__mutex_unlock(&pool.mu);
        return TEL_ESHUTDOWN;
    }
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    pool.queued++;
    bool grow = pool.queued > pool.n_idle && pool.n_threads < pool.max;
    if (grow)
        set_threads(pool.n_threads + 1);
    else
        pthread_cond_signal(&pool.work);
    struct worker *dead = grow ? pool.dead : NULL;
    if (grow)
        pool.dead = NULL;
    tel__mutex_unlock(&pool.mu);
    reap(dead);
    if (!grow || start_worker() == 0)
        return 0;

    /* No thread: the job waits for a running one, if there is any. */
    tel__mutex_lock(&pool.mu);
    set_threads(pool.n_threads - 1);
    int rc = 0;
    if (pool.n_threads == 0) {
        /* Nobody can have taken j: take it back. */
        struct job **pp = &pool.head, *prev = NULL;
        while (*pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = j->next;
        if (pool.tail == j)
            pool.tail = prev;
        pool.queued--;
        rc = TEL_ENOMEM;
    }
    tel__mutex_unlock(&pool.mu);
    return rc;
}

void tel__blocking_init(unsigned max_threads)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
        pthread_cond_init(&pool.work, &ca) ||
        pthread_cond_init(&pool.gone, NULL))
        tel__panic("blocking pool: no condition variable");
    pthread_condattr_destroy(&ca);
    pool.head = pool.tail = NULL;
    pool.queued = pool.n_idle = 0;
    set_threads(0);
    pool.max = max_threads ? max_threads : TEL_DEFAULT_BLOCKING_THREADS;
    pool.stopping = false;
    pool.dead = NULL;
}

void tel__blocking_fini(void)
{
    tel__mutex_lock(&pool.mu);
    pool.stopping = true;
    struct job *q = pool.head;
    pool.head = pool.tail = NULL;
    pool.queued = 0;
    pthread_cond_broadcast(&pool.work);
    while (pool.n_threads)
        pthread_cond_wait(&pool.gone, &pool.mu);
    struct worker *dead = pool.dead;
    pool.dead = NULL;
    tel__mutex_unlock(&pool.mu);
    reap(dead);
    while (q) {
        struct job *next = q->next;
        tel__msg_free(q->reply);
        tel__mem_free(q, sizeof(*q));
        q = next;
    }
    pthread_cond_destroy(&pool.work);
    pthread_cond_destroy(&pool.gone);
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

static bool is_result(const tel_msg_t *pub, void *ctx)
{
    const struct msg *m = tel__msg_of((tel_msg_t *)pub);
    return tel__msg_kind(m) == MSGK_REPLY &&
           tel__msg_ref(m) == *(const uint64_t *)ctx;
}

int tel_blocking(intptr_t (*fn)(void *arg), void *arg, intptr_t *result_out)
{
    if (!fn)
        return TEL_EINVAL;
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext_get(p);
    if (!e)
        return TEL_ENOMEM;
    intptr_t zero = 0;
    struct job *j = tel__mem_alloc(sizeof(*j));
    struct msg *reply = tel__msg_new(0, 0, &zero, sizeof zero);
    if (!j || !reply) {
        tel__mem_free(j, sizeof(*j));
        if (reply)
            tel__msg_free(reply);
        return TEL_ENOMEM;
    }
    uint64_t ref = tel__make_ref();
    tel__msg_set_kind(reply, MSGK_REPLY, ref);
    *j = (struct job){.fn = fn, .arg = arg, .pid = p->pid, .reply = reply};
    int rc = submit(j);
    if (rc) {
        tel__msg_free(reply);
        tel__mem_free(j, sizeof(*j));
        return rc;
    }
    /* From here j is the pool's. If we are killed in the receive, we end
     * there; the reply then finds no process and is freed. */
    e->call_ref = ref;
    tel_msg_t *m = NULL;
    rc = tel_recv_match(&m, is_result, &ref, TEL_INFINITY);
    e->call_ref = 0; /* a reply still to come is dropped */
    if (rc)
        return rc;
    if (result_out)
        memcpy(result_out, m->data, sizeof *result_out);
    tel_msg_free(m);
    return 0;
}

unsigned tel_blocking_threads(void)
{
    return atomic_load_explicit(&n_pub, memory_order_relaxed);
}
