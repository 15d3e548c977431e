/*
 * tasks.c — zero-shot evaluation (tasks.h).
 */
#define _POSIX_C_SOURCE 200809L /* getline */
#include "tasks.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUESTS 64 /* per item */

/* ======================================================================== */
/* loading                                                                   */
/* ======================================================================== */

const char *lmz_task_kind_name(lmz_task_kind k)
{
    return k == LMZ_TASK_MC ? "multiple choice" : k == LMZ_TASK_WG ? "partial scoring" : "target word";
}

/* a copy of s kept in t's storage */
static char *keep(lmz_task *t, const char *s, size_t *cap)
{
    if (t->nstrings == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        char **p = realloc(t->strings, c * sizeof *p);
        if (!p) return NULL;
        t->strings = p;
        *cap = c;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) return NULL;
    memcpy(d, s, n);
    t->strings[t->nstrings++] = d;
    return d;
}

static lmz_task_kind kind_of(json_t *o)
{
    if (json_object_get(o, "contexts")) return LMZ_TASK_WG;
    if (json_object_get(o, "choices")) return LMZ_TASK_MC;
    if (json_object_get(o, "target")) return LMZ_TASK_LB;
    return 0;
}

static const char *str_field(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* one item from o; @return NULL, or what is wrong with it */
static const char *read_item(lmz_task *t, json_t *o, lmz_task_item *it, size_t *cap)
{
    const char *id = str_field(o, "id");
    json_t *gold = json_object_get(o, "gold");
    if (!(it->id = keep(t, id ? id : "", cap))) return "out of memory";
    it->gold = -1;
    if (t->kind == LMZ_TASK_LB) {
        const char *c = str_field(o, "context"), *g = str_field(o, "target");
        if (!c || !g) return "needs the strings context and target";
        it->n = 1;
    } else if (t->kind == LMZ_TASK_MC) {
        json_t *ch = json_object_get(o, "choices"), *nl = json_object_get(o, "norm_len");
        if (!str_field(o, "context") || !json_is_array(ch) || !json_is_array(nl) || !json_is_integer(gold))
            return "needs context, choices, norm_len and gold";
        it->n = (unsigned)json_array_size(ch);
        if (json_array_size(nl) != it->n) return "norm_len and choices differ in length";
    } else {
        json_t *cs = json_object_get(o, "contexts");
        if (!json_is_array(cs) || !str_field(o, "continuation") || !json_is_integer(gold))
            return "needs contexts, continuation and gold";
        it->n = (unsigned)json_array_size(cs);
    }
    if (it->n < 1 || it->n > MAX_REQUESTS) return "needs 1 to 64 choices";
    if (t->kind != LMZ_TASK_LB) {
        json_int_t g = json_integer_value(gold);
        if (g < 0 || g >= (json_int_t)it->n) return "gold is not one of the choices";
        it->gold = (int)g;
    }
    it->ctx = calloc(it->n, sizeof *it->ctx);
    it->cont = calloc(it->n, sizeof *it->cont);
    if (!it->ctx || !it->cont) return "out of memory";
    if (t->kind == LMZ_TASK_LB) {
        it->ctx[0] = keep(t, str_field(o, "context"), cap);
        it->cont[0] = keep(t, str_field(o, "target"), cap);
        return it->ctx[0] && it->cont[0] ? NULL : "out of memory";
    }
    if (t->kind == LMZ_TASK_MC) {
        json_t *ch = json_object_get(o, "choices"), *nl = json_object_get(o, "norm_len");
        char *c = keep(t, str_field(o, "context"), cap);
        if (!c || !(it->norm_len = calloc(it->n, sizeof *it->norm_len))) return "out of memory";
        for (unsigned i = 0; i < it->n; i++) {
            const char *s = json_string_value(json_array_get(ch, i));
            json_t *l = json_array_get(nl, i);
            if (!s || !json_is_integer(l) || json_integer_value(l) < 0 || json_integer_value(l) > (json_int_t)UINT32_MAX)
                return "a choice is not a string, or its norm_len not a count";
            it->ctx[i] = c;
            if (!(it->cont[i] = keep(t, s, cap))) return "out of memory";
            it->norm_len[i] = (uint32_t)json_integer_value(l);
        }
        return NULL;
    }
    json_t *cs = json_object_get(o, "contexts");
    char *c = keep(t, str_field(o, "continuation"), cap);
    if (!c) return "out of memory";
    for (unsigned i = 0; i < it->n; i++) {
        const char *s = json_string_value(json_array_get(cs, i));
        if (!s) return "a context is not a string";
        if (!(it->ctx[i] = keep(t, s, cap))) return "out of memory";
        it->cont[i] = c;
    }
    return NULL;
}

static void task_name(lmz_task *t, const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 6 && !strcmp(b + n - 6, ".jsonl")) n -= 6;
    if (n >= sizeof t->name) n = sizeof t->name - 1;
    memcpy(t->name, b, n);
    t->name[n] = 0;
}

int lmz_task_load(const char *path, size_t limit, lmz_task *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    task_name(t, path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0, icap = 0, scap = 0, lineno = 0;
    ssize_t len;
    const char *why = NULL;
    while ((limit == 0 || t->n < limit) && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (len == 0 || (len == 1 && line[0] == '\n')) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o || !json_is_object(o)) {
            json_decref(o);
            snprintf(err, errlen, "%s:%zu: not a JSON object%s%s", path, lineno, o ? "" : ": ", o ? "" : je.text);
            goto fail;
        }
        lmz_task_kind k = kind_of(o);
        if (!t->kind) t->kind = k;
        if (!k || k != t->kind) {
            json_decref(o);
            snprintf(err, errlen, "%s:%zu: %s", path, lineno,
                     k ? "an item of another kind than the file's first" : "not an item of a known kind");
            goto fail;
        }
        if (t->n == icap) {
            size_t c = icap ? icap * 2 : 1024;
            lmz_task_item *p = realloc(t->items, c * sizeof *p);
            if (!p) {
                json_decref(o);
                why = "out of memory";
                break;
            }
            t->items = p;
            icap = c;
        }
        lmz_task_item *it = &t->items[t->n++];
        memset(it, 0, sizeof *it);
        why = read_item(t, o, it, &scap);
        json_decref(o);
        if (why) break;
    }
    if (why) {
        snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
        goto fail;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "%s: no items", path);
        goto fail;
    }
    free(line);
    fclose(f);
    return 0;
fail:
    free(line);
    fclose(f);
    lmz_task_free(t);
    return -1;
}

void lmz_task_free(lmz_task *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].ctx);
        free(t->items[i].cont);
        free(t->items[i].norm_len);
    }
    for (size_t i = 0; i < t->nstrings; i++) free(t->strings[i]);
    free(t->strings);
    free(t->items);
    memset(t, 0, sizeof *t);
}

/* ======================================================================== */
/* requests                                                                  */
/* ======================================================================== */

static long encode(const lmz_tokenizer *tk, const char *s, size_t n, int32_t *ids, size_t cap)
{
    long k = lmz_tokenizer_encode(tk, (const uint8_t *)s, n, ids, cap);
    return k < 0 || (size_t)k > cap ? -1 : k;
}

int lmz_task_encode(const lmz_tokenizer *tk, const char *ctx, const char *cont, int32_t **seq, size_t *n,
                    size_t *from)
{
    *seq = NULL;
    size_t lc = strlen(ctx), lk = strlen(cont);
    /* lm-eval: the context's trailing spaces go to the continuation */
    size_t keep_c = lc;
    while (keep_c > 0 && ctx[keep_c - 1] == ' ') keep_c--;
    int32_t start = lmz_tokenizer_bos(tk) >= 0 ? lmz_tokenizer_bos(tk) : lmz_tokenizer_eos(tk);
    size_t off = start >= 0 ? 1 : 0, cap = lc + lk + 2;
    char *whole = malloc(lc + lk + 1);
    int32_t *ids = malloc((off + cap) * sizeof *ids);
    if (!whole || !ids) goto fail;
    memcpy(whole, ctx, lc);
    memcpy(whole + lc, cont, lk);
    long kc = encode(tk, ctx, keep_c, ids + off, cap);
    if (kc < 0) goto fail;
    long kw = encode(tk, whole, lc + lk, ids + off, cap);
    if (kw < 0) goto fail;
    if (start >= 0) ids[0] = start;
    free(whole);
    *seq = ids;
    *n = off + (size_t)kw;
    *from = off + ((size_t)kc < (size_t)kw ? (size_t)kc : (size_t)kw);
    return 0;
fail:
    free(whole);
    free(ids);
    return -1;
}

double lmz_task_logprob(const float *z, uint32_t V, int32_t t, int *greedy)
{
    uint32_t best = 0;
    for (uint32_t v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    double mx = z[best], sum = 0;
    for (uint32_t v = 0; v < V; v++) sum += exp((double)z[v] - mx);
    *greedy = best == (uint32_t)t;
    return (double)z[t] - mx - log(sum);
}

/* ======================================================================== */
/* running                                                                   */
/* ======================================================================== */

typedef struct {
    int32_t *seq;
    size_t n, from;     /* tokens; the continuation's are seq[from..n) */
    size_t next;        /* the next token to feed */
    lmz_state *st;
    lmz_req_score *out;
} request;

/* the run's buffers */
typedef struct {
    lmz_model *m;
    uint32_t V;
    size_t cap;          /* requests per batch */
    lmz_state **states;  /* (cap) */
    request *rq;         /* (cap) */
    lmz_state **act;     /* (cap) the active requests' states of a step */
    int32_t *tok;        /* (cap) */
    uint8_t *need;       /* (cap) */
    size_t *who;         /* (cap) */
    float *lg;           /* (cap, V) step logits */
    float *pl;           /* (pcap, V) prefill logits */
    size_t pcap;
    uint64_t fed;
} runner;

static void score_row(request *r, const float *z, uint32_t V, size_t target)
{
    if (target < r->from || target >= r->n) return;
    int g;
    r->out->ll += lmz_task_logprob(z, V, r->seq[target], &g);
    r->out->greedy &= g;
    r->out->tokens++;
}

int lmz_task_score_alone(lmz_model *m, const char *ctx, const char *cont, lmz_req_score *out)
{
    const lmz_tokenizer *tk = lmz_model_tokenizer(m);
    request r = {NULL, 0, 0, 0, NULL, out};
    memset(out, 0, sizeof *out);
    out->greedy = 1;
    if (!tk || lmz_task_encode(tk, ctx, cont, &r.seq, &r.n, &r.from) != 0) return -1;
    const uint32_t V = lmz_model_vocab(m);
    float *lg = malloc((r.n ? r.n : 1) * (size_t)V * sizeof *lg);
    lmz_state *s = lmz_state_new(m);
    int rc = -1;
    if (lg && s && (r.n < 2 || lmz_model_prefill(m, s, r.seq, r.n - 1, lg) == 0)) {
        for (size_t t = 1; t < r.n; t++) score_row(&r, lg + (t - 1) * V, V, t);
        rc = 0;
    }
    free(r.seq);
    free(lg);
    lmz_state_free(s);
    return rc;
}

/* Feed the prefix of item requests rq[0..k) that all share into the state
 * of the last, keep the rows it scores, and start every request after it
 * in a copy of that state. @return 0 or -1. */
static int prefill_item(runner *u, request *rq, size_t k)
{
    size_t p = rq[0].n - 1, first = rq[0].from;
    for (size_t j = 1; j < k; j++) {
        size_t c = 0, lim = rq[j].n - 1 < p ? rq[j].n - 1 : p;
        while (c < lim && rq[j].seq[c] == rq[0].seq[c]) c++;
        p = c;
        if (rq[j].from < first) first = rq[j].from;
    }
    /* rows 0..p-1 of the prefix: row i predicts token i + 1; those before
     * first - 1 are never scored */
    size_t a = first >= 1 ? first - 1 : 0;
    if (a > p) a = p;
    lmz_state *base = rq[k - 1].st;
    lmz_state_reset(base);
    if (a > 0 && lmz_model_prefill(u->m, base, rq[0].seq, a, NULL) != 0) return -1;
    if (p > a) {
        if (p - a > u->pcap) {
            float *q = realloc(u->pl, (p - a) * (size_t)u->V * sizeof *q);
            if (!q) return -1;
            u->pl = q;
            u->pcap = p - a;
        }
        if (lmz_model_prefill(u->m, base, rq[0].seq + a, p - a, u->pl) != 0) return -1;
        for (size_t j = 0; j < k; j++)
            for (size_t i = a; i < p; i++) score_row(&rq[j], u->pl + (i - a) * u->V, u->V, i + 1);
    }
    u->fed += p;
    for (size_t j = 0; j < k; j++) {
        if (j + 1 < k && lmz_state_copy(rq[j].st, base) != 0) return -1;
        rq[j].next = p;
    }
    return 0;
}

/* advance the batch's requests in lockstep until each has fed its last
 * token but one (the last token is only predicted) */
static int lockstep(runner *u, size_t nr)
{
    for (;;) {
        size_t k = 0;
        for (size_t j = 0; j < nr; j++) {
            request *r = &u->rq[j];
            if (r->next + 1 >= r->n) continue;
            u->act[k] = r->st;
            u->tok[k] = r->seq[r->next];
            u->need[k] = r->next + 1 >= r->from;
            u->who[k] = j;
            k++;
        }
        if (k == 0) return 0;
        if (lmz_model_step_some(u->m, u->act, u->tok, k, u->lg, u->need) != 0) return -1;
        u->fed += k;
        for (size_t i = 0, row = 0; i < k; i++) {
            request *r = &u->rq[u->who[i]];
            if (u->need[i]) score_row(r, u->lg + row++ * u->V, u->V, r->next + 1);
            r->next++;
        }
    }
}

static void runner_free(runner *u)
{
    if (u->states)
        for (size_t i = 0; i < u->cap; i++) lmz_state_free(u->states[i]);
    free(u->states);
    if (u->rq)
        for (size_t i = 0; i < u->cap; i++) free(u->rq[i].seq);
    free(u->rq);
    free(u->act);
    free(u->tok);
    free(u->need);
    free(u->who);
    free(u->lg);
    free(u->pl);
}

/* sample standard deviation over sqrt(n), as lm-eval's mean_stderr */
static double mean_se(double sum, double sumsq, size_t n)
{
    if (n < 2) return NAN;
    double mu = sum / (double)n, var = (sumsq - (double)n * mu * mu) / (double)(n - 1);
    return sqrt(var > 0 ? var : 0) / sqrt((double)n);
}

void lmz_task_metrics(const lmz_task *t, lmz_task_result *r)
{
    size_t n = r->items, hit = 0, hitn = 0;
    double sll = 0, sll2 = 0;
    for (size_t i = 0; i < n; i++) {
        const lmz_task_item *it = &t->items[i];
        const lmz_req_score *s = r->score + r->first[i];
        if (t->kind == LMZ_TASK_LB) {
            hit += s[0].greedy != 0;
            sll += s[0].ll;
            sll2 += s[0].ll * s[0].ll;
            continue;
        }
        unsigned best = 0, bestn = 0;
        for (unsigned j = 1; j < it->n; j++) { /* the first of equals, as numpy's argmax */
            if (s[j].ll > s[best].ll) best = j;
            if (it->norm_len && s[j].ll / it->norm_len[j] > s[bestn].ll / it->norm_len[bestn]) bestn = j;
        }
        hit += (int)best == it->gold;
        hitn += (int)bestn == it->gold;
    }
    double acc = (double)hit / (double)n, accn = (double)hitn / (double)n;
    r->acc = acc;
    r->acc_se = mean_se((double)hit, (double)hit, n);
    r->acc_norm = r->acc_norm_se = r->ppl = r->ppl_se = NAN;
    if (t->kind == LMZ_TASK_MC) {
        r->acc_norm = accn;
        r->acc_norm_se = mean_se((double)hitn, (double)hitn, n);
    }
    if (t->kind == LMZ_TASK_LB) {
        r->ppl = exp(-sll / (double)n);
        r->ppl_se = r->ppl * mean_se(sll, sll2, n);
    }
}

int lmz_task_run(lmz_model *m, const lmz_task *t, const lmz_task_opts *o, lmz_task_result *r, char *err,
                 size_t errlen)
{
    memset(r, 0, sizeof *r);
    const lmz_tokenizer *tk = lmz_model_tokenizer(m);
    if (!tk) {
        snprintf(err, errlen, "the model's tokenizer is not supported: %s", lmz_model_tokenizer_note(m));
        return -1;
    }
    runner u = {0};
    u.m = m;
    u.V = lmz_model_vocab(m);
    u.cap = o && o->batch ? o->batch : 64;
    if (u.cap < MAX_REQUESTS) u.cap = MAX_REQUESTS;
    r->items = t->n;
    r->first = malloc((t->n + 1) * sizeof *r->first);
    for (size_t i = 0; r->first && i < t->n; i++) {
        r->first[i] = r->requests;
        r->requests += t->items[i].n;
    }
    if (r->first) r->first[t->n] = r->requests;
    r->score = calloc(r->requests ? r->requests : 1, sizeof *r->score);
    u.states = calloc(u.cap, sizeof *u.states);
    u.rq = calloc(u.cap, sizeof *u.rq);
    u.act = malloc(u.cap * sizeof *u.act);
    u.tok = malloc(u.cap * sizeof *u.tok);
    u.need = malloc(u.cap);
    u.who = malloc(u.cap * sizeof *u.who);
    u.lg = malloc(u.cap * (size_t)u.V * sizeof *u.lg);
    int ok = r->first && r->score && u.states && u.rq && u.act && u.tok && u.need && u.who && u.lg;
    for (size_t i = 0; ok && i < u.cap; i++) ok = (u.states[i] = lmz_state_new(m)) != NULL;
    if (!ok) {
        snprintf(err, errlen, "%s", "out of memory");
        goto fail;
    }
    for (size_t i0 = 0; i0 < t->n;) {
        /* a batch: whole items while their requests fit */
        size_t nr = 0, i1 = i0;
        while (i1 < t->n && nr + t->items[i1].n <= u.cap) {
            const lmz_task_item *it = &t->items[i1];
            request *rq = &u.rq[nr];
            for (unsigned j = 0; j < it->n; j++) {
                request *x = &rq[j];
                free(x->seq);
                x->seq = NULL;
                if (lmz_task_encode(tk, it->ctx[j], it->cont[j], &x->seq, &x->n, &x->from) != 0) {
                    snprintf(err, errlen, "item %s: the text cannot be tokenised", it->id);
                    goto fail;
                }
                x->st = u.states[nr + j];
                x->out = &r->score[r->first[i1] + j];
                x->out->greedy = 1;
                if (x->n == 0) { /* nothing at all: an empty context and continuation */
                    x->n = 1;
                    x->seq[0] = 0;
                }
            }
            if (prefill_item(&u, rq, it->n) != 0) {
                snprintf(err, errlen, "item %s: the model failed (a token out of range, or memory)", it->id);
                goto fail;
            }
            nr += it->n;
            i1++;
        }
        if (lockstep(&u, nr) != 0) {
            snprintf(err, errlen, "%s", "the model failed on a batch");
            goto fail;
        }
        i0 = i1;
        if (o && o->progress) o->progress(o->progress_ctx, i0, t->n);
    }
    r->tokens_fed = u.fed;
    lmz_task_metrics(t, r);
    runner_free(&u);
    return 0;
fail:
    runner_free(&u);
    lmz_task_result_free(r);
    return -1;
}

void lmz_task_result_free(lmz_task_result *r)
{
    free(r->score);
    free(r->first);
    memset(r, 0, sizeof *r);
}
