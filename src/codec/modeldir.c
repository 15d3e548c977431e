/* modeldir.c — the models folders (lmz_model_find). */
#define _DEFAULT_SOURCE /* readlink, PATH_MAX */
#include "lmzip.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LMZIP_MODELS_DIR
#define LMZIP_MODELS_DIR "/usr/local/share/lmzip/models"
#endif

const char *lmz_models_dir(void) { return LMZIP_MODELS_DIR; }

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* NAME.gguf in folder dir[0..dlen), into out */
static int try_dir(const char *dir, size_t dlen, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%.*s/%s.gguf", (int)dlen, dir, name);
    return n > 0 && (size_t)n < cap && is_file(out);
}

int lmz_model_find(const char *name, char *path, size_t cap)
{
    if (!name || !path || !cap || !name[0] || strchr(name, '/')) return LMZ_ERROR_PARAM;
    const char *env = getenv("LMZIP_MODELS");
    while (env && *env) {
        const char *c = strchr(env, ':');
        size_t len = c ? (size_t)(c - env) : strlen(env);
        if (len && try_dir(env, len, name, path, cap)) return LMZ_OK;
        env = c ? c + 1 : NULL;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char dir[PATH_MAX + 16];
            snprintf(dir, sizeof dir, "%s/models", exe);
            if (try_dir(dir, strlen(dir), name, path, cap)) return LMZ_OK;
            snprintf(dir, sizeof dir, "%s/../models", exe);
            if (try_dir(dir, strlen(dir), name, path, cap)) return LMZ_OK;
        }
    }
    if (try_dir(LMZIP_MODELS_DIR, strlen(LMZIP_MODELS_DIR), name, path, cap)) return LMZ_OK;
    path[0] = 0;
    return LMZ_ERROR_MODEL;
}
