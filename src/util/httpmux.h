/* httpmux.h: many threads' HTTP requests on a few shared connections.
 *
 * libcurl's easy interface gives each thread its own connection; a node
 * whose hundred starting pods each ask the API server for a token at once
 * then opens a hundred TLS connections, and the handshakes cost both sides
 * more CPU than the requests. An httpmux runs every request handed to it on
 * one libcurl multi handle, driven by one thread of its own, so requests to
 * one server share its connections: over TLS with HTTP/2 (negotiated by
 * ALPN; set CURLOPT_HTTP_VERSION to CURL_HTTP_VERSION_2TLS and
 * CURLOPT_PIPEWAIT on the handle) all of them are streams of one
 * connection, as client-go's are; over HTTP/1.1 they share a pool of
 * keep-alive connections, one per request in flight.
 *
 * A request is an easy handle configured as for curl_easy_perform;
 * httpmux_perform blocks its caller until the transfer ends, and the
 * handle's results (CURLINFO_*) are read afterwards as usual. The handle
 * must not be in use elsewhere meanwhile, and httpmux sets its
 * CURLOPT_PRIVATE.
 *
 * Threads: any number of callers; the multi handle and the transfers are
 * the mux thread's only, started at the first request. */
#ifndef WASMLET_UTIL_HTTPMUX_H
#define WASMLET_UTIL_HTTPMUX_H

#include <curl/curl.h>

typedef struct httpmux httpmux_t;

httpmux_t *httpmux_new(void);
/* Stops the thread and closes the connections; no request may be running. */
void httpmux_free(httpmux_t *m);

/* Runs the transfer of easy on the shared connections; returns what
 * curl_easy_perform would have. */
CURLcode httpmux_perform(httpmux_t *m, CURL *easy);

/* Closes every connection as soon as no transfer is in flight (at once
 * when none is): a later request opens what it needs again. For a quiet
 * process that gives back the connections' TLS state, and for a rotated
 * client certificate whose old connections must not linger. */
void httpmux_close_idle(httpmux_t *m);

#endif
