/*
 * model.c — opening a GGUF model whatever its architecture, and the calls of
 * model.h passed on to it (model_impl.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

int lmz_model_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const lmz_gguf_tensor *lmz_model_mat(const lmz_model *m, const char *name, uint64_t ne0, uint64_t ne1, char *err,
                                     size_t errlen)
{
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&m->g, name);
    if (!t) {
        lmz_model_errf(err, errlen, "tensor '%s' is missing", name);
        return NULL;
    }
    if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1) {
        lmz_model_errf(err, errlen, "tensor '%s' is %llu x %llu, expected %llu x %llu", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)ne0,
                       (unsigned long long)ne1);
        return NULL;
    }
    if (!lmz_kernels_type_ok(t->type)) {
        lmz_model_errf(err, errlen, "tensor '%s' has type %s (F32, F16, BF16, Q8_0 are computed)", name,
                       lmz_gguf_type_name(t->type));
        return NULL;
    }
    return t;
}

void lmz_model_row(const lmz_model *m, const lmz_gguf_tensor *t, uint64_t r, float *out)
{
    size_t n = (size_t)t->ne[0];
    lmz_row_to_f32(m->kp, (const uint8_t *)t->data + r * lmz_ggml_row_bytes(t->type, n), t->type, n, out);
}

float *lmz_model_vec(const lmz_model *m, const char *name, uint64_t n, char *err, size_t errlen)
{
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&m->g, name);
    if (!t || t->n_dims != 1 || t->ne[0] != n || !lmz_kernels_type_ok(t->type) || t->type == LMZ_GGML_Q8_0) {
        lmz_model_errf(err, errlen, "tensor '%s' is missing or not a float vector of the model's width", name);
        return NULL;
    }
    float *v = malloc(n * sizeof *v);
    if (v) lmz_model_row(m, t, 0, v);
    else lmz_model_errf(err, errlen, "%s", "out of memory");
    return v;
}

int lmz_model_u32(const lmz_gguf *g, const char *key, uint32_t *v, char *err, size_t errlen)
{
    uint64_t x;
    if (lmz_gguf_get_u64(g, key, &x) != 0 || x == 0 || x > (1u << 30))
        return lmz_model_errf(err, errlen, "metadata '%s' is missing or out of range", key);
    *v = (uint32_t)x;
    return 0;
}

/* the parsed file in base.g: the tokenizer, the vocabulary, then the architecture */
static int finish_open(lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    lmz_str arch;
    int rc = -1;
    if (lmz_gguf_get_str(&base->g, "general.architecture", &arch) != 0) {
        lmz_model_errf(err, errlen, "%s", "general.architecture is missing");
        goto fail;
    }
    int llama = lmz_str_eq(arch, "llama"), dsrn = lmz_str_eq(arch, "dsrn");
    if (!llama && !dsrn) {
        lmz_model_errf(err, errlen, "architecture '%.*s' is not supported (llama, dsrn)", (int)(arch.len > 40 ? 40 : arch.len),
                       arch.ptr);
        goto fail;
    }
    int trc = lmz_tokenizer_load(&base->g, &base->tok, base->tok_note, sizeof base->tok_note);
    const lmz_gguf_tensor *te = lmz_gguf_tensor_find(&base->g, "token_embd.weight");
    if (trc == LMZ_TOKENIZER_UNSUPPORTED && te && te->n_dims == 2 && te->ne[1] > 0 && te->ne[1] <= (1u << 24)) {
        base->n_vocab = (uint32_t)te->ne[1]; /* runs on token ids alone */
    } else if (trc != 0) {
        snprintf(err, errlen, "%s", base->tok_note);
        goto fail;
    } else {
        base->n_vocab = lmz_tokenizer_vocab_size(base->tok);
    }
    rc = llama ? lmz_llama_open(base, opts, out, err, errlen) : lmz_dsrn_open(base, opts, out, err, errlen);
    if (rc == 0) return 0;
fail:
    lmz_tokenizer_free(base->tok);
    lmz_gguf_close(&base->g);
    *out = NULL;
    return -1;
}

int lmz_model_open(const char *path, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    lmz_model base;
    memset(&base, 0, sizeof base);
    *out = NULL;
    if (lmz_kernels_select(&base.kp, err, errlen) != 0 || lmz_gguf_open(path, &base.g, err, errlen) != 0) return -1;
    return finish_open(&base, opts, out, err, errlen);
}

int lmz_model_open_buffer(const void *buf, size_t size, const lmz_model_opts *opts, lmz_model **out, char *err,
                          size_t errlen)
{
    lmz_model base;
    memset(&base, 0, sizeof base);
    *out = NULL;
    if (lmz_kernels_select(&base.kp, err, errlen) != 0 || lmz_gguf_parse(buf, size, &base.g, err, errlen) != 0)
        return -1;
    return finish_open(&base, opts, out, err, errlen);
}

void lmz_model_free(lmz_model *m)
{
    if (!m) return;
    lmz_tokenizer_free(m->tok);
    lmz_gguf g = m->g;
    m->ops->free(m);
    lmz_gguf_close(&g);
}

uint32_t lmz_model_vocab(const lmz_model *m) { return m->n_vocab; }
const char *lmz_model_arch(const lmz_model *m) { return m->ops->arch; }
const lmz_tokenizer *lmz_model_tokenizer(const lmz_model *m) { return m->tok; }
const char *lmz_model_tokenizer_note(const lmz_model *m) { return m->tok ? "" : m->tok_note; }
uint32_t lmz_model_window(const lmz_model *m) { return m->window; }
const lmz_gguf *lmz_model_gguf(const lmz_model *m) { return &m->g; }

lmz_state *lmz_state_new(const lmz_model *m) { return m->ops->state_new(m); }
void lmz_state_free(lmz_state *s)
{
    if (s) s->m->ops->state_free(s);
}
void lmz_state_reset(lmz_state *s)
{
    s->m->ops->state_reset(s);
    s->pos = 0;
}
uint64_t lmz_state_pos(const lmz_state *s) { return s->pos; }

int lmz_model_prefill(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits)
{
    if (s->m != m) return -1;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->n_vocab) return -1;
    return m->ops->prefill(m, s, tokens, n, logits);
}

int lmz_model_step(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits)
{
    for (size_t i = 0; i < k; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->n_vocab || states[i]->m != m) return -1;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < i; j++)
            if (states[i] == states[j]) return -1; /* one token per stream */
    return m->ops->step(m, states, tokens, k, logits);
}
