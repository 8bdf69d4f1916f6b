/*
 * core/error.c: tel_strerror, tel_errname and tel_reason_str, generated from
 * the lists in include/telar.h.
 */
#include "include/telar.h"

const char *tel_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define ERR_MSG(name, val, msg)                                               \
    case val:                                                                 \
        return msg;
        TEL_ERRNO_MAP(ERR_MSG)
#undef ERR_MSG
    default:
        return "unknown error";
    }
}

const char *tel_errname(int err)
{
    switch (err) {
    case 0:
        return "0";
#define ERR_NAME(name, val, msg)                                              \
    case val:                                                                 \
        return "TEL_" #name;
        TEL_ERRNO_MAP(ERR_NAME)
#undef ERR_NAME
    default:
        return "TEL_E?";
    }
}

const char *tel_reason_str(tel_reason_t reason)
{
    if (reason > 0)
        return "user";
    switch (reason) {
#define REASON_STR(name, val, str)                                            \
    case val:                                                                 \
        return str;
        TEL_REASON_MAP(REASON_STR)
#undef REASON_STR
    default:
        return "unknown";
    }
}
