/* descriptors.c: the descriptors running containers hold (see
 * descriptors.h). A short list per node: one entry per running container,
 * newest first. */
#include "metrics/descriptors.h"
#include "metrics/prom.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct fds_entry {
    char *uid, *namespace, *pod, *container;
    size_t held, cap;
    struct fds_entry *next;
} fds_entry_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static fds_entry_t *entries;

static fds_entry_t **find_locked(const char *uid, const char *container)
{
    fds_entry_t **pp = &entries;
    while (*pp && (strcmp((*pp)->uid, uid) != 0 || strcmp((*pp)->container, container) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void entry_free(fds_entry_t *e)
{
    free(e->uid);
    free(e->namespace);
    free(e->pod);
    free(e->container);
    free(e);
}

void metrics_descriptors_set(const char *pod_uid, const char *namespace, const char *pod,
                             const char *container, size_t held, size_t cap)
{
    pthread_mutex_lock(&mu);
    fds_entry_t *e = *find_locked(pod_uid, container);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->uid = xstrdup(pod_uid);
        e->namespace = xstrdup(namespace);
        e->pod = xstrdup(pod);
        e->container = xstrdup(container);
        e->next = entries;
        entries = e;
    }
    e->held = held;
    e->cap = cap;
    pthread_mutex_unlock(&mu);
}

void metrics_descriptors_end(const char *pod_uid, const char *container)
{
    pthread_mutex_lock(&mu);
    fds_entry_t **pp = find_locked(pod_uid, container);
    fds_entry_t *e = *pp;
    if (e) *pp = e->next;
    pthread_mutex_unlock(&mu);
    if (e) entry_free(e);
}

bool metrics_descriptors_get(const char *pod_uid, const char *container, size_t *held)
{
    pthread_mutex_lock(&mu);
    fds_entry_t *e = *find_locked(pod_uid, container);
    if (e) *held = e->held;
    pthread_mutex_unlock(&mu);
    return e != NULL;
}

static void labels(strbuf_t *sb, const fds_entry_t *e, bool container)
{
    prom_label(sb, true, "namespace", e->namespace);
    prom_label(sb, false, "pod", e->pod);
    if (container) prom_label(sb, false, "container", e->container);
}

void metrics_render_descriptors(strbuf_t *sb)
{
    pthread_mutex_lock(&mu);
    prom_family(sb, "wasmlet_container_open_descriptors", "gauge",
                "Host descriptors a running container holds: its files, directories and "
                "sockets, plus those wasmlet keeps open for it (log file, saved network "
                "namespace, HTTP listeners).");
    for (fds_entry_t *e = entries; e; e = e->next) {
        strbuf_puts(sb, "wasmlet_container_open_descriptors{");
        labels(sb, e, true);
        strbuf_printf(sb, "} %zu\n", e->held);
    }
    prom_family(sb, "wasmlet_container_open_descriptors_limit", "gauge",
                "The cap on wasmlet_container_open_descriptors (capped containers only).");
    for (fds_entry_t *e = entries; e; e = e->next) {
        if (!e->cap) continue;
        strbuf_puts(sb, "wasmlet_container_open_descriptors_limit{");
        labels(sb, e, true);
        strbuf_printf(sb, "} %zu\n", e->cap);
    }
    prom_family(sb, "wasmlet_pod_open_descriptors", "gauge",
                "Host descriptors a pod's running containers hold, wasmlet's for them included.");
    /* Each pod once: at its first entry in the list, summing that entry and
     * every later one of the same pod. */
    for (fds_entry_t *e = entries; e; e = e->next) {
        bool seen = false;
        for (fds_entry_t *f = entries; f != e && !seen; f = f->next)
            seen = strcmp(f->uid, e->uid) == 0;
        if (seen) continue;
        size_t sum = 0;
        for (fds_entry_t *f = e; f; f = f->next)
            if (strcmp(f->uid, e->uid) == 0) sum += f->held;
        strbuf_puts(sb, "wasmlet_pod_open_descriptors{");
        labels(sb, e, false);
        strbuf_printf(sb, "} %zu\n", sum);
    }
    pthread_mutex_unlock(&mu);
}

void metrics_descriptors_reset(void)
{
    pthread_mutex_lock(&mu);
    fds_entry_t *e = entries;
    entries = NULL;
    pthread_mutex_unlock(&mu);
    while (e) {
        fds_entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
}
