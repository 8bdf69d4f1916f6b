/* examples/hello.c: spawn a greeter, send it a name, print its reply. */
#include <stdio.h>
#include <string.h>

#include "telar.h"

static void greeter(void *arg)
{
    (void)arg;
    tel_msg_t *m;
    char reply[128];
    if (tel_recv(&m, TEL_INFINITY) != 0)
        return;
    snprintf(reply, sizeof(reply), "Hello, %s!", (const char *)m->data);
    if (tel_send(m->from, 0, reply, strlen(reply) + 1) != 0)
        fprintf(stderr, "greeter: send failed\n");
    tel_msg_free(m);
}

static void hello_main(void *arg)
{
    (void)arg;
    tel_pid_t g;
    tel_msg_t *m;
    if (tel_spawn(&g, greeter, NULL) != 0 ||
        tel_send(g, 0, "world", sizeof("world")) != 0 ||
        tel_recv(&m, TEL_INFINITY) != 0) {
        fprintf(stderr, "hello: failed\n");
        return;
    }
    printf("%s\n", (const char *)m->data);
    tel_msg_free(m);
}

int main(void)
{
    int rc = tel_run(NULL, hello_main, NULL);
    if (rc != 0)
        fprintf(stderr, "hello: tel_run: %s\n", tel_strerror(rc));
    return rc != 0;
}
