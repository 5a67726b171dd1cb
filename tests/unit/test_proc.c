/* test_proc.c: unit tests for util/proc.c, the /proc and statvfs readers
 * the node (capacity, pressure) and the kubelet API (stats, metrics) share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/proc.h"
#include "util/time.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void meminfo(void **state)
{
    (void)state;
    proc_meminfo_t m;
    assert_int_equal(proc_meminfo(&m), 0);
    assert_true(m.total > 0);
    assert_true(m.free <= m.total);
    assert_true(m.available > 0 && m.available <= m.total);
    /* The same as the kernel says through sysconf. */
    uint64_t pages = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    assert_true(m.total <= pages + 4096 && m.total + pages / 10 >= pages);
    assert_true(m.pgfault > 0);
}

static void fs(void **state)
{
    (void)state;
    proc_fs_t f;
    assert_int_equal(proc_fs_stat("/tmp", &f), 0);
    struct statvfs st;
    assert_int_equal(statvfs("/tmp", &st), 0);
    assert_int_equal(f.capacity, (uint64_t)st.f_blocks * st.f_frsize);
    assert_true(f.capacity > 0);
    assert_true(f.available <= f.free && f.free <= f.capacity);
    assert_true(f.inodes_free <= f.inodes);
    assert_int_equal(proc_fs_stat("/no/such/dir/anywhere", &f), -1);
    assert_int_equal(f.capacity, 0);
    assert_int_equal(proc_fs_stat(NULL, &f), -1);
}

static void machine(void **state)
{
    (void)state;
    uint64_t a = proc_node_cpu_ns();
    assert_true(a > 0);
    int64_t boot = proc_boot_time_s();
    assert_true(boot > 946684800); /* after 2000 */
    assert_true(boot * NS_PER_SEC < time_now_ns());
    assert_true(proc_task_count() > 0);
    assert_true(proc_pid_max() >= proc_task_count());
}

static void self(void **state)
{
    (void)state;
    uint64_t cpu0 = proc_self_cpu_ns();
    volatile uint64_t x = 0;
    int64_t t0 = time_mono_ns();
    while (time_mono_ns() - t0 < 50 * NS_PER_MS)
        for (int i = 0; i < 10000; i++)
            x += (uint64_t)i;
    assert_true(x > 0);
    assert_true(proc_self_cpu_ns() > cpu0);
    assert_true(proc_self_rss_bytes() > 0);
    int64_t start = proc_self_start_ns();
    assert_true(start > proc_boot_time_s() * NS_PER_SEC);
    assert_true(start <= time_now_ns());
    size_t fds = proc_self_open_fds();
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(proc_self_open_fds(), fds + 1);
    close(fd);
    assert_int_equal(proc_self_open_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meminfo),
        cmocka_unit_test(fs),
        cmocka_unit_test(machine),
        cmocka_unit_test(self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
