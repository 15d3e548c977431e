/* explain.c — lmzip --explain (see explain.h). */
#include "explain.h"

#include <stdlib.h>
#include <string.h>

void explain_collect(void *opaque, const lmz_piece *piece)
{
    explain_pieces *ps = opaque;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 4096;
        lmz_piece *p = realloc(ps->p, cap * sizeof *p);
        if (!p) {
            ps->oom = 1;
            return;
        }
        ps->p = p;
        ps->cap = cap;
    }
    ps->p[ps->n++] = *piece;
}

static const char *const KIND[] = {"token", "binary", "stored", "overhead"};
static const char *const CARRIER[] = {"model", "ngram", "match", "local", "bytes", "-"};
static const char *const CARRIER_LONG[] = {"language model", "n-gram", "match model", "own match model",
                                           "byte model", "-"};

static const char *kind_name(unsigned k) { return k < 4 ? KIND[k] : "?"; }
static unsigned carrier_of(const lmz_piece *p) { return p->carrier < 5 ? p->carrier : 5; }

/* the length of a valid UTF-8 sequence at s[0..n), 0 if there is none */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) return 1;
    size_t k = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (k == 0 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0; /* overlong, surrogate */
    if (k == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return k;
}

/* s[0..n) for a TSV field: valid UTF-8 as it is, \t \n \r \\ and other
 * control or invalid bytes escaped */
static void tsv_text(FILE *f, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        uint8_t c = s[i];
        if (c == '\\') fputs("\\\\", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (k == 0 || c < 0x20 || c == 0x7F) fprintf(f, "\\x%02x", c);
        else {
            fwrite(s + i, 1, k, f);
            i += k;
            continue;
        }
        i++;
    }
}

int explain_tsv(FILE *f, const uint8_t *src, size_t n, const explain_pieces *ps)
{
    fputs("offset\tlength\tkind\tbits\tframe\ttoken\tcarrier\ttext\tq_model\tq_ngram\tq_match\tq_local\t"
          "table_bits\ttop1\tp1\ttop2\tp2\ttop3\tp3\n", f);
    for (size_t i = 0; i < ps->n; i++) {
        const lmz_piece *p = &ps->p[i];
        fprintf(f, "%llu\t%u\t%s\t%.6f\t%llu\t%d\t%s\t", (unsigned long long)p->offset, p->length, kind_name(p->kind),
                p->bits, (unsigned long long)p->frame, (int)p->token, CARRIER[carrier_of(p)]);
        if (p->kind == LMZ_PIECE_TOKEN && p->offset + p->length <= n) tsv_text(f, src + p->offset, p->length);
        if (p->kind != LMZ_PIECE_TOKEN) {
            fputs("\t\t\t\t\t\t\t\t\t\t\t\n", f);
            continue;
        }
        for (int k = 0; k < 4; k++) fprintf(f, p->q[k] < 0 ? "\t-" : "\t%.6g", (double)p->q[k]);
        fprintf(f, "\t%.4f", (double)p->table_bits);
        for (int k = 0; k < 3; k++) {
            fputc('\t', f);
            tsv_text(f, p->top[k], p->top_len[k]);
            fprintf(f, "\t%.6g", (double)p->top_p[k]);
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

/* ---- the page ---------------------------------------------------------------- */

/* s[0..n) as HTML text (attr: inside a double-quoted attribute): valid
 * UTF-8 as it is, markup characters as entities, control and invalid bytes
 * as \xHH; a carriage return is dropped before a line feed (lf_after: the
 * byte after s[n - 1] is one) */
static void html_text(FILE *f, const uint8_t *s, size_t n, int attr, int lf_after)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        uint8_t c = s[i];
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"' && attr) fputs("&quot;", f);
        else if (c == '\n') fputs(attr ? "\\n" : "\n", f);
        else if (c == '\t') fputs(attr ? "\\t" : "\t", f);
        else if (c == '\r' && !attr && (i + 1 < n ? s[i + 1] == '\n' : lf_after)) { /* CR LF: the LF shows it */
        } else if (k == 0 || c < 0x20 || c == 0x7F) fprintf(f, "\\x%02x", c);
        else {
            fwrite(s + i, 1, k, f);
            i += k;
            continue;
        }
        i++;
    }
}

/* the colour class of a token's cost */
static int cost_class(double bits)
{
    static const double edge[] = {0.5, 1, 2, 4, 8, 16};
    int c = 0;
    while (c < 6 && bits >= edge[c]) c++;
    return c;
}

static const char *const STYLE =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}"
    "h1{font-size:1.3em}table{border-collapse:collapse;margin:.6em 0}"
    "td,th{border:1px solid #ccc;padding:.15em .6em;text-align:right}th{background:#f4f4f4}"
    "td:first-child,th:first-child{text-align:left}"
    "#text{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13px;line-height:1.5;"
    "border:1px solid #ccc;padding:.8em;word-break:break-all}"
    "#text span{border-radius:2px}"
    ".c0{background:#e9f7ef}.c1{background:#c8ecd5}.c2{background:#fdf3c4}.c3{background:#fddfa6}"
    ".c4{background:#fbb98a}.c5{background:#f4846f;color:#fff}.c6{background:#c0392b;color:#fff}"
    ".bin{background:#ddd;color:#555;font-style:italic}"
    "#bypred:checked~#text .t{background:none;color:#222}"
    "#bypred:checked~#text .p0{background:#d6e4ff}#bypred:checked~#text .p1{background:#ffe0b2}"
    "#bypred:checked~#text .p2{background:#d1f2d1}#bypred:checked~#text .p3{background:#f0d6f5}"
    "#bypred:checked~#text .p4{background:#ffd6d6}"
    ".legend span{display:inline-block;padding:0 .5em;margin:0 .2em;border-radius:2px}"
    "#bypred:checked~.legend.cost,#bypred:not(:checked)~.legend.pred{display:none}"
    "svg{display:block;margin:.5em 0}svg text{font-size:11px;fill:#444}label{margin-right:1.5em}";

/* bits per byte of the input in bins, pieces spread over the bins they cover */
static void plot(FILE *f, size_t n, const explain_pieces *ps, double avg)
{
    const int W = 860, H = 220, L = 40, R = 10, T = 10, B = 30;
    size_t nb = n < 600 ? (n ? n : 1) : 600;
    double *bits = calloc(nb, sizeof *bits), per = (double)(n ? n : 1) / (double)nb, top = 8;
    if (!bits) return;
    for (size_t i = 0; i < ps->n; i++) {
        const lmz_piece *p = &ps->p[i];
        if (p->length == 0) {
            size_t b = (size_t)((double)(p->offset < n ? p->offset : (n ? n - 1 : 0)) / per);
            bits[b < nb ? b : nb - 1] += p->bits;
            continue;
        }
        double a = (double)p->offset, e = a + p->length, rate = p->bits / p->length;
        for (size_t b = (size_t)(a / per); b < nb && (double)b * per < e; b++) {
            double lo = (double)b * per > a ? (double)b * per : a, hi = (double)(b + 1) * per < e ? (double)(b + 1) * per : e;
            if (hi > lo) bits[b] += rate * (hi - lo);
        }
    }
    for (size_t b = 0; b < nb; b++) {
        bits[b] /= per;
        if (bits[b] > top) top = bits[b] < 16 ? bits[b] : 16;
    }
    top = (double)((int)top + 1);
    fprintf(f, "<svg id=\"plot\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"bits per byte along the file\">\n",
            W, H, W, H);
    for (int y = 0; y <= (int)top; y += top > 8 ? 4 : 2) {
        double py = T + (H - T - B) * (1 - y / top);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n",
                L, W - R, py, py, L - 4, py + 4, y);
    }
    double ay = T + (H - T - B) * (1 - (avg < top ? avg : top) / top);
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>\n", L,
            W - R, ay, ay);
    fputs("<polyline fill=\"none\" stroke=\"#2c5fa8\" stroke-width=\"1.2\" points=\"", f);
    for (size_t b = 0; b < nb; b++) {
        double v = bits[b] < top ? bits[b] : top;
        fprintf(f, "%.1f,%.1f ", L + (W - L - R) * ((double)b + 0.5) / (double)nb, T + (H - T - B) * (1 - v / top));
    }
    fputs("\"/>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%zu bytes</text>"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">bits per byte along the file (dashed: the "
               "whole file, %.3f)</text>\n</svg>\n",
            L, H - B + 14, W - R, H - B + 14, n, (L + W - R) / 2, H - 4, avg);
    free(bits);
}

int explain_html(FILE *f, const uint8_t *src, size_t n, const explain_pieces *ps, const explain_meta *m,
                 uint64_t show)
{
    double kbits[4] = {0}, cbits[6] = {0}, all = 0;
    uint64_t kbytes[4] = {0}, kcount[4] = {0}, ccount[6] = {0}, under1 = 0, over8 = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const lmz_piece *p = &ps->p[i];
        unsigned k = p->kind < 4 ? p->kind : 3;
        kbits[k] += p->bits;
        kbytes[k] += p->length;
        kcount[k]++;
        all += p->bits;
        if (k == LMZ_PIECE_TOKEN) {
            cbits[carrier_of(p)] += p->bits;
            ccount[carrier_of(p)]++;
            under1 += p->bits < 1;
            over8 += p->bits > 8;
        }
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>lmzip --explain: ", f);
    html_text(f, (const uint8_t *)m->name, strlen(m->name), 0, 0);
    fprintf(f, "</title>\n<style>%s</style>\n</head><body>\n<h1>", STYLE);
    html_text(f, (const uint8_t *)m->name, strlen(m->name), 0, 0);
    fputs("</h1>\n<p id=\"summary\">", f);
    fprintf(f, "%llu bytes &rarr; %llu bytes, <b>%.4f bits per byte</b> with the model <b>",
            (unsigned long long)m->in, (unsigned long long)m->out, m->in ? 8.0 * (double)m->out / (double)m->in : 0.0);
    html_text(f, (const uint8_t *)m->model, strlen(m->model), 0, 0);
    fprintf(f, "</b> (lmzip %s, %.1f s). Every bit of the file is in a piece below: the pieces add up to %.0f bits "
               "= %.0f bytes.</p>\n",
            lmz_version_string(), m->seconds, all, all / 8);
    fputs("<table id=\"kinds\"><tr><th>what</th><th>pieces</th><th>bytes in</th><th>bits</th><th>bits per byte</th>"
          "<th>share of the file</th></tr>\n",
          f);
    static const char *const KLONG[] = {"text: tokens", "binary (byte model, LZMA)", "stored", "overhead (headers, tables)"};
    for (int k = 0; k < 4; k++)
        if (kcount[k])
        {
            char bpb[32] = "&ndash;";
            if (kbytes[k]) snprintf(bpb, sizeof bpb, "%.3f", kbits[k] / (double)kbytes[k]);
            fprintf(f, "<tr><td>%s</td><td>%llu</td><td>%llu</td><td>%.0f</td><td>%s</td><td>%.1f %%</td></tr>\n",
                    KLONG[k], (unsigned long long)kcount[k], (unsigned long long)kbytes[k], kbits[k], bpb,
                    all > 0 ? 100 * kbits[k] / all : 0.0);
        }
    fputs("</table>\n", f);
    if (kcount[LMZ_PIECE_TOKEN]) {
        double nt = (double)kcount[LMZ_PIECE_TOKEN];
        fprintf(f, "<p>Tokens: %.1f %% cost under 1 bit, %.1f %% over 8 bits; %.3f bits a token.</p>\n",
                100 * (double)under1 / nt, 100 * (double)over8 / nt, kbits[LMZ_PIECE_TOKEN] / nt);
        fputs("<table id=\"carriers\"><tr><th>which predictor carried the token</th><th>tokens</th><th>bits</th>"
              "<th>bits a token</th></tr>\n",
              f);
        for (int c = 0; c < 5; c++)
            if (ccount[c])
                fprintf(f, "<tr><td><span class=\"p%d\">%s</span></td><td>%llu</td><td>%.0f</td><td>%.3f</td></tr>\n", c,
                        CARRIER_LONG[c], (unsigned long long)ccount[c], cbits[c], cbits[c] / (double)ccount[c]);
        fputs("</table>\n<p>A token's carrier is the predictor that gave it the most probability, or the byte "
              "model where mixing it in bit by bit made the token cost a bit or more less than the ensemble's "
              "table gave it.</p>\n",
              f);
    }
    plot(f, n, ps, m->in ? 8.0 * (double)m->out / (double)m->in : 0.0);
    fputs("<input type=\"checkbox\" id=\"bypred\"><label for=\"bypred\"> colour by the predictor that "
          "carried each token</label>\n"
          "<span class=\"legend cost\">bits a token: <span class=\"c0\">&lt; 0.5</span><span class=\"c1\">&lt; 1</span>"
          "<span class=\"c2\">&lt; 2</span><span class=\"c3\">&lt; 4</span><span class=\"c4\">&lt; 8</span>"
          "<span class=\"c5\">&lt; 16</span><span class=\"c6\">16 +</span></span>\n"
          "<span class=\"legend pred\"><span class=\"p0\">model</span><span class=\"p1\">n-gram</span>"
          "<span class=\"p2\">match</span><span class=\"p3\">own match</span><span class=\"p4\">byte model</span>"
          "</span>\n",
          f);
    fputs("<p class=\"note\">Hover over a token for its cost, what each predictor gave it and what the "
          "table expected.", f);
    if (show < n)
        fprintf(f, " The first %llu of %zu bytes; the plot covers them all (--explain-max).", (unsigned long long)show, n);
    fputs("</p>\n<div id=\"text\">", f);
    for (size_t i = 0; i < ps->n; i++) {
        const lmz_piece *p = &ps->p[i];
        if (p->length == 0 || p->offset >= show || p->offset + p->length > n) continue;
        if (p->kind != LMZ_PIECE_TOKEN) {
            fprintf(f, "<span class=\"bin\" title=\"%s, %u bytes: %.1f bits (%.3f bits a byte)\">[%u bytes %s]</span>",
                    kind_name(p->kind), p->length, p->bits, p->bits / p->length, p->length, kind_name(p->kind));
            continue;
        }
        unsigned c = carrier_of(p);
        fprintf(f, "<span class=\"t c%d p%u\" title=\"%.2f bits (the table: %.2f) &middot; %s&#10;", cost_class(p->bits), c,
                p->bits, (double)p->table_bits, CARRIER_LONG[c]);
        static const char *const QN[] = {"model", "n-gram", "match", "own match"};
        for (int k = 0; k < 4; k++) {
            if (p->q[k] < 0) fprintf(f, "%s%s &ndash;", k ? " &middot; " : "", QN[k]);
            else fprintf(f, "%s%s %.3g %%", k ? " &middot; " : "", QN[k], 100.0 * p->q[k]);
        }
        fputs("&#10;expected:", f);
        for (int k = 0; k < 3; k++)
            if (p->top_len[k]) {
                fputs(k ? ", &#8216;" : " &#8216;", f);
                html_text(f, p->top[k], p->top_len[k], 1, 0);
                fprintf(f, "&#8217; %.3g %%", 100.0 * p->top_p[k]);
            }
        fputs("\">", f);
        size_t end = p->offset + p->length;
        html_text(f, src + p->offset, p->length, 0, end < n && src[end] == '\n');
        fputs("</span>", f);
    }
    fputs("</div>\n</body></html>\n", f);
    return ferror(f) ? -1 : 0;
}
