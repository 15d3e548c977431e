/*
 * rng.h — splitmix64, the project's one pseudo-random generator (the
 * trainer's initialisation and shuffles, generation's draws): the same
 * numbers from a seed on every machine.
 */
#ifndef LMZ_RNG_H
#define LMZ_RNG_H

#include <stdint.h>

/* the next 64 bits of the sequence at *s (advances it) */
static inline uint64_t lmz_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* its top 53 bits as a double in [0, 1) */
static inline double lmz_uniform53(uint64_t *s) { return (double)(lmz_splitmix64(s) >> 11) * 0x1p-53; }

#endif
