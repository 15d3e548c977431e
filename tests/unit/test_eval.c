/* The zero-shot harness (src/eval/tasks.c): branching a shared prefix and
 * stepping requests in lockstep gives the very scores of each request alone
 * in one prefill (what `dsrn logits` computes); lm-eval's tokenisation of a
 * pair; the metrics and their standard errors; the state copy it rests on,
 * for DSRN and llama; broken task files. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/tasks.h"
#include "model/model.h"
#include "test.h"

static lmz_model *open_model(const char *path, unsigned threads, uint32_t window)
{
    lmz_model_opts o = {threads, window, 0};
    lmz_model *m;
    char err[256];
    if (!path || lmz_model_open(path, &o, &m, err, sizeof err) != 0) return NULL;
    return m;
}

static const char *const tiny_files[] = {"sciq.tiny.jsonl", "piqa.tiny.jsonl", "hellaswag.tiny.jsonl",
                                         "winogrande.tiny.jsonl", "arc_easy.tiny.jsonl",
                                         "lambada_openai.tiny.jsonl"};

TEST(eval_harness_matches_each_request_alone)
{
    if (!test_eval_path(tiny_files[0])) return;
    lmz_model *m1 = open_model("tests/models/tiny-dsrn.gguf", 1, 0), *m2 = open_model("tests/models/tiny-dsrn.gguf", 2, 0);
    CHECK(m1 && m2);
    if (!m1 || !m2) goto out;
    for (size_t f = 0; f < sizeof tiny_files / sizeof *tiny_files; f++) {
        /* sanitizers, qemu: one task of each kind (multiple choice, partial, LAMBADA) */
        if (test_quick() && f != 1 && f != 3 && f != 5) continue;
        lmz_task t;
        char err[256];
        if (lmz_task_load(test_eval_path(tiny_files[f]), 0, &t, err, sizeof err) != 0) {
            printf("  %s\n", err);
            CHECK(0);
            continue;
        }
        CHECK_EQ_U64(t.n, 20);
        /* batches of 64 requests and of 4 (several batches, items of more
         * requests than some batches hold), one thread and two */
        lmz_task_result r[3];
        lmz_task_opts o64 = {64, NULL, NULL}, o4 = {4, NULL, NULL};
        CHECK(lmz_task_run(m1, &t, &o64, &r[0], err, sizeof err) == 0);
        CHECK(lmz_task_run(m1, &t, &o4, &r[1], err, sizeof err) == 0);
        CHECK(lmz_task_run(m2, &t, &o64, &r[2], err, sizeof err) == 0);
        size_t bad = 0, fed_alone = 0;
        for (size_t i = 0; i < t.n; i++) {
            for (unsigned j = 0; j < t.items[i].n; j++) {
                lmz_req_score a;
                CHECK(lmz_task_score_alone(m1, t.items[i].ctx[j], t.items[i].cont[j], &a) == 0);
                for (int k = 0; k < 3; k++) {
                    const lmz_req_score *s = &r[k].score[r[k].first[i] + j];
                    if (memcmp(&s->ll, &a.ll, sizeof a.ll) || s->tokens != a.tokens || !s->greedy != !a.greedy) bad++;
                }
                CHECK(a.tokens > 0 && a.ll < 0);
                int32_t *seq;
                size_t n, from;
                CHECK(lmz_task_encode(lmz_model_tokenizer(m1), t.items[i].ctx[j], t.items[i].cont[j], &seq, &n, &from) == 0);
                fed_alone += n - 1;
                free(seq);
            }
        }
        if (bad) printf("  %s: %zu scores differ from the request alone\n", t.name, bad);
        CHECK_EQ_U64(bad, 0);
        /* the shared prefixes are fed once */
        if (getenv("LMZ_EVAL_SHOW")) printf("  %s: fed %llu, alone %zu\n", t.name, (unsigned long long)r[0].tokens_fed, fed_alone);
        if (t.kind != LMZ_TASK_LB) CHECK(r[0].tokens_fed < fed_alone);
        CHECK(r[0].acc == r[1].acc && r[0].acc == r[2].acc);
        CHECK(r[0].acc >= 0 && r[0].acc <= 1);
        CHECK((t.kind == LMZ_TASK_MC) == !isnan(r[0].acc_norm));
        CHECK((t.kind == LMZ_TASK_LB) == !isnan(r[0].ppl));
        for (int k = 0; k < 3; k++) lmz_task_result_free(&r[k]);
        lmz_task_free(&t);
    }
out:
    lmz_model_free(m1);
    lmz_model_free(m2);
}

TEST(eval_encode_pair_as_lm_eval)
{
    lmz_model *m = open_model("tests/models/tiny-dsrn.gguf", 1, 0);
    CHECK(m != NULL);
    if (!m) return;
    const lmz_tokenizer *tk = lmz_model_tokenizer(m);
    int32_t start = lmz_tokenizer_bos(tk), ids[256];
    int32_t *seq;
    size_t n, from;
    /* the pair tokenised together, the continuation after the context's own tokens */
    const char *ctx = "Question: what do cats chase?\nAnswer:", *cont = " the mice";
    char whole[256];
    snprintf(whole, sizeof whole, "%s%s", ctx, cont);
    long kc = lmz_tokenizer_encode(tk, (const uint8_t *)ctx, strlen(ctx), ids, 256);
    long kw = lmz_tokenizer_encode(tk, (const uint8_t *)whole, strlen(whole), ids, 256);
    CHECK(lmz_task_encode(tk, ctx, cont, &seq, &n, &from) == 0);
    CHECK(start >= 0 && seq[0] == start);
    CHECK_EQ_U64(n, 1 + (size_t)kw);
    CHECK_EQ_U64(from, 1 + (size_t)kc);
    CHECK(memcmp(seq + 1, ids, (size_t)kw * sizeof *ids) == 0);
    free(seq);
    /* a context's trailing spaces belong to the continuation */
    kc = lmz_tokenizer_encode(tk, (const uint8_t *)"the cat", 7, ids, 256);
    kw = lmz_tokenizer_encode(tk, (const uint8_t *)"the cat  sat", 12, ids, 256);
    CHECK(lmz_task_encode(tk, "the cat  ", "sat", &seq, &n, &from) == 0);
    CHECK_EQ_U64(n, 1 + (size_t)kw);
    CHECK_EQ_U64(from, 1 + (size_t)kc);
    free(seq);
    /* scoring the same pair twice in one task: identical scores */
    lmz_req_score a, b;
    CHECK(lmz_task_score_alone(m, ctx, cont, &a) == 0 && lmz_task_score_alone(m, ctx, cont, &b) == 0);
    CHECK(a.ll == b.ll && a.tokens == b.tokens && a.tokens == (uint32_t)(n > 0 ? a.tokens : 0));
    lmz_model_free(m);
}

TEST(eval_logprob_softmax_and_ties)
{
    float z[4] = {1.0f, 3.0f, 3.0f, -2.0f};
    int g;
    double lse = 3.0 + log(exp(-2.0) + 1.0 + 1.0 + exp(-5.0));
    CHECK(fabs(lmz_task_logprob(z, 4, 1, &g) - (3.0 - lse)) < 1e-12 && g == 1);
    CHECK(fabs(lmz_task_logprob(z, 4, 2, &g) - (3.0 - lse)) < 1e-12 && g == 0); /* the first of equals wins */
    CHECK(fabs(lmz_task_logprob(z, 4, 3, &g) - (-2.0 - lse)) < 1e-12 && g == 0);
}

/* a task of hand-made scores: the metrics and lm-eval's standard errors */
TEST(eval_metrics_and_stderr)
{
    lmz_task_item items[4];
    uint32_t nl[4][2] = {{1, 1}, {10, 1}, {1, 1}, {1, 10}};
    memset(items, 0, sizeof items);
    for (int i = 0; i < 4; i++) {
        items[i].n = 2;
        items[i].gold = i < 2 ? 0 : 1;
        items[i].norm_len = nl[i];
    }
    lmz_task t = {"hand", LMZ_TASK_MC, 4, items, NULL, 0};
    lmz_req_score sc[8] = {
        {-1.0, 1, 0}, {-2.0, 1, 0},   /* item 0: 0 wins both ways (gold 0) */
        {-5.0, 1, 0}, {-1.0, 1, 0},   /* item 1: 1 raw; 0 normalised (-0.5 > -1) (gold 0) */
        {-3.0, 1, 0}, {-3.0, 1, 0},   /* item 2: a tie goes to the first (gold 1): wrong both ways */
        {-1.0, 1, 0}, {-4.0, 1, 0}};  /* item 3: 0 raw; 1 normalised (-0.4 > -1) (gold 1) */
    size_t first[5] = {0, 2, 4, 6, 8};
    lmz_task_result r = {4, 8, sc, first, 0, 0, 0, 0, 0, 0, 0};
    lmz_task_metrics(&t, &r);
    CHECK(r.acc == 0.25);
    CHECK(r.acc_norm == 0.75);
    /* sample sd / sqrt(n): acc 1/4: sqrt((1 - 1/4)^2 + 3 (1/4)^2) / 3) / 2 */
    CHECK(fabs(r.acc_se - sqrt(0.75 / 3.0) / 2.0) < 1e-12);
    CHECK(fabs(r.acc_norm_se - sqrt(0.75 / 3.0) / 2.0) < 1e-12);
    CHECK(isnan(r.ppl));
    /* LAMBADA: greedy accuracy, perplexity exp(-mean ll) */
    lmz_task_item lb[2];
    memset(lb, 0, sizeof lb);
    lb[0].n = lb[1].n = 1;
    lb[0].gold = lb[1].gold = -1;
    lmz_task tl = {"lb", LMZ_TASK_LB, 2, lb, NULL, 0};
    lmz_req_score sl[2] = {{-1.0, 2, 1}, {-3.0, 1, 0}};
    size_t fl[3] = {0, 1, 2};
    lmz_task_result rl = {2, 2, sl, fl, 0, 0, 0, 0, 0, 0, 0};
    lmz_task_metrics(&tl, &rl);
    CHECK(rl.acc == 0.5 && isnan(rl.acc_norm));
    CHECK(fabs(rl.ppl - exp(2.0)) < 1e-12);
    CHECK(fabs(rl.ppl_se - exp(2.0) * sqrt(2.0) / sqrt(2.0)) < 1e-9);
}

/* a prefix's state copied: the copy goes on exactly as the original */
static void check_copy(lmz_model *m, size_t n, size_t cut)
{
    uint32_t V = lmz_model_vocab(m);
    int32_t *ids = malloc(n * sizeof *ids);
    float *a = malloc(n * V * sizeof *a), *b = malloc(n * V * sizeof *b);
    lmz_state *s1 = lmz_state_new(m), *s2 = lmz_state_new(m), *s3 = lmz_state_new(m);
    unsigned long long seed = 11;
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rand(&seed) % V);
    CHECK(lmz_model_prefill(m, s1, ids, n, a) == 0);
    CHECK(lmz_model_prefill(m, s2, ids, cut, b) == 0);
    lmz_model_prefill(m, s3, ids + 3, 5, NULL); /* a history to overwrite */
    CHECK(lmz_state_copy(s3, s2) == 0);
    CHECK_EQ_U64(lmz_state_pos(s3), cut);
    lmz_model_prefill(m, s2, ids + 1, 7, NULL); /* the original moves on: the copy is its own */
    for (size_t i = cut; i < n; i++) CHECK(lmz_model_step(m, &s3, ids + i, 1, b + i * V) == 0);
    CHECK(memcmp(a, b, n * V * sizeof *a) == 0);
    free(ids);
    free(a);
    free(b);
    lmz_state_free(s1);
    lmz_state_free(s2);
    lmz_state_free(s3);
}

TEST(eval_state_copy_dsrn_and_llama)
{
    lmz_model *m = open_model("tests/models/tiny-dsrn.gguf", 1, 0); /* window 16: the ring wraps */
    CHECK(m != NULL);
    if (m) {
        check_copy(m, 60, 37);
        check_copy(m, 20, 5);
    }
    lmz_model_free(m);
    const char *lp = test_ref_path("tiny-llama-f32.gguf");
    if (!lp) return;
    m = open_model(lp, 1, 0);
    CHECK(m != NULL);
    if (m) check_copy(m, 40, 21);
    lmz_model_free(m);
    m = open_model(lp, 2, 8); /* a short window: the whole ring in use */
    CHECK(m != NULL);
    if (m) check_copy(m, 40, 29);
    lmz_model_free(m);
    lmz_model *m2 = open_model("tests/models/tiny-dsrn.gguf", 1, 0), *m3 = open_model("tests/models/tiny-dsrn.gguf", 1, 0);
    if (m2 && m3) { /* states of two models do not mix */
        lmz_state *x = lmz_state_new(m2), *y = lmz_state_new(m3);
        CHECK(lmz_state_copy(x, y) == -1);
        lmz_state_free(x);
        lmz_state_free(y);
    }
    lmz_model_free(m2);
    lmz_model_free(m3);
}

static int load_text(const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/lmz-task-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -2;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    lmz_task t;
    int rc = lmz_task_load(path, 0, &t, err, errlen);
    if (rc == 0) lmz_task_free(&t);
    remove(path);
    return rc;
}

TEST(eval_task_files_broken)
{
    char err[256];
    CHECK(load_text("{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 1, \"norm_len\": [1, 1]}\n", err,
                    sizeof err) == 0);
    CHECK(load_text("{\"context\": \"a\", \"target\": \" b\"}\n\n{\"context\": \"c\", \"target\": \" d\"}", err,
                    sizeof err) == 0);
    const char *bad[] = {
        "",                                                                         /* no items */
        "not json\n",                                                               /* not JSON */
        "[1, 2]\n",                                                                 /* not an object */
        "{\"question\": \"?\"}\n",                                                  /* no known kind */
        "{\"context\": \"a\", \"choices\": [\" b\"], \"gold\": 3, \"norm_len\": [1]}\n", /* gold out of range */
        "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 0, \"norm_len\": [1]}\n", /* lengths differ */
        "{\"context\": \"a\", \"choices\": [\" b\", 7], \"gold\": 0, \"norm_len\": [1, 1]}\n",   /* not a string */
        "{\"contexts\": [\"a\", \"b\"], \"continuation\": \" c\", \"gold\": -1}\n",  /* gold out of range */
        "{\"context\": \"a\", \"target\": \" b\"}\n{\"contexts\": [\"a\"], \"continuation\": \" c\", \"gold\": 0}\n",
        "{\"context\": \"a\", \"choices\": [], \"gold\": 0, \"norm_len\": []}\n",  /* no choices */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = load_text(bad[i], err, sizeof err);
        if (rc != -1) printf("  case %zu: %d\n", i, rc);
        CHECK(rc == -1 && strstr(err, "/tmp/lmz-task-") != NULL);
    }
    lmz_task t;
    CHECK(lmz_task_load("/nonexistent/task.jsonl", 0, &t, err, sizeof err) == -1 && strstr(err, "nonexistent"));
}
