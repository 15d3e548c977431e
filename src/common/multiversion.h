/*
 * multiversion.h — loops compiled more than once, for the vector units a CPU
 * has, the copy picked at load time (GCC's target_clones).
 *
 * LMZ_CLONES_INT: integer-only code; any copy computes the same integers.
 * LMZ_CLONES_FLOAT: binary32/binary64 loops whose every element is computed
 * by the same IEEE operations in the same order in every copy: the build's
 * -ffp-contract=off forbids fused multiply-adds the source does not write,
 * and without -ffast-math the compiler never reassociates a sum, so a
 * vectorised loop keeps each sum's order (the profile's lanes, written out
 * in the source, become vector lanes). The golden files check it: make test
 * runs the widest copy this CPU has, make asan (LMZ_NO_MULTIVERSION) the
 * baseline one.
 */
#ifndef LMZ_MULTIVERSION_H
#define LMZ_MULTIVERSION_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
#define LMZ_CLONES_INT __attribute__((target_clones("avx2", "default")))
#define LMZ_CLONES_FLOAT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LMZ_CLONES_INT
#define LMZ_CLONES_FLOAT
#endif

#endif
