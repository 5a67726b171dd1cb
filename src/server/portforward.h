/* portforward.h: the kubelet's /portForward/{namespace}/{pod}[/{uid}]
 * endpoint, behind `kubectl port-forward`.
 *
 * The API server (for kubectl) upgrades the request to SPDY/3.1 with
 * X-Stream-Protocol-Version: portforward.k8s.io, then opens, for every
 * connection made to the forwarded local port, a pair of streams whose
 * headers name streamType (error or data), port and requestID. For each
 * complete pair the node dials the pod's port (server_pods_t.dial_tcp)
 * and copies bytes both ways between the data stream and that socket; a
 * failure is written as text on the error stream, worded as the kubelet
 * words it ("error forwarding port P to pod NS/NAME, uid U: ..."), and
 * both streams are closed. Authorization is the path's: nodes/proxy.
 *
 * One thread per upgraded connection (the request's own, see http.h)
 * runs the session: it polls the connection and the pod sockets, so a
 * session costs one thread however many connections kubectl forwards.
 * Bounded: PF_MAX_PAIRS stream pairs at once, SPDY's frame bounds
 * (spdy.h), PF_TO_POD_HIGH bytes waiting for a pod socket before the
 * session stops reading the client, PF_TO_CLIENT_HIGH bytes waiting for
 * the client before it stops reading pod sockets and the client's own
 * frames (which make answers: PING, SYN_REPLY, RST_STREAM). The session
 * ends when the client goes, at http_stop, or after PF_IDLE_TIMEOUT_MS
 * without a pair or a frame. A connect is made on the session thread with
 * PF_DIAL_TIMEOUT_MS, so it holds up that session's other streams for at
 * most that long. */
#ifndef WASMLET_SERVER_PORTFORWARD_H
#define WASMLET_SERVER_PORTFORWARD_H

#include "server/http.h"
#include "server/state.h"

#define PF_PROTOCOL "portforward.k8s.io"
#define PF_MAX_PAIRS 64                      /* stream pairs open at once per connection */
#define PF_TO_POD_HIGH (256 * 1024)          /* client bytes a pod socket has not taken yet */
#define PF_TO_CLIENT_HIGH (512 * 1024)       /* pod bytes the client has not taken yet */
#define PF_DIAL_TIMEOUT_MS 5000              /* connecting to the pod's port */
#define PF_STREAM_PAIR_TIMEOUT_MS 30000      /* the kubelet's stream creation timeout */
#define PF_HALF_CLOSE_GRACE_MS 1000          /* once one direction ended, for the other */
#define PF_IDLE_TIMEOUT_MS (4 * 3600 * 1000) /* the kubelet's stream idle timeout */

/* /portForward/{ns}/{pod}[/{uid}] (GET or POST), after authorization. */
void server_handle_port_forward(server_t *s, http_req_t *r, const char *ns, const char *pod,
                                const char *uid);

#endif
