/*
 * core/runtime.h: the runtime's state shared by core's modules.
 */
#ifndef TEL_CORE_RUNTIME_H
#define TEL_CORE_RUNTIME_H

#include <stdbool.h>

/*
 * A thread the runtime does not own enters before it touches runtime state
 * and leaves after; enter fails (false) when no runtime runs or it is
 * stopping. Teardown closes the gate and waits until nobody is inside.
 */
bool tel__rt_enter(void);
void tel__rt_leave(void);

#endif /* TEL_CORE_RUNTIME_H */
