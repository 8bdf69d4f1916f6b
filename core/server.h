/*
 * core/server.h: what core's own servers (the supervisor) get from
 * core/server.c besides the public calls.
 */
#ifndef TEL_CORE_SERVER_H
#define TEL_CORE_SERVER_H

/*
 * Inside a server's init: if the server ends without its terminate running
 * (an untrappable kill, tel_run's teardown), fn(state) frees its state
 * then. fn may only free memory: it runs on a scheduler's loop, or on
 * tel_run's thread at teardown, and must call no Telar function. It stays
 * armed until terminate has returned (a process can be killed while
 * terminate waits), so terminate must free the state only after its last
 * call that may switch.
 */
void tel__server_on_kill(void (*fn)(void *state));

/*
 * Inside a server's init: the server keeps its stack while it waits, never
 * hibernating. A hibernated server needs a new stack when a request comes,
 * and ends with TEL_NOMEM if none can be had: a supervisor must not.
 */
void tel__server_keep_stack(void);

#endif /* TEL_CORE_SERVER_H */
