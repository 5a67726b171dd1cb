/* watch.h: following changes to API objects, one stream or for good.
 *
 * kube_watch_stream reads one watch response (newline-delimited JSON events)
 * and calls a handler per object change. kube_reflector_run builds the
 * long-lived loop on top of it: list, watch from the list's resourceVersion,
 * resume after a dropped or timed-out stream, relist when the server has
 * forgotten that version (410 Gone), back off on errors. Both stop within
 * about a second of *stop becoming true, from any thread. */
#ifndef WASMLET_KUBE_WATCH_H
#define WASMLET_KUBE_WATCH_H

#include "kube/client.h"
#include "util/err.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
} kube_event_type_t;

const char *kube_event_type_name(kube_event_type_t type); /* "ADDED", ... */

/* Called for each object change, on the watching thread. object is borrowed
 * (json_incref to keep it). Return 0 to continue; anything else ends the
 * watch (the stream reports handler_failed, the reflector returns -1). */
typedef int (*kube_watch_fn)(void *ctx, kube_event_type_t type, json_t *object);

#define KUBE_RV_MAX 128

typedef struct kube_watch_result {
    /* In: the resourceVersion the watch starts from (the one in the query),
     * or "". Events whose object is not newer than it are dropped as
     * duplicates. Out: the newest resourceVersion seen, from delivered
     * events and BOOKMARKs; resume the next watch from it. */
    char resource_version[KUBE_RV_MAX];
    long status;         /* HTTP status of the watch response; 0: none arrived */
    bool gone;           /* 410 / Expired / "too old resource version": relist */
    bool stopped;        /* *stop ended the stream */
    bool handler_failed; /* the handler returned non-zero */
    bool error_event;    /* the server sent an ERROR event */
    size_t events;       /* events delivered to the handler */
    size_t bookmarks;    /* BOOKMARK events seen (never delivered) */
    char reason[64];     /* Status.reason of an ERROR event or error answer */
} kube_watch_result_t;

/* Streams GET path (which carries watch=1 and the caller's query, e.g.
 * allowWatchBookmarks, resourceVersion, timeoutSeconds; with timeoutSeconds
 * the transfer is also cut off client-side 30 s after it). BOOKMARK events
 * only advance res->resource_version; an ERROR event ends the stream with
 * its Status as the error. stop may be NULL.
 * Returns 0 when the server ended the stream normally or *stop did
 * (res->stopped); -1 otherwise: transport error, dropped connection,
 * non-200 answer, ERROR event, malformed event, handler failure. */
int kube_watch_stream(kube_client_t *c, const char *path, kube_watch_fn fn, void *ctx,
                      const atomic_bool *stop, kube_watch_result_t *res, err_t *err);

typedef struct kube_reflector_handlers {
    /* After every successful (re)list: the complete current list (a JSON
     * array, borrowed) and its resourceVersion. Objects missing from it were
     * deleted while wasmlet was not watching; reconcile against it. */
    int (*on_list)(void *ctx, json_t *items, const char *resource_version);
    /* Every change after that list, in order, each resourceVersion once. */
    kube_watch_fn on_event;
    /* Optional: a (re)list failed with err; the reflector backs off and
     * tries again. Lets a caller waiting for the first list stop waiting. */
    void (*on_list_error)(void *ctx, const err_t *err);
} kube_reflector_handlers_t;

typedef struct kube_reflector_opts {
    const char *list_path;      /* collection, e.g. "/api/v1/pods" (no query) */
    const char *field_selector; /* e.g. "spec.nodeName=node-1", or NULL */
    const char *label_selector; /* or NULL */
    int watch_timeout_s;        /* each watch asks for [t, 2t) seconds; 0: 300 */
    long backoff_initial_ms;    /* 0: 800; doubles per failure ... */
    long backoff_max_ms;        /* ... up to this; 0: 30000 */
    int page_size;              /* LIST limit per page; 0: 500 */
} kube_reflector_opts_t;

/* Lists and watches until *stop is set (returns 0) or a handler fails
 * (returns -1 with err). Errors from the server or the network never end
 * it: they are retried with exponential backoff plus jitter, reset once a
 * watch makes progress. Resumes a watch from the last resourceVersion after
 * a normal end or a dropped connection; relists after 410 Gone, an ERROR
 * event, or a watch refused with 4xx. Each retried failure is logged with
 * diag_warn, as nothing else would ever show it. */
int kube_reflector_run(kube_client_t *c, const kube_reflector_opts_t *opts,
                       const kube_reflector_handlers_t *h, void *ctx, const atomic_bool *stop,
                       err_t *err);

#endif
