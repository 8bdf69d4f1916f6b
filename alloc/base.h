/*
 * alloc/base.h: the floor every layer may include. Header only.
 *
 * Owns: assertion and panic macros, branch hints, cache-line constants,
 * container_of, the CPU pause hint, and the sanitizer feature tests.
 * Nothing here allocates or takes a lock.
 */
#ifndef TEL_ALLOC_BASE_H
#define TEL_ALLOC_BASE_H

#include <stddef.h>
#include <stdint.h>

#define TEL_LIKELY(x) __builtin_expect(!!(x), 1)
#define TEL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TEL_NODISCARD_INTERNAL __attribute__((warn_unused_result))
#define TEL_NOINLINE __attribute__((noinline))
#define TEL_INLINE static inline __attribute__((always_inline))
#define TEL_CACHELINE 64
#define TEL_ALIGNED_CL __attribute__((aligned(TEL_CACHELINE)))
#define TEL_HIDDEN __attribute__((visibility("hidden")))

#define tel_container_of(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define TEL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * tel__panic: a broken internal invariant (our bug, never the user's input).
 * Prints "telar: panic: <msg>" on stderr and aborts. msg must be a constant
 * string; nothing is allocated.
 */
_Noreturn void tel__panic(const char *msg);

#ifdef TEL_DEBUG
#define TEL_ASSERT(x)                                                         \
    do {                                                                      \
        if (TEL_UNLIKELY(!(x)))                                               \
            tel__panic("assertion failed: " #x);                              \
    } while (0)
#else
#define TEL_ASSERT(x) ((void)0)
#endif

TEL_INLINE void tel__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Sanitizer detection, for GCC and Clang alike. */
#if defined(__SANITIZE_ADDRESS__)
#define TEL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TEL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEL_TSAN 1
#endif
#endif

#endif /* TEL_ALLOC_BASE_H */
