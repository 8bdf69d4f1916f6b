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

#endif /* TEL_CORE_SERVER_H */
