/* Range coder and CDF builder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "predict/cdf.h"
#include "common/rangecoder.h"
#include "test.h"

/* Zipf-like distribution over n symbols, quantised to a 2^24 table. */
static void skewed_table(uint32_t n, double s, uint32_t *freq, uint32_t *cum)
{
    float *p = malloc(n * sizeof *p);
    for (uint32_t i = 0; i < n; i++) p[i] = (float)(1.0 / pow((double)i + 1.0, s));
    lmz_cdf_build(p, n, freq, cum);
    free(p);
}

/* Code `count` symbols drawn from the table; check the decode and return the
 * overhead of the real code length over the ideal one, as a fraction. */
static double code_symbols(uint32_t n, const uint32_t *freq, const uint32_t *cum, size_t count,
                           unsigned long long seed)
{
    uint32_t *sym = malloc(count * sizeof *sym);
    double ideal = 0.0;
    for (size_t i = 0; i < count; i++) {
        uint32_t t = (uint32_t)(test_rand(&seed) & (LMZ_CDF_TOTAL - 1));
        sym[i] = lmz_cdf_find(cum, n, t);
        ideal -= log2((double)freq[sym[i]] / LMZ_CDF_TOTAL);
    }
    size_t cap = (size_t)(ideal / 8) + 1024;
    uint8_t *buf = malloc(cap);
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, buf, cap);
    for (size_t i = 0; i < count; i++) lmz_rc_encode(&e, cum[sym[i]], freq[sym[i]], LMZ_CDF_TOTAL);
    size_t len = lmz_rc_enc_finish(&e);
    CHECK(len > 0);

    lmz_rc_dec d;
    lmz_rc_dec_init(&d, buf, len);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t t = lmz_rc_decode_target(&d, LMZ_CDF_TOTAL);
        uint32_t s = lmz_cdf_find(cum, n, t);
        if (s != sym[i]) bad++;
        lmz_rc_decode_update(&d, cum[s], freq[s], LMZ_CDF_TOTAL);
    }
    CHECK_EQ_U64(bad, 0);
    CHECK(lmz_rc_dec_finished_cleanly(&d));
    free(buf);
    free(sym);
    return (8.0 * (double)len - ideal) / ideal;
}

TEST(rc_overhead_49152_symbols)
{
    const uint32_t n = 49152;
    uint32_t *freq = malloc(n * sizeof *freq), *cum = malloc((n + 1) * sizeof *cum);
    skewed_table(n, 1.1, freq, cum);
    double ov = code_symbols(n, freq, cum, test_quick() ? 100000 : 1000000, 1);
    printf("  overhead over ideal code length: %.6f %%\n", ov * 100.0);
    CHECK(ov < 1e-4);
    free(freq);
    free(cum);
}

TEST(rc_large_alphabet_262144)
{
    const uint32_t n = 262144;
    uint32_t *freq = malloc(n * sizeof *freq), *cum = malloc((n + 1) * sizeof *cum);
    skewed_table(n, 0.8, freq, cum);
    double ov = code_symbols(n, freq, cum, 200000, 7);
    CHECK(ov < 1e-3);
    free(freq);
    free(cum);
}

TEST(rc_small_totals_and_extremes)
{
    /* totals from 2 to 2^24, including a symbol of frequency 1 next to a huge one */
    unsigned long long seed = 3;
    for (int round = 0; round < 50; round++) {
        uint32_t total = 2 + (uint32_t)(test_rand(&seed) % (LMZ_CDF_TOTAL - 1));
        if (round == 0) total = LMZ_CDF_TOTAL;
        if (round == 1) total = 2;
        uint32_t n = 2 + (uint32_t)(test_rand(&seed) % 8);
        if (n > total) n = total;
        uint32_t freq[10], cum[11];
        uint32_t left = total;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t room = left - (n - 1 - i);
            freq[i] = i + 1 == n ? left : 1 + (uint32_t)(test_rand(&seed) % (room > 1 ? room / 2 : 1));
            if (freq[i] > room) freq[i] = room;
            left -= freq[i];
        }
        cum[0] = 0;
        for (uint32_t i = 0; i < n; i++) cum[i + 1] = cum[i] + freq[i];
        CHECK_EQ_U64(cum[n], total);
        uint8_t buf[4096];
        uint32_t sym[500];
        lmz_rc_enc e;
        lmz_rc_enc_init(&e, buf, sizeof buf);
        for (int i = 0; i < 500; i++) {
            sym[i] = (uint32_t)(test_rand(&seed) % n);
            lmz_rc_encode(&e, cum[sym[i]], freq[sym[i]], total);
        }
        size_t len = lmz_rc_enc_finish(&e);
        CHECK(len > 0);
        lmz_rc_dec d;
        lmz_rc_dec_init(&d, buf, len);
        for (int i = 0; i < 500; i++) {
            uint32_t s = lmz_cdf_find(cum, n, lmz_rc_decode_target(&d, total));
            CHECK_EQ_U64(s, sym[i]);
            lmz_rc_decode_update(&d, cum[s], freq[s], total);
        }
        CHECK(lmz_rc_dec_finished_cleanly(&d));
    }
}

TEST(rc_binary_mixed_with_symbols)
{
    unsigned long long seed = 11;
    uint8_t *buf = malloc(1 << 20);
    int bits[20000];
    uint32_t probs[20000];
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, buf, 1 << 20);
    for (int i = 0; i < 20000; i++) {
        probs[i] = 1 + (uint32_t)(test_rand(&seed) % 65535);
        bits[i] = (int)(test_rand(&seed) % 65536 < probs[i]);
        lmz_rc_encode_bit(&e, probs[i], bits[i]);
        if (i % 7 == 0) lmz_rc_encode(&e, 5, 10, 1000);
    }
    size_t len = lmz_rc_enc_finish(&e);
    lmz_rc_dec d;
    lmz_rc_dec_init(&d, buf, len);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        if (lmz_rc_decode_bit(&d, probs[i]) != bits[i]) bad++;
        if (i % 7 == 0) {
            uint32_t t = lmz_rc_decode_target(&d, 1000);
            if (t < 5 || t >= 15) bad++;
            lmz_rc_decode_update(&d, 5, 10, 1000);
        }
    }
    CHECK_EQ_U64(bad, 0);
    CHECK(lmz_rc_dec_finished_cleanly(&d));
    free(buf);
}

/* the short flush: the same symbols back, fewer bytes, a long tail caught */
TEST(rc_short_streams)
{
    unsigned long long seed = 5;
    uint8_t a[4096], b[4096];
    uint32_t sym[600], total[600], cum[600], freq[600];
    size_t saved = 0;
    for (int round = 0; round < 300; round++) {
        size_t count = round < 20 ? (size_t)round : 1 + test_rand(&seed) % 600;
        for (size_t i = 0; i < count; i++) { /* any table shape, certain symbols too */
            total[i] = 1u << (1 + test_rand(&seed) % 24);
            freq[i] = 1 + (uint32_t)(test_rand(&seed) % total[i]);
            if (round % 3 == 0) freq[i] = total[i] - (total[i] > 1);
            cum[i] = (uint32_t)(test_rand(&seed) % (total[i] - freq[i] + 1));
            sym[i] = cum[i];
        }
        lmz_rc_enc e, f;
        lmz_rc_enc_init(&e, a, sizeof a);
        lmz_rc_enc_init(&f, b, sizeof b);
        for (size_t i = 0; i < count; i++) {
            lmz_rc_encode(&e, cum[i], freq[i], total[i]);
            lmz_rc_encode(&f, cum[i], freq[i], total[i]);
        }
        size_t full = lmz_rc_enc_finish(&e), len = lmz_rc_enc_finish_short(&f);
        CHECK(len >= 1 && len <= full);
        saved += full - len;
        lmz_rc_dec d;
        lmz_rc_dec_init_short(&d, b, len);
        int ok = 1;
        for (size_t i = 0; i < count; i++) {
            uint32_t t = lmz_rc_decode_target(&d, total[i]);
            ok &= t >= cum[i] && t < cum[i] + freq[i];
            lmz_rc_decode_update(&d, cum[i], freq[i], total[i]);
        }
        CHECK(ok && lmz_rc_dec_finished_cleanly(&d));
        memset(b + len, 0x5A, 7); /* more bytes than the decoder looks ahead */
        lmz_rc_dec_init_short(&d, b, len + 7);
        for (size_t i = 0; i < count; i++) {
            lmz_rc_decode_target(&d, total[i]);
            lmz_rc_decode_update(&d, cum[i], freq[i], total[i]);
        }
        CHECK(!lmz_rc_dec_finished_cleanly(&d));
    }
    CHECK(saved >= 300 * 5); /* about six bytes a stream */
    (void)sym;
}

TEST(rc_truncated_stream_flags_overrun)
{
    uint8_t buf[256];
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, buf, sizeof buf);
    for (int i = 0; i < 100; i++) lmz_rc_encode(&e, (uint32_t)i % 50, 1, 64);
    size_t len = lmz_rc_enc_finish(&e);
    lmz_rc_dec d;
    lmz_rc_dec_init(&d, buf, len - 3);
    for (int i = 0; i < 100; i++) {
        uint32_t t = lmz_rc_decode_target(&d, 64);
        lmz_rc_decode_update(&d, t, 1, 64);
    }
    CHECK(d.overrun);
}

TEST(rc_encoder_overflow_is_reported)
{
    uint8_t buf[8];
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, buf, sizeof buf);
    for (int i = 0; i < 100; i++) lmz_rc_encode(&e, 1, 1, 1u << 20);
    CHECK_EQ_U64(lmz_rc_enc_finish(&e), 0);
    CHECK(e.overflow);
}

/* ---- CDF builder -------------------------------------------------------- */

static uint64_t fnv(const uint32_t *v, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= v[i];
        h *= 1099511628211ull;
    }
    return h;
}

TEST(cdf_sums_to_2_24_every_symbol_at_least_1)
{
    unsigned long long seed = 5;
    uint32_t sizes[] = {1, 2, 3, 256, 49152, 262144};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint32_t n = sizes[k];
        float *p = malloc(n * sizeof *p);
        uint32_t *f = malloc(n * sizeof *f), *c = malloc((n + 1) * sizeof *c);
        for (uint32_t i = 0; i < n; i++) {
            double u = (double)(test_rand(&seed) >> 11) / 9007199254740992.0;
            p[i] = (float)(u * u * u * u); /* very skewed */
        }
        if (n > 3) {
            p[0] = 0.0f;
            p[1] = -1.0f;
            p[2] = NAN;
            p[3] = INFINITY;
        }
        CHECK(lmz_cdf_build(p, n, f, c) == 0);
        uint64_t sum = 0;
        uint32_t min = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++) {
            sum += f[i];
            if (f[i] < min) min = f[i];
        }
        CHECK_EQ_U64(sum, LMZ_CDF_TOTAL);
        CHECK(min >= 1);
        CHECK_EQ_U64(c[n], LMZ_CDF_TOTAL);
        free(p);
        free(f);
        free(c);
    }
}

TEST(cdf_degenerate_inputs)
{
    float zero[5] = {0, 0, 0, 0, 0};
    uint32_t f[5], c[6];
    CHECK(lmz_cdf_build(zero, 5, f, c) == 0);
    CHECK_EQ_U64(c[5], LMZ_CDF_TOTAL);
    CHECK(f[1] == f[2]);
    float one[1] = {0.3f};
    CHECK(lmz_cdf_build(one, 1, f, c) == 0);
    CHECK_EQ_U64(f[0], LMZ_CDF_TOTAL);
    CHECK(lmz_cdf_build(one, 0, f, c) == -1);
    float certain[3] = {0, 1, 0};
    CHECK(lmz_cdf_build(certain, 3, f, c) == 0);
    CHECK_EQ_U64(f[0], 1);
    CHECK_EQ_U64(f[1], LMZ_CDF_TOTAL - 2);
}

TEST(cdf_same_bits_everywhere)
{
    /* a fixed input must give this exact table on every machine */
    const uint32_t n = 1000;
    float *p = malloc(n * sizeof *p);
    uint32_t *f = malloc(n * sizeof *f);
    for (uint32_t i = 0; i < n; i++) p[i] = (float)(i % 17 + 1) / (float)(i + 3);
    lmz_cdf_build(p, n, f, NULL);
    uint64_t h = fnv(f, n);
    printf("  table hash %016llx\n", (unsigned long long)h);
    CHECK_EQ_U64(h, 0xfc62e423174bf7bdull);
    free(p);
    free(f);
}

TEST(cdf_same_bits_everywhere_special_values)
{
    /* zeros, negatives, NaN, infinities and tiny values among 8,192 skewed
     * probabilities (a vocabulary's size, not a multiple of the vector
     * widths after the first three): the exact table on every path */
    const uint32_t sizes[] = {8192, 8189, 13};
    uint64_t h = 1469598103934665603ull;
    unsigned long long seed = 77;
    for (size_t k = 0; k < 3; k++) {
        uint32_t n = sizes[k];
        float *p = malloc(n * sizeof *p);
        uint32_t *f = malloc(n * sizeof *f), *c = malloc((n + 1) * sizeof *c);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t r = test_rand(&seed);
            p[i] = (float)((double)(r >> 11) / 9007199254740992.0);
            p[i] = p[i] * p[i] * p[i] * p[i] * p[i];
            switch (r % 61) {
            case 0: p[i] = 0.0f; break;
            case 1: p[i] = -p[i]; break;
            case 2: p[i] = NAN; break;
            case 3: p[i] = INFINITY; break;
            case 4: p[i] = -INFINITY; break;
            case 5: p[i] = 1e-40f; break;
            case 6: p[i] = 3e38f; break;
            default: break;
            }
        }
        CHECK(lmz_cdf_build(p, n, f, c) == 0);
        CHECK_EQ_U64(c[n], LMZ_CDF_TOTAL);
        h = (h ^ fnv(f, n)) * 1099511628211ull;
        h = (h ^ fnv(c, n + 1)) * 1099511628211ull;
        free(p);
        free(f);
        free(c);
    }
    printf("  tables' hash %016llx\n", (unsigned long long)h);
    CHECK_EQ_U64(h, 0x826a51e3729473b5ull);
}
