/*
 * sysinfo.h — what this process may use of the machine: cores (the CPU
 * affinity mask and a cgroup's cpu.max quota) and memory (physical memory
 * and a cgroup's memory.max), for thread counts and the decoder's memory
 * limit.
 */
#ifndef LMZ_SYSINFO_H
#define LMZ_SYSINFO_H

#include <stdint.h>

/* Cores this process may run on (at least 1). */
unsigned lmz_sys_cores(void);

/* Bytes of memory this process may use: the smaller of physical memory and
 * the cgroup's limit (0 when neither can be read). */
uint64_t lmz_sys_memory(void);

#endif
