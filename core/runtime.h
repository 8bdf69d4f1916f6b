/*
 * core/runtime.h: the runtime's state shared by core's modules.
 */
#ifndef TEL_CORE_RUNTIME_H
#define TEL_CORE_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A thread the runtime does not own enters before it touches runtime state
 * and leaves after; enter fails (false) when no runtime runs or it is
 * stopping. Teardown closes the gate and waits until nobody is inside.
 */
bool tel__rt_enter(void);
void tel__rt_leave(void);

/*
 * The main process could not get a stack, so main_fn never ran: tel_run
 * returns TEL_ENOMEM rather than 0. Set by process.c on the scheduler thread
 * that ended main, read by tel_run after the schedulers have stopped.
 */
extern bool tel__rt_main_nostack;

/*
 * The watchdog's long_run hook (sched/sysmon.c): send the system monitor
 * (tel_system_monitor) a TEL_TAG_LONG_SCHEDULE message. The watchdog's
 * thread.
 */
void tel__rt_long_run(unsigned index, uint64_t id, uint64_t ns);

#endif /* TEL_CORE_RUNTIME_H */
