/*
 * tasks.h — zero-shot multiple-choice evaluation, the way
 * lm-evaluation-harness scores a model (docs/EVAL.md).
 *
 * A task is a JSONL file of ../shared/data/eval (SOURCES.md there), one item
 * per line, of one of three kinds:
 *   MC  {"context", "choices", "gold", "norm_len"}: request i scores
 *       choices[i] after context; acc takes the best log-likelihood, acc_norm
 *       the best log-likelihood per norm_len[i] (the choice's length in
 *       characters);
 *   WG  {"contexts", "continuation", "gold"}: request i scores the shared
 *       continuation after contexts[i] (Winogrande's partial scoring); acc;
 *   LB  {"context", "target"}: one request; acc when every target token is
 *       the model's greedy choice, and the perplexity exp(-mean ll).
 *
 * A request's tokens: the start token (the tokenizer's BOS, else its EOS:
 * what our DSRN models were trained to begin documents after), then the
 * context and continuation tokenised together; the continuation's tokens
 * are those after the context's own tokenisation (lm-eval's _encode_pair,
 * trailing spaces of the context moved to the continuation). Its score is
 * the sum of the log-probabilities (softmax of the logits, in double) of
 * the continuation's tokens.
 *
 * The requests of an item share their longest common prefix: it is fed
 * once (prefill), the state copied to each request, and the requests of a
 * batch of items then advance in lockstep, one token each per model step.
 * The determinism contract makes this give the very bits of scoring each
 * request alone by one prefill of its whole sequence (lmz_task_score_alone).
 */
#ifndef LMZ_EVAL_TASKS_H
#define LMZ_EVAL_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef enum { LMZ_TASK_MC = 1, LMZ_TASK_WG, LMZ_TASK_LB } lmz_task_kind;

typedef struct {
    char *id;
    unsigned n;          /* requests: choices (MC), contexts (WG), 1 (LB) */
    char **ctx;          /* (n) the contexts (MC, LB: n times the same) */
    char **cont;         /* (n) the continuations (WG: n times the same) */
    uint32_t *norm_len;  /* (n) MC: characters of each choice; else NULL */
    int gold;            /* the right request; -1 for LB */
} lmz_task_item;

typedef struct {
    char name[64];       /* the file's name without .jsonl */
    lmz_task_kind kind;
    size_t n;
    lmz_task_item *items;
    /* storage */
    char **strings;
    size_t nstrings;
} lmz_task;

/* Read a task file: every line one item of the file's kind (the first
 * line's); at most `limit` items (0: all). @return 0, or -1 with a message
 * naming the file and line. */
int lmz_task_load(const char *path, size_t limit, lmz_task *t, char *err, size_t errlen);
void lmz_task_free(lmz_task *t);
const char *lmz_task_kind_name(lmz_task_kind k);

/* one request's outcome */
typedef struct {
    double ll;           /* sum of the continuation tokens' log-probabilities (nats) */
    uint32_t tokens;     /* continuation tokens */
    int greedy;          /* every one was the argmax of its logits (first index on ties) */
} lmz_req_score;

typedef struct {
    size_t items, requests;
    lmz_req_score *score;  /* (requests) the items' requests in order */
    size_t *first;         /* (items + 1) an item's first request */
    double acc, acc_se;    /* standard errors as lm-eval: sample sd / sqrt(n) */
    double acc_norm, acc_norm_se; /* MC only, else NAN */
    double ppl, ppl_se;    /* LB only (se by the delta method), else NAN */
    uint64_t tokens_fed;   /* model positions computed (shared prefixes once) */
} lmz_task_result;

typedef void (*lmz_task_progress)(void *ctx, size_t done, size_t total);

typedef struct {
    unsigned batch;        /* requests advanced together (0: 64) */
    lmz_task_progress progress;
    void *progress_ctx;
} lmz_task_opts;

/* Score every item of t with m. @return 0, or -1 with a message (no
 * tokenizer, out of memory). */
int lmz_task_run(lmz_model *m, const lmz_task *t, const lmz_task_opts *o, lmz_task_result *r, char *err,
                 size_t errlen);
void lmz_task_result_free(lmz_task_result *r);
/* r's metrics from its scores (lmz_task_run calls it) */
void lmz_task_metrics(const lmz_task *t, lmz_task_result *r);

/* A request's tokens: seq[0..*n) is the start token (when the tokenizer has
 * one), the context and the continuation; the continuation's tokens are
 * seq[*from..*n). *seq is malloc'd. @return 0, or -1 (out of memory, text
 * the tokenizer refuses). */
int lmz_task_encode(const lmz_tokenizer *tk, const char *ctx, const char *cont, int32_t **seq, size_t *n,
                    size_t *from);

/* log-probability (nats) of token t under logits z[0..V), and whether t is
 * the argmax (the first index among equals) */
double lmz_task_logprob(const float *z, uint32_t V, int32_t t, int *greedy);

/* The reference: one request alone, its whole sequence in one prefill from
 * a fresh state and each continuation token scored from its row (what
 * `dsrn logits` prints). @return 0 or -1. */
int lmz_task_score_alone(lmz_model *m, const char *ctx, const char *cont, lmz_req_score *out);

#endif
