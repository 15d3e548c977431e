/*
 * settings.h — the settings a stream records, in one table (settings.c):
 * each setting's header id, the lmz_header and lmz_params fields it fills,
 * its bounds and default. The stream header's writer and reader, the
 * library's parameter checks (lmz_params_set, lmz_compress_stream), lmzip's
 * options and its -h read this table; tests/cli.sh checks the man page names
 * every entry.
 */
#ifndef LMZ_SETTINGS_H
#define LMZ_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "lmzip.h"

/* Append the settings of h to out (id byte, 8-byte value each, in id
 * order; language-model ones only for model streams, optional ones only
 * when not at their absent value). @return bytes written; *count the
 * number of settings. */
size_t lmz_settings_write(const lmz_header *h, int lm, uint8_t *out, unsigned *count);

/* Take one (id, value) pair of a header into h. @return 1 when the id is
 * known and the value in bounds, 0 for an id this build does not know or
 * one seen before (seen: a bit per id, updated), -1 for a value out of
 * bounds (damage). */
int lmz_settings_read(lmz_header *h, unsigned id, uint64_t v, uint64_t *seen);

/* Every optional setting of h at its absent value (before a version-1
 * header's settings are read). */
void lmz_settings_absent(lmz_header *h);

/* Version 2 (format.h): settings are written only where they differ from
 * the format's defaults, each as varint id, varint value, in id order.
 * @return bytes written; *count the number of settings. */
size_t lmz_settings_write_v2(const lmz_header *h, int lm, uint8_t *out, unsigned *count);

/* Version 2's defaults into h before its settings are read (lm: a model
 * stream); after them, lmz_settings_finish_v2 gives an omitted group its
 * value for the stream's frame size (seen: lmz_settings_read's bits). */
void lmz_settings_defaults_v2(lmz_header *h, int lm);
void lmz_settings_finish_v2(lmz_header *h, int lm, uint64_t seen);

/* Version 2: does `seen` hold no setting a stream of this kind must not have? */
int lmz_settings_v2_ok(uint64_t seen, int lm);

/* Check every setting of p against its bounds. @return LMZ_OK or
 * LMZ_ERROR_PARAM. */
int lmz_settings_check(const lmz_params *p);

/* The header's settings from p (model streams: lm 1). Automatic frame
 * size and group must be resolved before. */
void lmz_settings_to_header(const lmz_params *p, lmz_header *h);

/* Does `seen` (lmz_settings_read's bits) hold every setting a stream of
 * this kind (lm: a model stream) requires, and none it must not have? */
int lmz_settings_complete(uint64_t seen, int lm);

#endif
