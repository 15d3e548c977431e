/* sysinfo.c — see sysinfo.h. Linux: sched_getaffinity and cgroup v2 / v1
 * files; elsewhere the online processor count and physical pages. */
#define _GNU_SOURCE
#include "sysinfo.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of a file, or 0 when it cannot be read. */
static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

/* cores a cgroup's CPU quota allows, rounded up; 0: no quota */
static unsigned cgroup_cpus(void)
{
    char b[128];
    long long quota = -1, period = 0;
    if (read_line("/sys/fs/cgroup/cpu.max", b, sizeof b)) { /* v2: "max 100000" or "200000 100000" */
        if (strncmp(b, "max", 3) != 0 && sscanf(b, "%lld %lld", &quota, &period) != 2) quota = -1;
    } else if (read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", b, sizeof b)) { /* v1 */
        quota = atoll(b);
        if (read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", b, sizeof b)) period = atoll(b);
    }
    if (quota <= 0 || period <= 0) return 0;
    long long n = (quota + period - 1) / period;
    return n < 1 ? 1 : n > 4096 ? 4096 : (unsigned)n;
}

unsigned lmz_sys_cores(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = online > 0 ? (unsigned)online : 1;
#ifdef CPU_COUNT
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0 && (unsigned)c < n) n = (unsigned)c;
    }
#endif
    unsigned q = cgroup_cpus();
    if (q && q < n) n = q;
    return n ? n : 1;
}

uint64_t lmz_sys_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    char b[128];
    uint64_t cg = 0;
    if (read_line("/sys/fs/cgroup/memory.max", b, sizeof b)) {
        if (strncmp(b, "max", 3) != 0) cg = strtoull(b, NULL, 10);
    } else if (read_line("/sys/fs/cgroup/memory/memory.limit_in_bytes", b, sizeof b)) {
        cg = strtoull(b, NULL, 10); /* "no limit" reads as a huge number */
    }
    if (cg && (!phys || cg < phys)) return cg;
    return phys;
}
