/*
 * tests/tsan/criterion/logging.h: cr_log_info is in criterion.h (TSan shim).
 */
#include <criterion/criterion.h>
