/* proc.h: what the kernel says about this machine and this process
 * (/proc, statvfs), read the same way by every subsystem that asks.
 *
 * The node's capacity and pressure conditions (node/) and the kubelet
 * API's stats and metrics (server/) read the same files; one reader each
 * keeps their numbers identical. Every reader is cheap (one small file),
 * thread-safe, and answers zeros when a file cannot be read rather than
 * failing: a figure missing from a report is better than no report. */
#ifndef WASMLET_UTIL_PROC_H
#define WASMLET_UTIL_PROC_H

#include <stddef.h>
#include <stdint.h>

/* /proc/meminfo in bytes, and the fault counters of /proc/vmstat. */
typedef struct proc_meminfo {
    uint64_t total;         /* MemTotal */
    uint64_t free;          /* MemFree */
    uint64_t available;     /* MemAvailable */
    uint64_t inactive_file; /* Inactive(file) */
    uint64_t anon;          /* AnonPages */
    uint64_t pgfault, pgmajfault;
} proc_meminfo_t;

/* Fills *m (zeros for what cannot be read); -1 when /proc/meminfo cannot
 * be read at all. */
int proc_meminfo(proc_meminfo_t *m);

/* The file system holding a path, in bytes and inodes (statvfs). */
typedef struct proc_fs {
    uint64_t capacity;  /* f_blocks */
    uint64_t available; /* f_bavail: what an unprivileged writer may use */
    uint64_t free;      /* f_bfree */
    uint64_t inodes, inodes_free;
} proc_fs_t;

/* Fills *fs for the file system of path; -1 (and zeros) when it cannot be
 * examined. */
int proc_fs_stat(const char *path, proc_fs_t *fs);

/* Busy CPU time of the whole machine since boot, in ns (/proc/stat). */
uint64_t proc_node_cpu_ns(void);
/* Boot time, seconds since the epoch (/proc/stat btime). */
int64_t proc_boot_time_s(void);
/* This boot's id (/proc/sys/kernel/random/boot_id, 36 characters), read
 * once; "" when it cannot be read. Tells state written since the machine
 * last started from state a power loss may have cut short. */
const char *proc_boot_id(void);
/* Tasks (threads) that exist now (/proc/loadavg), and the kernel's
 * pid_max; 0 when unknown. */
int64_t proc_task_count(void);
int64_t proc_pid_max(void);

/* This process: CPU time (user + system) in ns, resident set in bytes,
 * start time (Unix ns), open file descriptors. */
uint64_t proc_self_cpu_ns(void);
uint64_t proc_self_rss_bytes(void);
int64_t proc_self_start_ns(void);
size_t proc_self_open_fds(void);

/* RLIMIT_NOFILE of this process (soft, hard); 0s when unknown. */
void proc_nofile_limits(uint64_t *soft, uint64_t *hard);

/* Raises the soft RLIMIT_NOFILE to the hard limit (as the kubelet's
 * container runtimes and Go programs do at start: select() is not used
 * here, so a high limit costs nothing), and first, when the process may
 * (CAP_SYS_RESOURCE: a node run as root), the hard limit to the kernel's
 * fs.nr_open, at most PROC_NOFILE_MAX, as container runtimes' service
 * units do: every container's descriptors are wasmlet's own, two per idle
 * pod (its log file, its volume's preopened directory), so a hard limit of
 * 20,000 stopped a node at 10,000 pods. Returns the soft limit now in
 * force. */
#define PROC_NOFILE_MAX (1u << 20)
uint64_t proc_raise_nofile(void);

/* Descriptors wasmlet keeps for itself out of a soft limit: a full node
 * must still serve its API, renew its Lease, write status and start pods.
 * max(256, limit / 8), never more than half the limit. What containers may
 * hold together is the limit less this (the per-container caps of the
 * runtime draw from that budget). */
uint64_t proc_nofile_headroom(uint64_t soft_limit);

#endif
