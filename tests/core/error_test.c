/*
 * tests/core/error_test.c: tel_strerror, tel_errname and tel_reason_str,
 * checked against the lists in include/telar.h. These need no runtime.
 */
#include "common.h"

#include <ctype.h>
#include <limits.h>

struct err_row {
    int code;
    const char *name;
    const char *msg;
};

static const struct err_row errs[] = {
#define ROW(name, val, msg) {TEL_##name, "TEL_" #name, msg},
    TEL_ERRNO_MAP(ROW)
#undef ROW
};
#define NERRS (sizeof errs / sizeof errs[0])

struct reason_row {
    tel_reason_t reason;
    const char *str;
};

static const struct reason_row reasons[] = {
#define ROW(name, val, str) {TEL_##name, str},
    TEL_REASON_MAP(ROW)
#undef ROW
};
#define NREASONS (sizeof reasons / sizeof reasons[0])

/* Codes that are not TEL_E* values: positive ones, and below the lowest. */
#define NUNKNOWN 8
static int unknown_codes[NUNKNOWN];

static void fill_unknown_codes(void)
{
    int lowest = 0;
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].code < lowest)
            lowest = errs[i].code;
    const int codes[NUNKNOWN] = {1,           2,           100,     lowest - 1,
                                 lowest - 2,  lowest - 1000, INT_MIN, INT_MAX};
    memcpy(unknown_codes, codes, sizeof codes);
}

Test(error, strerror_of_each_code_is_its_sentence)
{
    for (size_t i = 0; i < NERRS; i++) {
        const char *s = tel_strerror(errs[i].code);
        cr_assert_not_null(s, "%s has no text", errs[i].name);
        cr_assert_neq(s[0], '\0', "%s has empty text", errs[i].name);
        cr_assert_str_eq(s, errs[i].msg, "%s: \"%s\"", errs[i].name, s);
    }
}

Test(error, strerror_texts_are_distinct)
{
    for (size_t i = 0; i < NERRS; i++)
        for (size_t j = i + 1; j < NERRS; j++)
            cr_assert_str_neq(tel_strerror(errs[i].code),
                              tel_strerror(errs[j].code),
                              "%s and %s share a text", errs[i].name,
                              errs[j].name);
}

Test(error, strerror_of_zero_says_success)
{
    const char *s = tel_strerror(0);
    cr_assert_not_null(s);
    char lower[64] = {0};
    for (size_t i = 0; s[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)s[i]);
    cr_assert_not_null(strstr(lower, "success"), "tel_strerror(0) is \"%s\"",
                       s);
    for (size_t i = 0; i < NERRS; i++)
        cr_assert_str_neq(s, tel_strerror(errs[i].code));
}

Test(error, strerror_of_an_unknown_code_is_a_string)
{
    fill_unknown_codes();
    for (size_t i = 0; i < NUNKNOWN; i++) {
        const char *s = tel_strerror(unknown_codes[i]);
        cr_assert_not_null(s, "tel_strerror(%d) is NULL", unknown_codes[i]);
        cr_assert_neq(s[0], '\0', "tel_strerror(%d) is empty",
                      unknown_codes[i]);
        for (size_t j = 0; j < NERRS; j++)
            cr_assert_str_neq(s, errs[j].msg,
                              "tel_strerror(%d) claims to be %s",
                              unknown_codes[i], errs[j].name);
    }
}

Test(error, errname_gives_the_macro_name)
{
    for (size_t i = 0; i < NERRS; i++) {
        const char *s = tel_errname(errs[i].code);
        cr_assert_not_null(s, "%s has no name", errs[i].name);
        cr_assert_str_eq(s, errs[i].name, "tel_errname(%d) is \"%s\"",
                         errs[i].code, s);
    }
    cr_assert_str_eq(tel_errname(TEL_EINVAL), "TEL_EINVAL");
    cr_assert_str_eq(tel_errname(TEL_ESYS), "TEL_ESYS");
}

Test(error, errname_of_zero_and_unknown_codes_is_a_string)
{
    fill_unknown_codes();
    const char *z = tel_errname(0);
    cr_assert_not_null(z);
    for (size_t j = 0; j < NERRS; j++)
        cr_assert_str_neq(z, errs[j].name, "tel_errname(0) is %s", z);
    for (size_t i = 0; i < NUNKNOWN; i++) {
        const char *s = tel_errname(unknown_codes[i]);
        cr_assert_not_null(s, "tel_errname(%d) is NULL", unknown_codes[i]);
        for (size_t j = 0; j < NERRS; j++)
            cr_assert_str_neq(s, errs[j].name, "tel_errname(%d) is %s",
                              unknown_codes[i], s);
    }
}

Test(error, strings_are_static_and_stable)
{
    for (size_t i = 0; i < NERRS; i++) {
        cr_assert_eq(tel_strerror(errs[i].code), tel_strerror(errs[i].code),
                     "%s: two calls gave two pointers", errs[i].name);
        cr_assert_eq(tel_errname(errs[i].code), tel_errname(errs[i].code));
    }
}

Test(error, reason_str_names_each_runtime_reason)
{
    for (size_t i = 0; i < NREASONS; i++) {
        const char *s = tel_reason_str(reasons[i].reason);
        cr_assert_not_null(s, "reason %" PRId64 " has no name",
                           reasons[i].reason);
        cr_assert_str_eq(s, reasons[i].str,
                         "tel_reason_str(%" PRId64 ") is \"%s\"",
                         reasons[i].reason, s);
    }
    cr_assert_str_eq(tel_reason_str(TEL_NORMAL), "normal");
    cr_assert_str_eq(tel_reason_str(TEL_SHUTDOWN), "shutdown");
}

Test(error, reason_str_of_a_positive_reason_is_user)
{
    static const tel_reason_t user[] = {1, 2, 42, 1000000, INT64_MAX};
    for (size_t i = 0; i < sizeof user / sizeof user[0]; i++) {
        const char *s = tel_reason_str(user[i]);
        cr_assert_not_null(s);
        cr_assert_str_eq(s, "user", "tel_reason_str(%" PRId64 ") is \"%s\"",
                         user[i], s);
    }
}

Test(error, reason_str_of_an_unknown_negative_reason_is_unknown)
{
    /* Below the lowest reason the header lists, whatever that is now. */
    tel_reason_t lowest = 0;
    for (size_t i = 0; i < NREASONS; i++)
        if (reasons[i].reason < lowest)
            lowest = reasons[i].reason;
    const tel_reason_t odd[] = {lowest - 1, lowest - 2, lowest - 100,
                                INT64_MIN};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = tel_reason_str(odd[i]);
        cr_assert_not_null(s);
        cr_assert_str_eq(s, "unknown", "tel_reason_str(%" PRId64 ") is \"%s\"",
                         odd[i], s);
    }
}

static atomic_int strings_in_process_ok;

static void strings_main(void *arg)
{
    (void)arg;
    bool ok = strcmp(tel_errname(TEL_ETIMEDOUT), "TEL_ETIMEDOUT") == 0 &&
              strcmp(tel_strerror(TEL_ETIMEDOUT), "timed out") == 0 &&
              strcmp(tel_reason_str(TEL_KILLED), "killed") == 0;
    if (TT_CHECK(ok, "the strings differ inside a process"))
        atomic_store(&strings_in_process_ok, 1);
}

Test(error, strings_work_inside_a_process, .timeout = 30)
{
    TT_RUN(NULL, strings_main, NULL);
    cr_assert_eq(atomic_load(&strings_in_process_ok), 1);
}
