/* state.h: where a pod's resume record lives on disk (see state.c for
 * the format). The pod manager saves it after each status change of a pod
 * it runs and loads it when it starts a worker for a pod it finds again. */
#ifndef WASMLET_POD_STATE_H
#define WASMLET_POD_STATE_H

#include "pod/worker.h"
#include "util/err.h"

#include <jansson.h>

/* <pod_dir>/state.json (free it). pod_dir is <data-dir>/pods/<uid>. */
char *pod_state_path(const char *pod_dir);

/* Writes w's resume record (pod_worker_resume_json) to <pod_dir>/state.json,
 * creating pod_dir, replacing the file atomically. */
int pod_state_save(const char *pod_dir, pod_worker_t *w, err_t *err);

/* The record saved there, for pod_worker_start, or NULL when there is none
 * (or it is not a JSON object). */
json_t *pod_state_load(const char *pod_dir);

/* The pod as its allocation has it: a copy of pod whose containers'
 * resources are the allocated ones of the record (a resize the node had
 * admitted, or not yet), for the admission of a pod found again, which
 * counts what it was allocated, not what its spec asks now. Containers the
 * record does not know keep theirs. */
json_t *pod_state_allocated_pod(json_t *pod, json_t *resume);

#endif
