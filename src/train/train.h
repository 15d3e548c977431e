/*
 * train.h — `dsrn train`: data, optimisation, schedule, checkpoints.
 *
 * Data: the corpus (corpus.h) is tokenised once and cached (a file named by
 * a hash of the cleaned text and of the tokenizer); documents are shuffled
 * with the seed and a validation split of about val_frac of the tokens is
 * held out. The training stream is the shuffled documents, each preceded by
 * the end-of-document token; it is cut into `batch` contiguous rows, read T
 * tokens at a time, state carried from chunk to chunk of a row.
 *
 * Optimiser: AdamW (decay on matrices), gradient clipping by global norm,
 * warm-up then cosine (to min_lr) or WSD (constant, then a linear decay over
 * the last wsd_decay of the run). The run's length is --steps, --tokens or
 * --time; with --time the schedule follows the time used.
 *
 * Checkpoints: OUT.gguf (the model, F32, with its tokenizer: the engine runs
 * it) and OUT.opt.gguf (AdamW moments, step, data position, options). They
 * are written every save_every steps, at the end, and on SIGINT/SIGTERM.
 */
#ifndef LMZ_TRAIN_H
#define LMZ_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "train/net.h"

typedef struct {
    /* data and files */
    const char *data[64];
    size_t n_data;
    const char *tokenizer;    /* TOK.gguf; NULL: train one (vocab) on the data */
    const char *out;          /* OUT.gguf */
    const char *resume;       /* a checkpoint to continue from */
    const char *init;         /* a trained model whose weights start a new run */
    const char *cache;        /* folder for tokenised corpora */
    uint32_t vocab;           /* for a tokenizer trained here */
    /* model (vocab and end-of-document token come from the tokenizer) */
    dsrn_config cfg;
    /* training */
    int batch, bptt;          /* streams x tokens per chunk */
    uint64_t steps, tokens;
    double minutes;
    double lr, min_lr, warmup, wd, beta1, beta2, adam_eps, grad_clip, wsd_decay;
    int wsd;                  /* 0: cosine */
    double val_frac;
    uint64_t val_tokens;      /* tokens evaluated per validation (0: all) */
    uint64_t eval_every, save_every, log_every;
    uint64_t seed;
    double init_std;          /* 0: N(0, 1/fan-in), W_read 0; > 0: every matrix N(0, init_std) */
    double copy_frac;         /* chunks that repeat a span of their own text (teaches copying) */
    uint32_t grow;            /* with init: blocks added after the model's own, each the identity at first */
    int threads;
    const char *matmul;       /* the products: "auto", "bf16" or "f32" (mm.h) */
    int quiet;
} dsrn_train_opts;

/* Defaults, then a preset: "tiny" (~1M parameters with an 8k vocabulary,
 * trains in seconds), "small" (~5M), "base" (~20M). @return 0 or -1. */
void dsrn_train_defaults(dsrn_train_opts *o);
int dsrn_train_preset(dsrn_train_opts *o, const char *name);

/* One setting by name ("dim", "layers", "lr", ...: the long flags without
 * "--"; dsrn_train_help lists them). @return 0, or -1 with a message. */
int dsrn_train_set(dsrn_train_opts *o, const char *key, const char *value, char *err, size_t errlen);
/* Settings from a file of "key = value" lines ('#' starts a comment). */
int dsrn_train_config_file(dsrn_train_opts *o, const char *path, char *err, size_t errlen);
const char *dsrn_train_help(void);

/* One AdamW update of the network's parameters from its gradients (step:
 * 1, 2, ... for the bias corrections), the gradient clipped to o->grad_clip
 * by global norm; *gnorm gets the norm before clipping. */
void dsrn_adamw(dsrn_net *net, const dsrn_train_opts *o, double lr, uint64_t step, double *gnorm);

/* Train. @return 0 (finished or stopped by a signal with a checkpoint), or
 * -1 with a message. */
int dsrn_train(dsrn_train_opts *o, char *err, size_t errlen);

#endif
