/* proc.c: readers of /proc and statvfs (see proc.h). */
#include "util/proc.h"
#include "util/time.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

int proc_meminfo(proc_meminfo_t *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char key[64];
    unsigned long long kb;
    while (fscanf(f, "%63s %llu%*[^\n]", key, &kb) == 2) {
        uint64_t b = (uint64_t)kb * 1024;
        if (strcmp(key, "MemTotal:") == 0)
            m->total = b;
        else if (strcmp(key, "MemFree:") == 0)
            m->free = b;
        else if (strcmp(key, "MemAvailable:") == 0)
            m->available = b;
        else if (strcmp(key, "Inactive(file):") == 0)
            m->inactive_file = b;
        else if (strcmp(key, "AnonPages:") == 0)
            m->anon = b;
    }
    fclose(f);
    f = fopen("/proc/vmstat", "r");
    if (f) {
        unsigned long long v;
        while (fscanf(f, "%63s %llu", key, &v) == 2) {
            if (strcmp(key, "pgfault") == 0)
                m->pgfault = v;
            else if (strcmp(key, "pgmajfault") == 0)
                m->pgmajfault = v;
        }
        fclose(f);
    }
    return 0;
}

int proc_fs_stat(const char *path, proc_fs_t *fs)
{
    memset(fs, 0, sizeof *fs);
    struct statvfs st;
    if (!path || statvfs(path, &st) != 0) return -1;
    uint64_t bs = st.f_frsize;
    fs->capacity = (uint64_t)st.f_blocks * bs;
    fs->available = (uint64_t)st.f_bavail * bs;
    fs->free = (uint64_t)st.f_bfree * bs;
    fs->inodes = st.f_files;
    fs->inodes_free = st.f_ffree;
    return 0;
}

static uint64_t ticks_to_ns(unsigned long long ticks)
{
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (uint64_t)ticks * (uint64_t)(NS_PER_SEC / hz) : 0;
}

uint64_t proc_node_cpu_ns(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4) return 0;
    /* user nice system [idle iowait] irq softirq steal */
    return ticks_to_ns(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

int64_t proc_boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[512];
    long long bt = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &bt) == 1) break;
    fclose(f);
    return bt;
}

int64_t proc_task_count(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return 0;
    double a, b, c;
    long long running = 0, tasks = 0;
    if (fscanf(f, "%lf %lf %lf %lld/%lld", &a, &b, &c, &running, &tasks) != 5) tasks = 0;
    fclose(f);
    return tasks;
}

int64_t proc_pid_max(void)
{
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    if (!f) return 0;
    long long v = 0;
    if (fscanf(f, "%lld", &v) != 1) v = 0;
    fclose(f);
    return v;
}

uint64_t proc_self_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t proc_self_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, rss = 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    return n == 2 ? (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

int64_t proc_self_start_ns(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    if (!p) return 0;
    unsigned long long start = 0;
    /* Fields 3..22 follow; starttime (clock ticks after boot) is field 22. */
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 22) return 0;
    return proc_boot_time_s() * NS_PER_SEC + (int64_t)ticks_to_ns(start);
}

size_t proc_self_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory itself */
}

void proc_nofile_limits(uint64_t *soft, uint64_t *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        *soft = *hard = 0;
        return;
    }
    *soft = (uint64_t)rl.rlim_cur;
    *hard = (uint64_t)rl.rlim_max;
}

/* The kernel's ceiling on a process's descriptors (fs.nr_open), at most
 * PROC_NOFILE_MAX; 0 when unreadable. */
static uint64_t nofile_ceiling(void)
{
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return v > PROC_NOFILE_MAX ? PROC_NOFILE_MAX : (uint64_t)v;
}

uint64_t proc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) return 0;
    uint64_t ceiling = nofile_ceiling();
    if (ceiling > rl.rlim_max) {
        /* Only a process with CAP_SYS_RESOURCE may; others keep theirs. */
        struct rlimit want = {.rlim_cur = (rlim_t)ceiling, .rlim_max = (rlim_t)ceiling};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl.rlim_cur = rl.rlim_max;
    }
    return (uint64_t)rl.rlim_cur;
}

uint64_t proc_nofile_headroom(uint64_t soft_limit)
{
    uint64_t h = soft_limit / 8;
    if (h < 256) h = 256;
    if (h > soft_limit / 2) h = soft_limit / 2;
    return h;
}

static char boot_id[64];
static pthread_once_t boot_id_once = PTHREAD_ONCE_INIT;

static void boot_id_read(void)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f) return;
    if (!fgets(boot_id, sizeof boot_id, f)) boot_id[0] = '\0';
    fclose(f);
    boot_id[strcspn(boot_id, "\n")] = '\0';
}

const char *proc_boot_id(void)
{
    pthread_once(&boot_id_once, boot_id_read);
    return boot_id;
}
