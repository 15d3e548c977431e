/* The sampler of `dsrn generate` (src/eval/sample.c): greedy ties, each cut
 * alone (top-k, top-p, min-p) and the penalty, draws that follow the
 * softmax, NaN logits, a seed that repeats, settings out of range. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sample.h"
#include "test.h"

static lmz_sample_params off(double temp)
{
    lmz_sample_params p = {temp, 0, 1.0, 0.0, 1.0, 64};
    return p;
}

/* draws of n tokens from logits (copied each time: the penalty rewrites
 * them) into counts */
static void draw(const lmz_sample_params *p, const float *lg, uint32_t V, const int32_t *recent, size_t nr,
                 unsigned n, uint64_t seed, unsigned *counts)
{
    float *l = malloc(V * sizeof *l);
    void *scratch = malloc(lmz_sample_scratch_bytes(V));
    memset(counts, 0, V * sizeof *counts);
    for (unsigned i = 0; i < n; i++) {
        memcpy(l, lg, V * sizeof *l);
        int32_t t = lmz_sample(p, l, V, recent, nr, &seed, scratch);
        if (t >= 0 && (uint32_t)t < V) counts[t]++;
    }
    free(l);
    free(scratch);
}

TEST(sample_greedy_and_ties)
{
    const float lg[5] = {1.0f, 3.0f, 3.0f, -2.0f, NAN};
    unsigned c[5];
    lmz_sample_params p = off(0);
    draw(&p, lg, 5, NULL, 0, 3, 1, c);
    CHECK(c[1] == 3); /* the lowest id of the most likely */
    p = off(1.0);
    p.top_k = 1;
    draw(&p, lg, 5, NULL, 0, 50, 7, c);
    CHECK(c[1] == 50);
    const float flat[6] = {0, 0, 0, 0, 0, 0};
    unsigned c6[6];
    p.top_k = 3; /* equal logits: the three lowest ids */
    draw(&p, flat, 6, NULL, 0, 600, 3, c6);
    CHECK(c6[0] > 150 && c6[1] > 150 && c6[2] > 150 && c6[3] + c6[4] + c6[5] == 0);
}

TEST(sample_follows_the_softmax)
{
    const float lg[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    unsigned c[4];
    lmz_sample_params p = off(1.0);
    draw(&p, lg, 4, NULL, 0, 20000, 11, c);
    for (int i = 0; i < 4; i++) CHECK(fabs(c[i] / 20000.0 - 0.1 * (i + 1)) < 0.015);
    p.temp = 0.5; /* p^2 normalised: 1, 4, 9, 16 over 30 */
    draw(&p, lg, 4, NULL, 0, 20000, 12, c);
    for (int i = 0; i < 4; i++) CHECK(fabs(c[i] / 20000.0 - (i + 1) * (i + 1) / 30.0) < 0.015);
}

TEST(sample_cuts)
{
    const float lg[3] = {logf(0.6f), logf(0.35f), logf(0.05f)};
    unsigned c[3];
    lmz_sample_params p = off(1.0);
    p.top_p = 0.9; /* 0.6 + 0.35 reach it */
    draw(&p, lg, 3, NULL, 0, 4000, 5, c);
    CHECK(c[2] == 0 && c[1] > 1000 && c[0] > 2000);
    p.top_p = 0.5; /* 0.6 alone */
    draw(&p, lg, 3, NULL, 0, 100, 5, c);
    CHECK(c[0] == 100);
    p = off(1.0);
    p.min_p = 0.1; /* 0.05 / 0.6 < 0.1 */
    draw(&p, lg, 3, NULL, 0, 4000, 6, c);
    CHECK(c[2] == 0 && c[1] > 1000);
    p.min_p = 0.05;
    draw(&p, lg, 3, NULL, 0, 4000, 6, c);
    CHECK(c[2] > 0);
    p = off(1.0);
    p.top_k = 2;
    draw(&p, lg, 3, NULL, 0, 4000, 8, c);
    CHECK(c[2] == 0 && c[1] > 1000);
}

TEST(sample_repeat_penalty)
{
    const float lg[3] = {2.0f, 1.9f, -1.0f};
    float l[3];
    unsigned c[3];
    void *scratch = malloc(lmz_sample_scratch_bytes(3));
    uint64_t seed = 1;
    lmz_sample_params p = off(0);
    p.repeat_penalty = 2.0;
    const int32_t r0[3] = {0, 0, 0};
    memcpy(l, lg, sizeof l);
    CHECK(lmz_sample(&p, l, 3, r0, 3, &seed, scratch) == 1 && l[0] == 1.0f); /* 2 / 2 once, not three times */
    const int32_t r2[2] = {2, 99};                                            /* 99: not a token, ignored */
    memcpy(l, lg, sizeof l);
    CHECK(lmz_sample(&p, l, 3, r2, 2, &seed, scratch) == 0 && l[2] == -2.0f);
    p.repeat_last_n = 1; /* only the last token counts: 2, not 0 */
    const int32_t r1[2] = {0, 2};
    memcpy(l, lg, sizeof l);
    CHECK(lmz_sample(&p, l, 3, r1, 2, &seed, scratch) == 0 && l[0] == 2.0f);
    free(scratch);
    p = off(1.0);
    draw(&p, lg, 3, NULL, 0, 10, 2, c);
    CHECK(c[0] + c[1] + c[2] == 10);
}

TEST(sample_seed_repeats_and_nan)
{
    enum { V = 300 };
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)((i * 37) % 101) / 25.0f;
    lg[5] = NAN;
    lmz_sample_params p;
    lmz_sample_defaults(&p);
    p.top_k = 0;
    p.min_p = 0;
    unsigned a[V], b[V];
    draw(&p, lg, V, NULL, 0, 500, 42, a);
    draw(&p, lg, V, NULL, 0, 500, 42, b);
    CHECK(memcmp(a, b, sizeof a) == 0 && a[5] == 0);
    float allnan[2] = {NAN, NAN};
    void *scratch = malloc(lmz_sample_scratch_bytes(2));
    uint64_t s = 1;
    CHECK(lmz_sample(&p, allnan, 2, NULL, 0, &s, scratch) == 0);
    free(scratch);
}

TEST(sample_settings_checked)
{
    lmz_sample_params p;
    lmz_sample_defaults(&p);
    CHECK(lmz_sample_check(&p) == NULL && p.top_k == 40 && p.top_p == 0.95 && p.min_p == 0.05);
    p.top_p = 0;
    CHECK(lmz_sample_check(&p) != NULL);
    lmz_sample_defaults(&p);
    p.min_p = 1.5;
    CHECK(lmz_sample_check(&p) != NULL);
    lmz_sample_defaults(&p);
    p.temp = -1;
    CHECK(lmz_sample_check(&p) != NULL);
    lmz_sample_defaults(&p);
    p.repeat_penalty = 0;
    CHECK(lmz_sample_check(&p) != NULL);
}
