/* httpmux.c: the shared-connection HTTP driver (see httpmux.h).
 *
 * A caller queues a job (its easy handle and a condition variable, on its
 * own stack), wakes the mux thread with curl_multi_wakeup and sleeps until
 * the job is marked done. The mux thread moves queued jobs into the multi
 * handle, runs it, and hands each finished transfer back. Closing the idle
 * connections replaces the multi handle (libcurl has no call to close a
 * multi's cached connections), which is done only between transfers.
 *
 * Lock: mu guards the queue, the flags and the multi pointer's
 * replacement; the mux thread reads the pointer without it (it is the only
 * writer), callers take mu to wake it, so a wake never meets a freed
 * handle. mu is never held while libcurl transfers. */
#include "util/httpmux.h"
#include "util/heap.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define MUX_STACK (256u * 1024u) /* libcurl and an OpenSSL handshake fit easily */
#define MUX_POLL_MS 1000         /* libcurl's own timers cut this short */

typedef struct job {
    CURL *easy;
    CURLcode result;
    bool done;
    pthread_cond_t cv;
    struct job *next;
} job_t;

struct httpmux {
    pthread_mutex_t mu;
    CURLM *multi;         /* written under mu by the mux thread only */
    job_t *queue, **tail; /* mu */
    bool started, stop, reset;
    unsigned inflight; /* the mux thread's */
    pthread_t thread;
};

static CURLM *multi_new(void)
{
    CURLM *multi = curl_multi_init();
    if (!multi) abort(); /* only fails on allocation failure; see xalloc.h */
    /* HTTP/2 streams share one connection; libcurl's default since 7.62,
     * stated because everything here rests on it. */
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return multi;
}

httpmux_t *httpmux_new(void)
{
    httpmux_t *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->queue;
    return m;
}

static void finish(httpmux_t *m, job_t *j, CURLcode result)
{
    pthread_mutex_lock(&m->mu);
    j->result = result;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&m->mu); /* j may be gone from here on */
}

static void *mux_main(void *arg)
{
    thread_set_name("api-mux");
    httpmux_t *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        if (m->reset && m->inflight == 0) {
            curl_multi_cleanup(m->multi);
            m->multi = multi_new();
            m->reset = false;
        }
        job_t *q = m->queue;
        m->queue = NULL;
        m->tail = &m->queue;
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        if (stop && !q && m->inflight == 0) break;

        while (q) {
            job_t *j = q;
            q = j->next;
            curl_easy_setopt(j->easy, CURLOPT_PRIVATE, (void *)j);
            if (curl_multi_add_handle(m->multi, j->easy) != CURLM_OK)
                finish(m, j, CURLE_FAILED_INIT);
            else
                m->inflight++;
        }
        int running = 0;
        curl_multi_perform(m->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *easy = msg->easy_handle;
            CURLcode result = msg->data.result; /* msg dies with the removal */
            job_t *j = NULL;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&j);
            curl_multi_remove_handle(m->multi, easy);
            m->inflight--;
            finish(m, j, result);
        }
        /* Idle: a trim may be waiting for this thread's malloc cache. */
        if (m->inflight == 0) heap_release_if_asked();
        curl_multi_poll(m->multi, NULL, 0, MUX_POLL_MS, NULL);
    }
    return NULL;
}

CURLcode httpmux_perform(httpmux_t *m, CURL *easy)
{
    job_t j = {.easy = easy};
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&m->mu);
    if (!m->started) {
        m->multi = multi_new();
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, MUX_STACK);
        int rc = pthread_create(&m->thread, &attr, mux_main, m);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            curl_multi_cleanup(m->multi);
            m->multi = NULL;
            pthread_mutex_unlock(&m->mu);
            pthread_cond_destroy(&j.cv);
            return CURLE_FAILED_INIT;
        }
        m->started = true;
    }
    *m->tail = &j;
    m->tail = &j.next;
    curl_multi_wakeup(m->multi);
    while (!j.done)
        pthread_cond_wait(&j.cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    pthread_cond_destroy(&j.cv);
    return j.result;
}

void httpmux_close_idle(httpmux_t *m)
{
    pthread_mutex_lock(&m->mu);
    if (m->started) {
        m->reset = true;
        curl_multi_wakeup(m->multi);
    }
    pthread_mutex_unlock(&m->mu);
}

void httpmux_free(httpmux_t *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    bool started = m->started;
    m->stop = true;
    if (started) curl_multi_wakeup(m->multi);
    pthread_mutex_unlock(&m->mu);
    if (started) {
        pthread_join(m->thread, NULL);
        curl_multi_cleanup(m->multi);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}
