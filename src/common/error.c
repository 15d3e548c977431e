/* error.c — names of the library's error codes. */
#include "lmzip.h"

const char *lmz_error_name(int code)
{
    static const char *const names[LMZ_ERROR_COUNT_] = {
        [LMZ_OK] = "no error",
        [LMZ_ERROR_GENERIC] = "error",
        [LMZ_ERROR_READ] = "read error",
        [LMZ_ERROR_WRITE] = "write error",
        [LMZ_ERROR_NOMEM] = "out of memory",
        [LMZ_ERROR_BAD_MAGIC] = "not in .lmz format",
        [LMZ_ERROR_VERSION] = "unsupported format version",
        [LMZ_ERROR_HEADER] = "corrupt stream header",
        [LMZ_ERROR_TRUNCATED] = "unexpected end of input (truncated file)",
        [LMZ_ERROR_CORRUPT] = "corrupt data",
        [LMZ_ERROR_CHECKSUM] = "checksum mismatch: data is corrupt",
        [LMZ_ERROR_SIZE] = "size field out of range (corrupt data)",
        [LMZ_ERROR_PROFILE] = "unsupported arithmetic profile",
        [LMZ_ERROR_MODEL] = "model not available",
        [LMZ_ERROR_PARAM] = "invalid parameter",
        [LMZ_ERROR_SETTING] = "unsupported setting in header",
        [LMZ_ERROR_THREAD] = "cannot start thread",
        [LMZ_ERROR_DST_SIZE] = "destination buffer too small",
        [LMZ_ERROR_EMPTY] = "empty input (no .lmz stream)",
        [LMZ_ERROR_MEMLIMIT] = "memory limit exceeded",
    };
    if (code < 0 || code >= LMZ_ERROR_COUNT_ || !names[code]) return "unknown error code";
    return names[code];
}

const char *lmz_version_string(void) { return LMZ_VERSION_STRING; }
