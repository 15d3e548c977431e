/* test.h — a minimal test runner: TEST(name) registers a function, CHECK
 * records a failure with file:line and goes on; main() prints one line per
 * test and closes with "N passed, N failed". */
#ifndef LMZ_TEST_H
#define LMZ_TEST_H

#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
extern int test_failures; /* failures in the running test */

#define TEST(name)                                                            \
    static void name(void);                                                   \
    __attribute__((constructor)) static void reg_##name(void)                 \
    {                                                                         \
        test_register(#name, name);                                           \
    }                                                                         \
    static void name(void)

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                  \
        }                                                                     \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                    \
    do {                                                                      \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
        if (a_ != b_) {                                                       \
            fprintf(stderr, "  %s:%d: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                          \
            test_failures++;                                                  \
        }                                                                     \
    } while (0)

/* deterministic pseudo-random numbers for tests (splitmix64) */
static inline unsigned long long test_rand(unsigned long long *s)
{
    unsigned long long z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* whole file into memory; NULL if unreadable. *n = size */
unsigned char *test_read_file(const char *path, size_t *n);
/* path of a file in ../shared/data/bench, or NULL if that folder is absent */
const char *test_bench_path(const char *rel);
/* path of a file in ../shared/reference, or NULL if absent (rotating static
 * buffers: up to 8 results stay valid at once) */
const char *test_ref_path(const char *rel);
/* path of a file in ../shared/data/eval, or NULL if absent (same buffers) */
const char *test_eval_path(const char *rel);
int test_quick(void); /* LMZ_TEST_QUICK set: skip the slow cases */

#endif
