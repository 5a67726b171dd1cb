/* state.c: the resume format, in one place: what a pod worker records
 * so that a restarted wasmlet goes on with the pod without running again
 * what ended, how it is applied at start, and where it lives on disk
 * (<data-dir>/pods/<uid>/state.json, replaced atomically).
 *
 * The format, one JSON object:
 *   {"startTime": <realtime ns>,
 *    "<container name>": {"restartCount", "done", "exitCode", "reason",
 *                         "message", "startedAt", "finishedAt" (ns),
 *                         "imageID", "containerID", "allocated"}, ...}
 * "allocated" is the container's allocated resources (resize.h's
 * pod_resources_save form), so that a resize the node admitted survives a
 * restart of wasmlet as the kubelet's allocation checkpoint does.
 * "done" is true only for a container that ended for good by itself; one
 * interrupted by a stop (a node shutdown) is not done, so the next wasmlet
 * runs it again if its restart policy allows, or reports it lost.
 *
 * Threads: pod_state_json_locked runs with w->lock held (any thread);
 * pod_state_apply runs in pod_worker_start before any thread of the pod
 * exists; save and load are plain file I/O on the caller's thread. */
#include "pod/state.h"
#include "pod/worker_priv.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *resume_entry(const crun_t *c)
{
    return json_pack("{s:i, s:b, s:i, s:s, s:s, s:I, s:I, s:s, s:s, s:o}", "restartCount",
                     c->restart_count, "done", c->lc == CLC_DONE && !c->state.killed, "exitCode",
                     c->state.exit_code, "reason", c->state.reason, "message",
                     c->state.message ? c->state.message : "", "startedAt",
                     (json_int_t)c->state.started_at, "finishedAt",
                     (json_int_t)c->state.finished_at, "imageID", c->image_id, "containerID",
                     c->state.container_id, "allocated", pod_resources_save(&c->alloc));
}

json_t *pod_state_json_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    json_t *r = json_object();
    json_object_set_new(r, "startTime", json_integer(w->start_time));
    for (size_t i = 0; i < w->ninit; i++)
        json_object_set_new(r, w->inits[i].spec->name, resume_entry(&w->inits[i]));
    for (size_t i = 0; i < w->napps; i++)
        json_object_set_new(r, w->apps[i].spec->name, resume_entry(&w->apps[i]));
    return r;
}

json_t *pod_worker_resume_json(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    json_t *r = pod_state_json_locked(w);
    pthread_mutex_unlock(&w->lock);
    return r;
}

/* Applies what an earlier wasmlet recorded: restart counts go on, and a
 * container that ended for good is not run again. The container's
 * lifecycle starts at DONE for those (an initial state, not a move). */
void pod_state_apply(pod_worker_t *w, crun_t *c, json_t *resume)
{
    json_t *r = json_object_get(resume, c->spec->name);
    if (!json_is_object(r)) return;
    c->restart_count = (int)json_int_at(r, 0, "restartCount");
    int64_t started = json_int_at(r, 0, "startedAt");
    if (json_bool_at(r, false, "done")) {
        c->lc = CLC_DONE;
        c->runs = 1;
        cstate_set(&c->state, CSTATE_TERMINATED, json_str_at(r, "reason"),
                   json_str_at(r, "message"));
        c->state.exit_code = (int)json_int_at(r, 0, "exitCode");
        c->state.started_at = started;
        c->state.finished_at = json_int_at(r, 0, "finishedAt");
        const char *cid = json_str_at(r, "containerID");
        if (cid) snprintf(c->state.container_id, sizeof c->state.container_id, "%s", cid);
    } else if (started) {
        /* It was running when wasmlet went away. Its run is lost, as a
         * container's is when its runtime dies: under restartPolicy Never
         * it is not run again (nothing runs twice) and ends unknown;
         * otherwise the next run counts as a restart. */
        c->runs = 1;
        if (!container_restarts(w, c, 1)) {
            c->lc = CLC_DONE;
            cstate_set(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                       "The container was running when wasmlet stopped and its restartPolicy "
                       "does not allow another run");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.started_at = started;
            c->state.finished_at = time_now_ns();
        } else {
            c->restart_count++;
        }
    }
    const char *image_id = json_str_at(r, "imageID");
    if (image_id) snprintf(c->image_id, sizeof c->image_id, "%s", image_id);
    pod_resources_t alloc;
    if (pod_resources_load(json_object_get(r, "allocated"), &alloc)) {
        c->alloc = alloc;
        c->actual = alloc;
    }
}

json_t *pod_state_allocated_pod(json_t *pod, json_t *resume)
{
    json_t *copy = json_deep_copy(pod);
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_at(copy, "spec", lists[l]), i, c)
        {
            const char *name = json_str_at(c, "name");
            pod_resources_t a;
            if (!name || !pod_resources_load(json_at(resume, name, "allocated"), &a)) continue;
            json_t *res = pod_resources_json(&a);
            json_object_set_new(c, "resources", res ? res : json_object());
        }
    }
    return copy;
}

char *pod_state_path(const char *pod_dir)
{
    return xasprintf("%s/state.json", pod_dir);
}

int pod_state_save(const char *pod_dir, pod_worker_t *w, err_t *err)
{
    json_t *r = pod_worker_resume_json(w);
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    char *path = pod_state_path(pod_dir);
    int rc = -1;
    if (!text) {
        err_set(err, "%s: cannot render the pod's state", path);
        goto out;
    }
    if (fs_mkdir_p(pod_dir, 0750, err) == -1) goto out;
    if (fs_write_replace(path, text, strlen(text), 0600, err) == -1) goto out;
    rc = 0;
out:
    free(text);
    free(path);
    return rc;
}

json_t *pod_state_load(const char *pod_dir)
{
    char *path = pod_state_path(pod_dir);
    char *text = NULL;
    json_t *state = NULL;
    if (fs_read_all(path, &text, NULL, NULL) == 0) {
        state = json_loads(text, 0, NULL);
        if (!json_is_object(state)) {
            json_decref(state);
            state = NULL;
        }
    }
    free(text);
    free(path);
    return state;
}
