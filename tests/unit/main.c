/* main.c — runs every registered test (see test.h). Optional argument: a
 * substring; only tests whose names contain it run. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

#define MAX_TESTS 256
static struct { const char *name; test_fn fn; } tests[MAX_TESTS];
static int n_tests;
int test_failures;

void test_register(const char *name, test_fn fn)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

unsigned char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static const char *data_path(const char *sub, const char *rel)
{
    static char buf[8][4096];
    static unsigned k;
    char *b = buf[k++ & 7];
    const char *root = getenv("LMZ_DATA");
    if (!root) root = "../shared/data";
    snprintf(b, sizeof buf[0], "%s/%s/%s", root, sub, rel);
    FILE *f = fopen(b, "rb");
    if (!f) return NULL;
    fclose(f);
    return b;
}

const char *test_bench_path(const char *rel) { return data_path("bench", rel); }
const char *test_ref_path(const char *rel) { return data_path("../reference", rel); }
const char *test_eval_path(const char *rel) { return data_path("eval", rel); }

int test_quick(void) { return getenv("LMZ_TEST_QUICK") != NULL; }

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
        test_failures = 0;
        clock_t t0 = clock();
        tests[i].fn();
        double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
        printf("%s %-40s %.2fs\n", test_failures ? "FAIL" : "ok  ", tests[i].name, dt);
        fflush(stdout);
        if (test_failures) failed++; else passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
