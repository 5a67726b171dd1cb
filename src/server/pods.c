/* pods.c: the pod samples of a PodList (see pods.h). */
#include "server/pods.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <stdlib.h>

void server_pod_samples_from_list(json_t *list, server_pod_samples_t *out)
{
    json_t *items = json_at(list, "items");
    out->n = 0;
    out->items = xcalloc(json_array_size(items) + 1, sizeof *out->items);
    size_t i;
    json_t *pod;
    json_array_foreach(items, i, pod)
    {
        const char *ns = json_str_at(pod, "metadata", "namespace");
        const char *name = json_str_at(pod, "metadata", "name");
        const char *uid = json_str_at(pod, "metadata", "uid");
        if (!ns || !name || !uid) continue;
        server_pod_sample_t *p = &out->items[out->n++];
        p->ns = xstrdup(ns);
        p->name = xstrdup(name);
        p->uid = xstrdup(uid);
        const char *started = json_str_at(pod, "status", "startTime");
        p->start_time = started ? xstrdup(started) : NULL;
        static const char *const kinds[] = {"initContainers", "containers"};
        for (int k = 0; k < 2; k++) {
            size_t j;
            json_t *c;
            json_array_foreach(json_at(pod, "spec", kinds[k]), j, c)
            {
                const char *cname = json_str_at(c, "name");
                if (cname) strvec_push(&p->containers, cname);
            }
        }
    }
}

void server_pod_samples_free(server_pod_samples_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        server_pod_sample_t *p = &s->items[i];
        free(p->ns);
        free(p->name);
        free(p->uid);
        free(p->start_time);
        strvec_free(&p->containers);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}
