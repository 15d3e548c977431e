/*
 * mkbad.c — makes the broken golden files whose damage sits under a check
 * that is then recomputed, so the decoder must catch the damage by meaning,
 * not by checksum. Used once by tests/golden/make_golden.sh; the files it
 * made are committed.
 *
 *   mkbad MODE IN.lmz OUT.lmz
 *   MODE: setting | profile | model | frame-too-big | comp-too-big |
 *         frame-xxh | end-count | end-hash | block-type | frame-size-zero |
 *         set:ID:VALUE (a setting's value, the header check recomputed) |
 *         name:NAME (the model name, any bytes but NUL) |
 *         bomb (the first frame and the frame size setting declare 1 GiB,
 *               the payload stays as it is)
 *   Version-2 files (format.h), the header check recomputed:
 *   MODE: v2-flag (a flag bit no decoder knows) | v2-profile (code 9 or 200) |
 *         v2-set:ID:VALUE (a setting added or changed) | v2-set-order (two
 *         settings out of id order) | v2-no-size (one frame without the
 *         size) | v2-long-size (the size's varint one byte longer than it
 *         need be) | v2-name-on-none (a model name in a byte-model stream) |
 *         v2-bomb (one frame declaring 1 GiB, and the frame size setting)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codec/format.h"
#include "common/varint.h"

static uint8_t buf[1 << 20];

static void recheck(uint8_t *p, size_t n) { lmz_put_u32(p + n, (uint32_t)XXH64(p, n, 0)); }

/* version 2: parse the header of buf, rebuild it with one change into out;
 * @return the new file's size, 0 on a mode it does not know */
static size_t bad_v2(const char *mode, const uint8_t *in, size_t n, uint8_t *out)
{
    unsigned flags = in[9], code = in[10];
    size_t o = 11, name = 0, namelen = 0;
    if (flags & LMZ_F2_NAME) {
        name = o + 1;
        namelen = in[o];
        o += 1 + namelen;
    }
    size_t hash = o;
    if (code) o += LMZ_V2_HASH_LEN;
    uint64_t ids[40], vals[40];
    size_t ns = 0;
    if (flags & LMZ_F2_SETTINGS) {
        uint64_t k;
        lmz_get_varint(in, n, &o, &k);
        for (ns = 0; ns < k; ns++) {
            lmz_get_varint(in, n, &o, &ids[ns]);
            lmz_get_varint(in, n, &o, &vals[ns]);
        }
    }
    uint64_t size = 0;
    if (flags & LMZ_F2_SIZE) lmz_get_varint(in, n, &o, &size);
    size_t rest = o + 4; /* after the header check */
    int long_size = 0;
    if (!strncmp(mode, "v2-set:", 7) || !strcmp(mode, "v2-bomb")) {
        unsigned id = LMZ_SET_FRAME_SIZE;
        unsigned long long v = 1ull << 30;
        if (mode[3] == 's' && sscanf(mode + 7, "%u:%llu", &id, &v) != 2) return 0;
        size_t i = 0;
        while (i < ns && ids[i] < id) i++;
        if (i == ns || ids[i] != id) {
            memmove(ids + i + 1, ids + i, (ns - i) * sizeof *ids);
            memmove(vals + i + 1, vals + i, (ns - i) * sizeof *vals);
            ns++;
        }
        ids[i] = id;
        vals[i] = v;
        if (!strcmp(mode, "v2-bomb")) size = 1u << 30;
    } else if (!strcmp(mode, "v2-set-order")) {
        ids[0] = LMZ_SET_TABLE_BITS, vals[0] = 20;
        ids[1] = LMZ_SET_FRAME_SIZE, vals[1] = 65536;
        ns = 2;
    } else if (!strcmp(mode, "v2-flag")) {
        flags |= 0x10;
    } else if (!strcmp(mode, "v2-profile")) {
        code = code ? 9 : 200; /* the layout stays: 1..127 are model profiles */
    } else if (!strcmp(mode, "v2-no-size")) {
        flags &= ~(unsigned)LMZ_F2_SIZE;
    } else if (!strcmp(mode, "v2-long-size")) {
        long_size = 1;
    } else if (!strcmp(mode, "v2-name-on-none")) {
        if (code) return 0;
        flags |= LMZ_F2_NAME;
        name = 0;
        namelen = 1;
    } else {
        return 0;
    }
    flags = ns ? flags | LMZ_F2_SETTINGS : flags & ~(unsigned)LMZ_F2_SETTINGS;
    size_t m = 0;
    memcpy(out, in, 9);
    m = 9;
    out[m++] = (uint8_t)flags;
    out[m++] = (uint8_t)code;
    if (flags & LMZ_F2_NAME) {
        out[m++] = (uint8_t)namelen;
        if (name) memcpy(out + m, in + name, namelen);
        else out[m] = 'x';
        m += namelen;
    }
    if (code >= 1 && code <= 127) { /* a model profile: its identity */
        memcpy(out + m, in + hash, LMZ_V2_HASH_LEN);
        m += LMZ_V2_HASH_LEN;
    }
    if (ns) {
        m += lmz_put_varint(out + m, ns);
        for (size_t i = 0; i < ns; i++) {
            m += lmz_put_varint(out + m, ids[i]);
            m += lmz_put_varint(out + m, vals[i]);
        }
    }
    if (flags & LMZ_F2_SIZE) {
        size_t k = lmz_put_varint(out + m, size);
        if (long_size) {
            out[m + k - 1] |= 0x80;
            out[m + k] = 0;
            k++;
        }
        m += k;
    }
    recheck(out, m);
    m += 4;
    memcpy(out + m, in + rest, n - rest);
    return m + n - rest;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mkbad MODE IN OUT\n");
        return 1;
    }
    const char *mode = argv[1];
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);

    static uint8_t out[sizeof buf + 64];
    size_t m = 0;
    if (!strncmp(mode, "v2-", 3)) {
        if (buf[8] != 2 || !(m = bad_v2(mode, buf, n, out))) {
            fprintf(stderr, "mkbad: %s needs a version-2 file and a mode it knows\n", mode);
            return 1;
        }
        f = fopen(argv[3], "wb");
        if (!f || fwrite(out, 1, m, f) != m) return 1;
        return fclose(f) != 0;
    }

    /* locate the header fields */
    size_t o = 10;
    size_t prof = o;
    o += 1 + buf[o];
    size_t model = o;
    o += 1 + buf[o];
    o += 32;
    size_t nset = o;
    o += 1 + 9 * (size_t)buf[o];
    o += 8;
    size_t hend = o; /* the header check is at hend */
    size_t frame = hend + 4;
    uint32_t comp = lmz_get_u32(buf + frame + 6);
    size_t end = frame + LMZ_FRAME_HEADER_SIZE + comp;
    if (!strncmp(mode, "set:", 4) || !strcmp(mode, "bomb")) {
        unsigned id = 1;
        unsigned long long v = 1ull << 30;
        if (mode[0] == 's' && sscanf(mode + 4, "%u:%llu", &id, &v) != 2) return 1;
        memcpy(out, buf, n);
        m = n;
        int hit = 0;
        for (size_t i = 0; i < buf[nset]; i++)
            if (out[nset + 1 + 9 * i] == id) lmz_put_u64(out + nset + 2 + 9 * i, v), hit = 1;
        if (!hit) return 1;
        recheck(out, hend);
        if (!strcmp(mode, "bomb")) {
            lmz_put_u32(out + frame + 2, 1u << 30);
            recheck(out + frame, 18);
        }
    } else
    if (!strcmp(mode, "setting") || !strcmp(mode, "profile") || !strcmp(mode, "model") ||
        !strcmp(mode, "frame-size-zero") || !strncmp(mode, "name:", 5)) {
        /* rebuild the header with one change */
        size_t at = !strcmp(mode, "setting") ? nset : !strcmp(mode, "profile") ? prof : model;
        memcpy(out, buf, at);
        m = at;
        if (!strcmp(mode, "setting")) {
            out[m++] = (uint8_t)(buf[nset] + 1);
            memcpy(out + m, buf + nset + 1, hend - nset - 9);
            m += hend - nset - 9;
            out[m++] = 99; /* an id no decoder of version 1 knows */
            lmz_put_u64(out + m, 7);
            m += 8;
            memcpy(out + m, buf + hend - 8, 8);
            m += 8;
        } else if (!strcmp(mode, "frame-size-zero")) {
            memcpy(out + m, buf + at, hend - at);
            /* first setting is the frame size: set it to 0 */
            lmz_put_u64(out + (nset + 2), 0);
            m += hend - at;
        } else {
            const char *name = !strcmp(mode, "profile") ? "det-f32-v9" : !strcmp(mode, "model") ? "smollm2-135m" : mode + 5;
            out[m++] = (uint8_t)strlen(name);
            memcpy(out + m, name, strlen(name));
            m += strlen(name);
            size_t skip = at + 1 + buf[at];
            memcpy(out + m, buf + skip, hend - skip);
            m += hend - skip;
        }
        recheck(out, m);
        m += 4;
        memcpy(out + m, buf + frame, n - frame);
        m += n - frame;
    } else {
        memcpy(out, buf, n);
        m = n;
        if (!strcmp(mode, "frame-too-big")) {
            lmz_put_u32(out + frame + 2, lmz_get_u32(out + frame + 2) + (1u << 30));
            recheck(out + frame, 18);
        } else if (!strcmp(mode, "comp-too-big")) {
            lmz_put_u32(out + frame + 6, lmz_get_u32(out + frame + 2) + 1);
            recheck(out + frame, 18);
        } else if (!strcmp(mode, "frame-xxh")) {
            out[frame + 10] ^= 0x40;
            recheck(out + frame, 18);
        } else if (!strcmp(mode, "block-type")) {
            out[frame] = 0x02;
        } else if (!strcmp(mode, "end-count") || !strcmp(mode, "end-hash")) {
            /* the last end block of the file */
            size_t e = n - LMZ_END_BLOCK_SIZE;
            (void)end;
            if (!strcmp(mode, "end-count")) lmz_put_u64(out + e + 9, lmz_get_u64(out + e + 9) + 1);
            else out[e + 17] ^= 1;
            recheck(out + e, 25);
        } else {
            fprintf(stderr, "mkbad: unknown mode %s\n", mode);
            return 1;
        }
    }
    f = fopen(argv[3], "wb");
    if (!f || fwrite(out, 1, m, f) != m) return 1;
    return fclose(f) != 0;
}
