/*
 * bench_rc.c — range coder overhead and speed: 10^6 symbols drawn from a
 * skewed (Zipf s = 1.1) distribution over 49,152 symbols, quantised to a
 * 2^24 table by the CDF builder; prints the ideal code length
 * (-sum log2 of the quantised probabilities), the real one, the overhead,
 * and encode/decode speed in symbols per second.
 *   build/bench_rc [SYMBOLS] [ALPHABET]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "predict/cdf.h"
#include "common/rangecoder.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    uint32_t n = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 49152;
    if (count == 0 || n < 2 || n > LMZ_CDF_MAX_SYMBOLS) {
        fprintf(stderr, "usage: bench_rc [SYMBOLS] [ALPHABET 2..%u]\n", LMZ_CDF_MAX_SYMBOLS);
        return 1;
    }
    float *p = malloc(n * sizeof *p);
    uint32_t *freq = malloc(n * sizeof *freq), *cum = malloc((n + 1) * sizeof *cum);
    uint32_t *sym = malloc(count * sizeof *sym);
    if (!p || !freq || !cum || !sym) return 1;
    for (uint32_t i = 0; i < n; i++) p[i] = (float)(1.0 / pow((double)i + 1.0, 1.1));
    lmz_cdf_build(p, n, freq, cum);

    unsigned long long s = 42;
    double ideal = 0.0;
    for (size_t i = 0; i < count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        sym[i] = lmz_cdf_find(cum, n, (uint32_t)(s >> 40));
        ideal -= log2((double)freq[sym[i]] / LMZ_CDF_TOTAL);
    }
    size_t cap = (size_t)(ideal / 8) + 4096;
    uint8_t *buf = malloc(cap);
    lmz_rc_enc e;
    double t0 = now();
    lmz_rc_enc_init(&e, buf, cap);
    for (size_t i = 0; i < count; i++) lmz_rc_encode(&e, cum[sym[i]], freq[sym[i]], LMZ_CDF_TOTAL);
    size_t len = lmz_rc_enc_finish(&e);
    double t1 = now();
    lmz_rc_dec d;
    lmz_rc_dec_init(&d, buf, len);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t k = lmz_cdf_find(cum, n, lmz_rc_decode_target(&d, LMZ_CDF_TOTAL));
        bad += k != sym[i];
        lmz_rc_decode_update(&d, cum[k], freq[k], LMZ_CDF_TOTAL);
    }
    double t2 = now();
    double real = 8.0 * (double)len;
    printf("symbols %zu, alphabet %u, CDF total 2^24\n", count, n);
    printf("ideal  %.1f bits (%.4f bits/symbol)\n", ideal, ideal / (double)count);
    printf("coded  %.0f bits (%zu bytes)\n", real, len);
    printf("overhead %.6f %% (%.3f bits in all)\n", 100.0 * (real - ideal) / ideal, real - ideal);
    printf("encode %.1f M symbols/s, decode %.1f M symbols/s (binary search in the CDF)\n",
           (double)count / (t1 - t0) / 1e6, (double)count / (t2 - t1) / 1e6);
    printf("decode %s\n", bad || !lmz_rc_dec_finished_cleanly(&d) ? "MISMATCH" : "exact");
    return bad ? 1 : 0;
}
