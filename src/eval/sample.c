/* sample.c — see sample.h. */
#include "sample.h"

#include <math.h>

#include "common/rng.h"
#include "tensor/detmath.h"

void lmz_sample_defaults(lmz_sample_params *p)
{
    p->temp = 0.8;
    p->top_k = 40;
    p->top_p = 0.95;
    p->min_p = 0.05;
    p->repeat_penalty = 1.0;
    p->repeat_last_n = 64;
}

const char *lmz_sample_check(const lmz_sample_params *p)
{
    if (!(p->temp >= 0) || !isfinite(p->temp)) return "--temp must be a number >= 0";
    if (!(p->top_p > 0 && p->top_p <= 1)) return "--top-p must be in (0, 1]";
    if (!(p->min_p >= 0 && p->min_p <= 1)) return "--min-p must be in [0, 1]";
    if (!(p->repeat_penalty > 0) || !isfinite(p->repeat_penalty)) return "--repeat-penalty must be a number > 0";
    return NULL;
}

size_t lmz_sample_scratch_bytes(uint32_t V) { return (size_t)V * (sizeof(uint32_t) + sizeof(float)); }

/* likelihood order: a before b when its logit is larger, or equal with a
 * smaller id */
static int before(const float *lg, uint32_t a, uint32_t b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); }

/* a heap of ids with the least likely at the root */
static void sift_down(const float *lg, uint32_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(lg, h[w], h[l])) w = l;
        if (r < n && before(lg, h[w], h[r])) w = r;
        if (w == i) return;
        uint32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* the k (<= V) most likely ids into idx, in likelihood order: a heap of k
 * that each other id enters by displacing its least likely, then sorted by
 * taking the least likely to the end, k times */
static void best_k(const float *lg, uint32_t V, uint32_t k, uint32_t *idx)
{
    for (uint32_t i = 0; i < k; i++) idx[i] = i;
    for (uint32_t i = k / 2; i-- > 0;) sift_down(lg, idx, k, i);
    for (uint32_t j = k; j < V; j++)
        if (before(lg, j, idx[0])) {
            idx[0] = j;
            sift_down(lg, idx, k, 0);
        }
    for (uint32_t n = k; n > 1; n--) {
        uint32_t t = idx[0];
        idx[0] = idx[n - 1];
        idx[n - 1] = t;
        sift_down(lg, idx, n - 1, 0);
    }
}

int32_t lmz_sample(const lmz_sample_params *p, float *lg, uint32_t V, const int32_t *recent, size_t n,
                   uint64_t *rng, void *scratch)
{
    for (uint32_t j = 0; j < V; j++)
        if (isnan(lg[j])) lg[j] = -INFINITY;
    if (p->repeat_penalty != 1.0 && p->repeat_last_n > 0) {
        size_t from = n > p->repeat_last_n ? n - p->repeat_last_n : 0;
        for (size_t i = from; i < n; i++) {
            int32_t t = recent[i];
            if (t < 0 || (uint32_t)t >= V) continue;
            size_t e = from;
            while (e < i && recent[e] != t) e++;
            if (e < i) continue; /* each distinct token once */
            double x = lg[t];
            lg[t] = (float)(x > 0 ? x / p->repeat_penalty : x * p->repeat_penalty);
        }
    }
    if (p->temp <= 0) { /* the most likely: the lowest id of ties */
        uint32_t best = 0;
        for (uint32_t j = 1; j < V; j++)
            if (lg[j] > lg[best]) best = j;
        return (int32_t)best;
    }

    uint32_t *idx = scratch;
    float *w = (float *)(idx + V);
    uint32_t k = p->top_k && p->top_k < V ? p->top_k : V;
    best_k(lg, V, k, idx);
    const float top = lg[idx[0]];
    if (top == -INFINITY) return (int32_t)idx[0]; /* nothing is possible: the lowest id */
    for (uint32_t i = 0; i < k; i++) w[i] = lmz_expf(lg[idx[i]] - top); /* temperature 1: the cuts' scale */
    if (p->top_p < 1) {
        double total = 0, c = 0;
        for (uint32_t i = 0; i < k; i++) total += w[i];
        uint32_t m = 0;
        while (m < k && (m == 0 || c < p->top_p * total)) c += w[m++];
        k = m;
    }
    if (p->min_p > 0) {
        uint32_t m = 1;
        while (m < k && (double)w[m] >= p->min_p) m++;
        k = m;
    }
    double sum = 0;
    for (uint32_t i = 0; i < k; i++) {
        w[i] = lmz_expf((float)((double)(lg[idx[i]] - top) / p->temp));
        sum += w[i];
    }
    double u = lmz_uniform53(rng) * sum, c = 0;
    for (uint32_t i = 0; i < k; i++) {
        c += w[i];
        if (u < c) return (int32_t)idx[i];
    }
    return (int32_t)idx[k - 1];
}
