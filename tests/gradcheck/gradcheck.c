/*
 * gradcheck.c — every backward of the DSRN trainer against central finite
 * differences, in float64 (src/train/net.c built with -DDSRN_F64), on tiny
 * models: RMSNorm and LayerNorm, tied and untied heads, gate biases, end-of-document
 * tokens inside the chunk, a chunk that starts from a carried state (the
 * fast and slow states and a full attention cache) and one that starts a stream. For each
 * parameter tensor, on up to 24 of its entries:
 *   relative error = |analytic - numeric| / max(|analytic|, |numeric|)  (vectors)
 * must be below 1e-4. Ends with "gradcheck: N passed, N failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/net.h"

static int pass, fail;

typedef struct {
    real *h, *c, *kc, *vc;
    uint32_t valid[8];
    uint64_t pos[8];
} snapshot;

static void save(const dsrn_net *n, const dsrn_carry *c, snapshot *s, int restore)
{
    const dsrn_config *cf = dsrn_net_config(n);
    size_t L = cf->L, D = cf->D, B = (size_t)c->Bt, S = cf->W + 7; /* T = 7 below */
    size_t nh = L * B * D, nc = L * B * cf->H * D, nk = L * B * S * D;
    if (!restore) {
        s->h = malloc(nh * sizeof(real));
        s->c = malloc(nc * sizeof(real));
        s->kc = malloc(nk * sizeof(real));
        s->vc = malloc(nk * sizeof(real));
    }
#define MOVE(dst, src, k) memcpy(restore ? c->dst : s->dst, restore ? s->src : c->src, (k) * sizeof(real))
    MOVE(h, h, nh);
    MOVE(c, c, nc);
    MOVE(kc, kc, nk);
    MOVE(vc, vc, nk);
#undef MOVE
    if (restore) {
        memcpy(c->valid, s->valid, B * sizeof *c->valid);
        memcpy(c->pos, s->pos, B * sizeof *c->pos);
    } else {
        memcpy(s->valid, c->valid, B * sizeof *c->valid);
        memcpy(s->pos, c->pos, B * sizeof *c->pos);
    }
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void check_model(const char *label, int layer_norm, int tied, float clip, int carried, int biases)
{
    dsrn_config cf = {23, 8, 2, 12, 2, 2, 5, layer_norm, tied, 1e-5f, clip, 10000.0f, 3, biases, -1.5f};
    const int Bt = 2, T = 7;
    dsrn_net *n = dsrn_net_new(&cf, Bt, T);
    dsrn_carry *c = dsrn_carry_new(n, Bt);
    if (!n || !c) {
        printf("FAIL %s: out of memory\n", label);
        fail++;
        return;
    }
    dsrn_net_init(n, 7, 0);
    real *p = dsrn_net_params(n), *g = dsrn_net_grads(n);
    size_t np = dsrn_net_n_params(n);
    uint64_t s = 11;
    for (size_t i = 0; i < np; i++) p[i] += 0.3 * ((double)(rng(&s) >> 11) / 9007199254740992.0 - 0.5);
    int32_t tok[2 * 7], tgt[2 * 7];
    /* a first chunk fills the carried state */
    for (int i = 0; i < Bt * T; i++) tok[i] = (int32_t)(rng(&s) % cf.vocab), tgt[i] = (int32_t)(rng(&s) % cf.vocab);
    if (carried) {
        dsrn_forward(n, c, tok, tgt, NULL);
        dsrn_carry_advance(n, c);
    }
    /* the chunk checked: end-of-document tokens inside */
    for (int i = 0; i < Bt * T; i++) tok[i] = (int32_t)(rng(&s) % cf.vocab), tgt[i] = (int32_t)(rng(&s) % cf.vocab);
    tok[3] = cf.eod;
    tok[T + 1] = cf.eod;
    snapshot snap;
    save(n, c, &snap, 0);
    memset(g, 0, np * sizeof *g);
    dsrn_forward(n, c, tok, tgt, NULL);
    dsrn_backward(n, c, tok, tgt, 1.0);
    real *ga = malloc(np * sizeof *ga);
    memcpy(ga, g, np * sizeof *ga);
    size_t nt;
    const dsrn_tensor *t = dsrn_net_tensors(n, &nt);
    const double h = 1e-6;
    double worst = 0;
    const char *worst_name = "";
    int bad = 0;
    for (size_t k = 0; k < nt; k++) {
        size_t cnt = (size_t)t[k].rows * t[k].cols;
        double num2 = 0, an2 = 0, diff2 = 0;
        for (int q = 0; q < 24 && q < (int)cnt; q++) {
            size_t i = t[k].off + (cnt <= 24 ? (size_t)q : rng(&s) % cnt);
            real keep = p[i];
            p[i] = keep + h;
            save(n, c, &snap, 1);
            double fp = dsrn_forward(n, c, tok, tgt, NULL);
            p[i] = keep - h;
            save(n, c, &snap, 1);
            double fm = dsrn_forward(n, c, tok, tgt, NULL);
            p[i] = keep;
            double num = (fp - fm) / (2 * h), an = ga[i];
            num2 += num * num;
            an2 += an * an;
            diff2 += (num - an) * (num - an);
        }
        double rel = sqrt(diff2) / fmax(fmax(sqrt(num2), sqrt(an2)), 1e-12);
        if (rel > worst) worst = rel, worst_name = t[k].name;
        if (rel >= 1e-4) {
            printf("  %s: %s relative error %.3g (|analytic| %.3g, |numeric| %.3g)\n", label, t[k].name, rel,
                   sqrt(an2), sqrt(num2));
            bad = 1;
        }
    }
    printf("%s %-34s worst relative error %.2e (%s)\n", bad ? "FAIL" : "ok  ", label, worst, worst_name);
    if (bad) fail++;
    else pass++;
    free(ga);
    free(snap.h);
    free(snap.c);
    free(snap.kc);
    free(snap.vc);
    dsrn_carry_free(c);
    dsrn_net_free(n);
}

int main(void)
{
    check_model("rmsnorm, tied head", 0, 1, 10.0f, 1, 0);
    check_model("layernorm, untied head", 1, 0, 10.0f, 1, 0);
    check_model("rmsnorm, untied, surprise clipped", 0, 0, 0.05f, 1, 0);
    check_model("layernorm, first chunk (empty cache)", 1, 1, 10.0f, 0, 0);
    check_model("rmsnorm, gate biases", 0, 1, 10.0f, 1, 1);
    printf("gradcheck: %d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
